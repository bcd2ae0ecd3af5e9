//! Defaults the API server fills into Deployments and their pod templates
//! (`SetDefaults_Deployment`, `SetDefaults_PodSpec`, `SetDefaults_Container` and friends of
//! k8s.io/kubernetes/pkg/apis/{apps,core}/v1). A controller that compares the live
//! object with the one it wants sees these fields on a cluster, so it sees them here too.
//!
//! Only missing fields are filled; explicit values are kept. The warnings the API
//! server sends about a pod template live here too.

use serde_json::{Map, Value, json};

/// Fills the defaults of an `apps/v1` Deployment.
pub(crate) fn deployment(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("replicas").or_insert(json!(1));
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
    let strategy = object_entry(spec, "strategy");
    strategy.entry("type").or_insert(json!("RollingUpdate"));
    if strategy.get("type") == Some(&json!("RollingUpdate")) {
        let rolling = object_entry(strategy, "rollingUpdate");
        rolling.entry("maxUnavailable").or_insert(json!("25%"));
        rolling.entry("maxSurge").or_insert(json!("25%"));
    }
    if let Some(template) = spec.get_mut("template").and_then(Value::as_object_mut)
        && let Some(pod) = template.get_mut("spec").and_then(Value::as_object_mut)
    {
        pod_spec(pod);
    }
}

/// The warnings the API server sends when a Deployment's pod template is created or
/// changed: an env var that repeats an earlier name in the same container.
pub(crate) fn pod_template_warnings(new: &Value, old: Option<&Value>) -> Vec<String> {
    let template = |v: &Value| v.pointer("/spec/template").cloned();
    if old.is_some_and(|o| template(o) == template(new)) {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    for list in ["initContainers", "containers"] {
        let pointer = format!("/spec/template/spec/{list}");
        let containers = new.pointer(&pointer).and_then(Value::as_array);
        for (i, c) in containers.into_iter().flatten().enumerate() {
            let env = c.get("env").and_then(Value::as_array);
            let mut seen = std::collections::BTreeSet::new();
            for (j, var) in env.into_iter().flatten().enumerate() {
                let name = var.get("name").and_then(Value::as_str).unwrap_or("");
                if !seen.insert(name) {
                    warnings.push(format!(
                        "spec.template.spec.{list}[{i}].env[{j}]: hides previous definition of {name:?}, which may be dropped when using apply"
                    ));
                }
            }
        }
    }
    warnings
}

fn object_entry<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = m.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("just made an object")
}

fn items_mut<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn pod_spec(pod: &mut Map<String, Value>) {
    pod.entry("restartPolicy").or_insert(json!("Always"));
    pod.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    pod.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    pod.entry("securityContext").or_insert(json!({}));
    pod.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    for key in ["containers", "initContainers"] {
        for c in items_mut(pod, key) {
            container(c);
        }
    }
    for volume in items_mut(pod, "volumes") {
        for source in ["configMap", "secret"] {
            if let Some(s) = volume.get_mut(source).and_then(Value::as_object_mut) {
                s.entry("defaultMode").or_insert(json!(420));
            }
        }
        if let Some(s) = volume.get_mut("projected").and_then(Value::as_object_mut) {
            s.entry("defaultMode").or_insert(json!(420));
        }
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let pull = if image_is_latest(image) {
        "Always"
    } else {
        "IfNotPresent"
    };
    c.entry("imagePullPolicy").or_insert(json!(pull));
    c.entry("terminationMessagePath")
        .or_insert(json!("/dev/termination-log"));
    c.entry("terminationMessagePolicy").or_insert(json!("File"));
    c.entry("resources").or_insert(json!({}));
    for port in items_mut(c, "ports") {
        port.entry("protocol").or_insert(json!("TCP"));
    }
    for env in items_mut(c, "env") {
        if let Some(field_ref) = env
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            field_ref.entry("apiVersion").or_insert(json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            p.entry("timeoutSeconds").or_insert(json!(1));
            p.entry("periodSeconds").or_insert(json!(10));
            p.entry("successThreshold").or_insert(json!(1));
            p.entry("failureThreshold").or_insert(json!(3));
            if let Some(get) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                get.entry("path").or_insert(json!("/"));
                get.entry("scheme").or_insert(json!("HTTP"));
            }
        }
    }
}

/// `Always` is the default pull policy for `:latest` and untagged images (a digest pins
/// the image, so it is not "latest").
fn image_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => true,
        Some((_, tag)) => tag == "latest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_deployment_gets_the_api_server_defaults() {
        let mut d = json!({"spec": {"selector": {}, "template": {"spec": {"containers": [
            {"name": "a", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "registry:5000/nginx"},
        ]}}}});
        deployment(&mut d);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "Always");
    }

    #[test]
    fn explicit_values_are_kept() {
        let mut d = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"},
            "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "a", "image": "nginx", "imagePullPolicy": "Never"}]}}}});
        deployment(&mut d);
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Never"
        );
    }
}
