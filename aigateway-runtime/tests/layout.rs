//! The runtime's files form layers along the data flow: each imports only from files
//! below it (declarations, caches, the trait, pure rules, shared state, writes, the pass,
//! wiring), so that each can be read without the ones above. A circle fails here, with
//! the modules and the lines that close it.

use std::path::Path;

use aigateway_testkit::imports::ImportGraph;

#[test]
fn no_runtime_module_imports_from_a_module_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = ImportGraph::read(&src).expect("the runtime's src/ is readable");
    assert!(
        graph.modules().count() > 20,
        "src/ holds the runtime's modules: {:?}",
        graph.modules().collect::<Vec<_>>()
    );
    let cycles = graph.cycles();
    let shown: Vec<String> = cycles.iter().map(ToString::to_string).collect();
    assert!(
        cycles.is_empty(),
        "import cycles in aigateway-runtime/src (move the named items down a layer):\n{}",
        shown.join("\n")
    );
}

/// The lines of the top-level function that starts with `signature` in `file`, from its
/// signature to its closing brace in column 0.
fn function_lines(file: &str, signature: &str) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(file);
    let source = std::fs::read_to_string(&path).expect("the runtime's source is readable");
    let lines: Vec<&str> = source.lines().collect();
    let start = lines
        .iter()
        .position(|line| line.starts_with(signature))
        .unwrap_or_else(|| panic!("{file} has no function starting with {signature:?}"));
    let end = lines[start..]
        .iter()
        .position(|line| *line == "}")
        .unwrap_or_else(|| panic!("{signature:?} in {file} has no closing brace in column 0"));
    end + 1
}

/// The gateway pass reads as computing an outcome and writing it once, and the wiring
/// as folding declared watches: both fit on a screen.
#[test]
fn the_gateway_pass_and_the_controller_wiring_stay_short() {
    let pass = function_lines("reconcile.rs", "pub async fn reconcile<");
    assert!(
        pass <= 40,
        "reconcile is {pass} lines: move steps into run_pass or write_outcome"
    );
    let wiring = function_lines("controllers.rs", "async fn run_controllers<");
    assert!(
        wiring <= 80,
        "run_controllers is {wiring} lines: declare watches as values in controllers/kind_watches.rs"
    );
}
