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
