//! A minimal decoder for the Kubernetes protobuf encoding, for the request bodies kubectl
//! sends as `application/vnd.kubernetes.protobuf` (`kubectl create namespace|configmap|
//! secret|serviceaccount|deployment`). Responses are always JSON, which kubectl also
//! accepts.
//!
//! Only the kinds below are understood; other protobuf bodies get 415.

use serde_json::{Map, Value, json};

/// Errors decoding a protobuf body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtoError {
    /// The body does not start with the `k8s\0` magic.
    #[error("missing the k8s protobuf envelope")]
    NoEnvelope,
    /// The wire data is malformed.
    #[error("malformed protobuf at byte {0}")]
    Malformed(usize),
    /// The kind has no decoder here.
    #[error(
        "protobuf bodies of kind {0:?} are not supported; send JSON (for example with kubectl apply)"
    )]
    Unsupported(String),
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(ProtoError::Malformed(self.pos))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtoError::Malformed(self.pos))
    }

    fn next(&mut self) -> Result<Option<(u64, Wire<'a>)>, ProtoError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (field, wt) = (key >> 3, key & 7);
        let wire = match wt {
            0 => Wire::Varint(self.varint()?),
            2 => {
                let len = self.varint()? as usize;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or(ProtoError::Malformed(self.pos))?;
                let b = &self.buf[self.pos..end];
                self.pos = end;
                Wire::Bytes(b)
            }
            1 => {
                self.pos += 8;
                Wire::Fixed
            }
            5 => {
                self.pos += 4;
                Wire::Fixed
            }
            _ => return Err(ProtoError::Malformed(self.pos)),
        };
        Ok(Some((field, wire)))
    }
}

fn string(b: &[u8]) -> Value {
    json!(String::from_utf8_lossy(b))
}

fn base64(b: &[u8]) -> Value {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    json!(out)
}

/// Decodes a map entry (`key = 1`, `value = 2`).
fn entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ProtoError> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), json!(""));
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Bytes(x)) => k = String::from_utf8_lossy(x).into_owned(),
            (2, Wire::Bytes(x)) if bytes_value => v = base64(x),
            (2, Wire::Bytes(x)) => v = string(x),
            _ => {}
        }
    }
    Ok((k, v))
}

fn insert_entry(
    m: &mut Map<String, Value>,
    field: &str,
    b: &[u8],
    bytes: bool,
) -> Result<(), ProtoError> {
    let (k, v) = entry(b, bytes)?;
    let slot = m.entry(field).or_insert_with(|| json!({}));
    if let Some(o) = slot.as_object_mut() {
        o.insert(k, v);
    }
    Ok(())
}

fn push(m: &mut Map<String, Value>, field: &str, v: Value) {
    let slot = m.entry(field).or_insert_with(|| json!([]));
    if let Some(a) = slot.as_array_mut() {
        a.push(v);
    }
}

fn owner_reference(b: &[u8]) -> Result<Value, ProtoError> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Bytes(x)) => drop(m.insert("kind".into(), string(x))),
            (3, Wire::Bytes(x)) => drop(m.insert("name".into(), string(x))),
            (4, Wire::Bytes(x)) => drop(m.insert("uid".into(), string(x))),
            (5, Wire::Bytes(x)) => drop(m.insert("apiVersion".into(), string(x))),
            (6, Wire::Varint(x)) => drop(m.insert("controller".into(), json!(x != 0))),
            (7, Wire::Varint(x)) => drop(m.insert("blockOwnerDeletion".into(), json!(x != 0))),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn object_meta(b: &[u8]) -> Result<Value, ProtoError> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Bytes(x)) => drop(m.insert("name".into(), string(x))),
            (2, Wire::Bytes(x)) => drop(m.insert("generateName".into(), string(x))),
            (3, Wire::Bytes(x)) => drop(m.insert("namespace".into(), string(x))),
            (6, Wire::Bytes(x)) => drop(m.insert("resourceVersion".into(), string(x))),
            (11, Wire::Bytes(x)) => insert_entry(&mut m, "labels", x, false)?,
            (12, Wire::Bytes(x)) => insert_entry(&mut m, "annotations", x, false)?,
            (13, Wire::Bytes(x)) => push(&mut m, "ownerReferences", owner_reference(x)?),
            (14, Wire::Bytes(x)) => push(&mut m, "finalizers", string(x)),
            _ => {}
        }
    }
    m.retain(|_, v| !v.as_str().is_some_and(str::is_empty));
    Ok(Value::Object(m))
}

fn single_string_message(b: &[u8], field_name: &str) -> Result<Value, ProtoError> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    while let Some((f, w)) = r.next()? {
        if let (1, Wire::Bytes(x)) = (f, w) {
            m.insert(field_name.into(), string(x));
        }
    }
    Ok(Value::Object(m))
}

fn strings(m: &mut Map<String, Value>, field: &str, x: &[u8]) {
    push(m, field, string(x));
}

/// `metav1.LabelSelector`: `matchLabels` (1) and `matchExpressions` (2).
fn label_selector(b: &[u8]) -> Result<Value, ProtoError> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Bytes(x)) => insert_entry(&mut m, "matchLabels", x, false)?,
            (2, Wire::Bytes(x)) => {
                let mut e = Map::new();
                let mut rr = Reader::new(x);
                while let Some((ef, ew)) = rr.next()? {
                    match (ef, ew) {
                        (1, Wire::Bytes(s)) => drop(e.insert("key".into(), string(s))),
                        (2, Wire::Bytes(s)) => drop(e.insert("operator".into(), string(s))),
                        (3, Wire::Bytes(s)) => strings(&mut e, "values", s),
                        _ => {}
                    }
                }
                push(&mut m, "matchExpressions", Value::Object(e));
            }
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

/// `core.v1.Container`, the fields `kubectl create deployment` sets (name, image,
/// command, args, ports, env, resources).
fn container(b: &[u8]) -> Result<Value, ProtoError> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    while let Some((f, w)) = r.next()? {
        let Wire::Bytes(x) = w else { continue };
        match f {
            1 => drop(m.insert("name".into(), string(x))),
            2 => drop(m.insert("image".into(), string(x))),
            3 => strings(&mut m, "command", x),
            4 => strings(&mut m, "args", x),
            5 => drop(m.insert("workingDir".into(), string(x))),
            6 => {
                let mut port = Map::new();
                let mut rr = Reader::new(x);
                while let Some((pf, pw)) = rr.next()? {
                    match (pf, pw) {
                        (1, Wire::Bytes(s)) => drop(port.insert("name".into(), string(s))),
                        (2, Wire::Varint(v)) if v != 0 => {
                            drop(port.insert("hostPort".into(), json!(v)))
                        }
                        (3, Wire::Varint(v)) => drop(port.insert("containerPort".into(), json!(v))),
                        (4, Wire::Bytes(s)) => drop(port.insert("protocol".into(), string(s))),
                        (5, Wire::Bytes(s)) => drop(port.insert("hostIP".into(), string(s))),
                        _ => {}
                    }
                }
                port.retain(|_, v| !v.as_str().is_some_and(str::is_empty));
                push(&mut m, "ports", Value::Object(port));
            }
            7 => {
                let mut env = Map::new();
                let mut rr = Reader::new(x);
                while let Some((ef, ew)) = rr.next()? {
                    match (ef, ew) {
                        (1, Wire::Bytes(s)) => drop(env.insert("name".into(), string(s))),
                        (2, Wire::Bytes(s)) => drop(env.insert("value".into(), string(s))),
                        _ => {}
                    }
                }
                push(&mut m, "env", Value::Object(env));
            }
            8 => drop(m.insert("resources".into(), json!({}))),
            14 => drop(m.insert("imagePullPolicy".into(), string(x))),
            _ => {}
        }
    }
    m.retain(|_, v| !v.as_str().is_some_and(str::is_empty));
    Ok(Value::Object(m))
}

/// `core.v1.PodTemplateSpec`: metadata (1) and a pod spec (2) with its containers (2).
fn pod_template(b: &[u8]) -> Result<Value, ProtoError> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Bytes(x)) => drop(m.insert("metadata".into(), object_meta(x)?)),
            (2, Wire::Bytes(x)) => {
                let mut spec = Map::new();
                let mut rr = Reader::new(x);
                while let Some((sf, sw)) = rr.next()? {
                    match (sf, sw) {
                        (2, Wire::Bytes(c)) => push(&mut spec, "containers", container(c)?),
                        (3, Wire::Bytes(s)) => drop(spec.insert("restartPolicy".into(), string(s))),
                        (8, Wire::Bytes(s)) => {
                            drop(spec.insert("serviceAccountName".into(), string(s)))
                        }
                        _ => {}
                    }
                }
                spec.retain(|_, v| !v.as_str().is_some_and(str::is_empty));
                m.insert("spec".into(), Value::Object(spec));
            }
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

/// `apps.v1.DeploymentSpec`.
fn deployment_spec(b: &[u8]) -> Result<Value, ProtoError> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Varint(v)) => drop(m.insert("replicas".into(), json!(v))),
            (2, Wire::Bytes(x)) => drop(m.insert("selector".into(), label_selector(x)?)),
            (3, Wire::Bytes(x)) => drop(m.insert("template".into(), pod_template(x)?)),
            (4, Wire::Bytes(x)) => {
                let mut strategy = single_string_message(x, "type")?;
                if let Some(o) = strategy.as_object_mut() {
                    o.retain(|_, v| !v.as_str().is_some_and(str::is_empty));
                }
                m.insert("strategy".into(), strategy);
            }
            // Zero values are how gogo-protobuf writes unset non-pointer fields; JSON
            // omits them.
            (5, Wire::Varint(v)) if v != 0 => drop(m.insert("minReadySeconds".into(), json!(v))),
            (6, Wire::Varint(v)) => drop(m.insert("revisionHistoryLimit".into(), json!(v))),
            (7, Wire::Varint(v)) if v != 0 => drop(m.insert("paused".into(), json!(true))),
            (9, Wire::Varint(v)) => drop(m.insert("progressDeadlineSeconds".into(), json!(v))),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn object(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, ProtoError> {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!(kind));
    let mut r = Reader::new(raw);
    while let Some((f, w)) = r.next()? {
        let Wire::Bytes(x) = w else {
            match (kind, f, w) {
                ("ConfigMap" | "Secret", 4 | 5, Wire::Varint(v)) if (kind, f) != ("Secret", 4) => {
                    out.insert("immutable".into(), json!(v != 0));
                }
                ("ServiceAccount", 4, Wire::Varint(v)) => {
                    out.insert("automountServiceAccountToken".into(), json!(v != 0));
                }
                _ => {}
            }
            continue;
        };
        if f == 1 {
            out.insert("metadata".into(), object_meta(x)?);
            continue;
        }
        match (kind, f) {
            ("ConfigMap", 2) => insert_entry(&mut out, "data", x, false)?,
            ("ConfigMap", 3) => insert_entry(&mut out, "binaryData", x, true)?,
            ("Secret", 2) => insert_entry(&mut out, "data", x, true)?,
            ("Secret", 3) => drop(out.insert("type".into(), string(x))),
            ("Secret", 4) => insert_entry(&mut out, "stringData", x, false)?,
            ("Namespace", 2) => {
                let mut spec = Map::new();
                let mut rr = Reader::new(x);
                while let Some((sf, sw)) = rr.next()? {
                    if let (1, Wire::Bytes(s)) = (sf, sw) {
                        push(&mut spec, "finalizers", string(s));
                    }
                }
                out.insert("spec".into(), Value::Object(spec));
            }
            ("Deployment", 2) => drop(out.insert("spec".into(), deployment_spec(x)?)),
            ("ServiceAccount", 3) => push(
                &mut out,
                "imagePullSecrets",
                single_string_message(x, "name")?,
            ),
            _ => {}
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a `k8s\0`-enveloped protobuf body into the equivalent JSON object.
pub(crate) fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(b"k8s\0").ok_or(ProtoError::NoEnvelope)?;
    let mut r = Reader::new(rest);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Bytes(tm)) => {
                let mut t = Reader::new(tm);
                while let Some((tf, tw)) = t.next()? {
                    match (tf, tw) {
                        (1, Wire::Bytes(x)) => {
                            api_version = String::from_utf8_lossy(x).into_owned()
                        }
                        (2, Wire::Bytes(x)) => kind = String::from_utf8_lossy(x).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap" | "Secret" | "Namespace" | "ServiceAccount") => {
            object(&api_version, &kind, raw)
        }
        ("apps/v1", "Deployment") => object(&api_version, &kind, raw),
        _ => Err(ProtoError::Unsupported(format!("{api_version} {kind}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![((n << 3) | 2) as u8, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_a_configmap() {
        let mut meta = field(1, b"cm");
        meta.extend(field(3, b"ns"));
        meta.extend(field(11, &[field(1, b"app"), field(2, b"web")].concat()));
        let mut raw = field(1, &meta);
        raw.extend(field(2, &[field(1, b"k"), field(2, b"v")].concat()));
        let tm = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let mut body = b"k8s\0".to_vec();
        body.extend(field(1, &tm));
        body.extend(field(2, &raw));
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cm", "namespace": "ns", "labels": {"app": "web"}},
                "data": {"k": "v"}})
        );
    }

    #[test]
    fn rejects_unknown_kinds_and_garbage() {
        let tm = [field(1, b"apps/v1"), field(2, b"StatefulSet")].concat();
        let mut body = b"k8s\0".to_vec();
        body.extend(field(1, &tm));
        assert!(matches!(decode(&body), Err(ProtoError::Unsupported(_))));
        assert!(matches!(decode(b"{}"), Err(ProtoError::NoEnvelope)));
        assert!(decode(b"k8s\0\x0a\xff").is_err());
    }

    #[test]
    fn decodes_the_deployment_kubectl_create_sends() {
        // Captured from `kubectl create deployment web --image=nginx:1.27 --port=8080
        // --replicas=2 -- sleep 10` (kubectl v1.32).
        let hex = "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c9010a1f0a0377656212001a0022002a003200380042005a0a0a0361707012037765621297010802120c0a0a0a0361707012037765621a7d0a1c0a0012001a0022002a003200380042005a0a0a036170701203776562125d123f0a056e67696e78120a6e67696e783a312e32371a05736c6565701a0231302a00320b0a00100018903f22002a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200";
        let body: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx", "image": "nginx:1.27",
                        "command": ["sleep", "10"],
                        "ports": [{"containerPort": 8080}],
                        "resources": {},
                    }]},
                },
                "strategy": {},
            }})
        );
    }
}
