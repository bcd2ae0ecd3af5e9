//! `litellm-impl manifests`: the whole install bundle as multi-document YAML.

use std::io::Write;

/// Prints the bundle.
pub fn run() -> std::io::Result<()> {
    std::io::stdout()
        .lock()
        .write_all(crate::bundle::to_yaml(&crate::bundle::objects()).as_bytes())
}
