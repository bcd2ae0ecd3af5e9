//! The library's shape: `litellm-impl` links neither clap nor the in-memory API server
//! (the command line, `litellm-impl-cli`, needs both), and its modules import each other
//! in no circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
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

/// The library module each `crate::` path in `text` (comments left out) leads to: a
/// module's own name, or the module a name re-exported at the root comes from.
fn imported_modules(
    text: &str,
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let paths: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .collect(),
            None => vec![rest],
        };
        for path in paths {
            let head: String = path
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&head) {
                found.insert(head);
            } else if let Some(module) = reexports.get(&head) {
                found.insert(module.clone());
            }
        }
    }
    found
}

/// Defect: input.rs and lookup.rs imported each other, and so did settings.rs and
/// workload.rs; a circle means neither can be read (or moved) without the other.
#[test]
fn the_library_modules_import_each_other_in_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut reexports = BTreeMap::new();
    for line in lib.split(';') {
        let Some((module, names)) = line
            .trim()
            .strip_prefix("pub use ")
            .and_then(|l| l.split_once("::"))
        else {
            continue;
        };
        for name in names.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !name.is_empty() {
                reexports.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    // Top-level modules; a submodule (tool_gateway/bounds.rs) counts as its parent.
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            let mut text = std::fs::read_to_string(&path).unwrap();
            if let Ok(children) = std::fs::read_dir(src.join(&name)) {
                for child in children {
                    let child = child.unwrap().path();
                    if child.extension().is_some_and(|e| e == "rs") {
                        text.push_str(&std::fs::read_to_string(child).unwrap());
                    }
                }
            }
            files.insert(name, text);
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let graph: BTreeMap<String, BTreeSet<String>> = files
        .iter()
        .map(|(module, text)| {
            let mut to = imported_modules(text, &modules, &reexports);
            to.remove(module);
            (module.clone(), to)
        })
        .collect();
    assert!(
        graph["render"].contains("workload") && graph["input"].contains("lookup"),
        "the graph is read: {graph:?}"
    );
    // Depth-first search; a module met again on the current path closes a circle.
    fn visit<'a>(
        module: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(start) = path.iter().position(|m| *m == module) {
            let mut circle = path[start..].to_vec();
            circle.push(module);
            return Some(circle);
        }
        if !done.insert(module) {
            return None;
        }
        path.push(module);
        for next in graph.get(module).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(circle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!(
                "library modules import each other in a circle: {}",
                circle.join(" -> ")
            );
        }
    }
}
