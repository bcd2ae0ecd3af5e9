//! Secrets: the API server's defaults (`type: Opaque`) and `stringData` folded into
//! `data`, so that a controller comparing its Secret with the stored one sees what it
//! would see on a cluster.

use serde_json::{Value, json};

use super::Strategy;
use crate::store::State;

/// `v1` Secret.
pub(crate) struct Secret;

impl Strategy for Secret {
    fn prepare(&self, _st: &State, _old: Option<&Value>, new: &mut Value) {
        if new.get("type").is_none() {
            new["type"] = json!("Opaque");
        }
        if let Some(Value::Object(sd)) = new.as_object_mut().and_then(|m| m.remove("stringData")) {
            if !new.get("data").is_some_and(Value::is_object) {
                new["data"] = json!({});
            }
            for (k, v) in sd {
                let s = v.as_str().unwrap_or_default();
                new["data"][k] = json!(base64(s.as_bytes()));
            }
        }
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
