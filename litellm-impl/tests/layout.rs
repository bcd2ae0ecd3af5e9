//! The library's shape: `litellm-impl` links neither clap nor the in-memory API server
//! (the command line, `litellm-impl-cli`, needs both), and its modules import each other
//! in no circle.

use std::path::Path;
use std::process::Command;

use aigateway_testkit::imports::ImportGraph;

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

#[test]
fn the_library_modules_import_each_other_in_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = ImportGraph::read(&src).expect("the library's src/ is readable");
    assert!(
        graph.modules().count() > 10,
        "src/ holds the library's modules: {:?}",
        graph.modules().collect::<Vec<_>>()
    );
    let cycles = graph.cycles();
    let shown: Vec<String> = cycles.iter().map(ToString::to_string).collect();
    assert!(
        cycles.is_empty(),
        "import cycles in litellm-impl/src (move the named items down a layer):\n{}",
        shown.join("\n")
    );
}
