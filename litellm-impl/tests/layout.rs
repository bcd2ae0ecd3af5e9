//! The library's dependency surface: `litellm-impl` links neither clap nor the in-memory
//! API server; the command line (`litellm-impl-cli`) needs both.

use std::process::Command;

/// `cargo tree` of `package`'s normal dependencies, one crate name a line.
fn normal_dependencies(package: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "--offline", "--locked"])
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Defect: the library exposed `pub mod cli` and depended on clap and the testkit, so
/// every library user (and the production image) linked an in-memory API server.
#[test]
fn the_library_links_neither_clap_nor_the_testkit() {
    let library = normal_dependencies("litellm-impl");
    assert!(
        library.iter().any(|c| c == "aigateway-runtime"),
        "the tree lists the library's dependencies: {library:?}"
    );
    for unwanted in ["clap", "aigateway-testkit"] {
        assert!(
            !library.iter().any(|c| c == unwanted),
            "{unwanted} in the library's dependencies: {library:?}"
        );
    }
    let command_line = normal_dependencies("litellm-impl-cli");
    for wanted in ["clap", "aigateway-testkit"] {
        assert!(
            command_line.iter().any(|c| c == wanted),
            "the command line uses {wanted}: {command_line:?}"
        );
    }
}
