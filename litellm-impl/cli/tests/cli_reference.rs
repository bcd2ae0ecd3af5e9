//! `docs/reference/cli.md` is generated from the binary's own `--help`, so the CLI
//! reference cannot drift from the code. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p litellm-impl-cli --test cli_reference`.

use std::process::Command;

const TESTKIT: &str = "## `aigateway-testkit serve`

The in-memory API server on its own, for trying an operator by hand:

```sh
cargo run -p aigateway-testkit -- serve --port 6443 --kubeconfig /tmp/testkit.kubeconfig --crds deploy/crds
export KUBECONFIG=/tmp/testkit.kubeconfig
kubectl get crds
```

| flag | default | meaning |
|---|---|---|
| `--port` | 0 (a free port) | port on 127.0.0.1 |
| `--kubeconfig` | a file in the temp directory | where to write the kubeconfig (the path is printed) |
| `--crds` | none | a directory of manifests (CRDs and other objects) applied at start |
| `--read-latency-ms` | 0 | answer every get and list this many milliseconds late (a real API server takes about 1) |
| `--write-latency-ms` | 0 | answer every create, update, patch and delete this many milliseconds late (an etcd-backed server takes about 5); watch events are not delayed |

It runs until Ctrl-C. `GET /testkit/stats` returns request counters by verb, group,
resource and field manager, the failed requests by status code (`failuresByCode`, e.g.
`409` conflicts) and the time the server spent per verb without the latency model
(`busyMicrosByVerb`); `DELETE /testkit/stats` resets them.
";

fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

fn render() -> String {
    let mut out = String::from(
        "# CLI reference\n\n\
         Generated from `--help` by `litellm-impl/cli/tests/cli_reference.rs`; do not edit by hand.\n\
         Regenerate with `UPDATE_GOLDEN=1 cargo test -p litellm-impl-cli --test cli_reference`.\n\n\
         ## `litellm-impl`\n\n```text\n",
    );
    out.push_str(&help(&[]));
    out.push_str("```\n");
    for sub in ["run", "demo", "render", "crds", "manifests", "uninstall"] {
        out.push_str(&format!(
            "\n## `litellm-impl {sub}`\n\n```text\n{}```\n",
            help(&[sub])
        ));
    }
    out.push('\n');
    out.push_str(TESTKIT);
    out
}

#[test]
fn the_cli_reference_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reference/cli.md");
    let expected = render();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    assert!(
        std::fs::read_to_string(path).unwrap_or_default() == expected,
        "docs/reference/cli.md is stale. Regenerate with:\n    UPDATE_GOLDEN=1 cargo test -p litellm-impl-cli --test cli_reference"
    );
}
