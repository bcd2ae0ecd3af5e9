//! The crate's public face stays small: the root exports at most 30 names (public
//! modules count as one each), so that the runtime's internals stay free to move.

/// The names the crate root exports: its `pub mod`s and the names of its `pub use`s.
fn root_names(lib: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut statement = String::new();
    for line in lib.lines().map(str::trim) {
        if line.starts_with("//") || line.starts_with("#") {
            continue;
        }
        if statement.is_empty() && !line.starts_with("pub ") {
            continue;
        }
        statement.push_str(line);
        statement.push(' ');
        if !line.ends_with(';') {
            continue;
        }
        let item = std::mem::take(&mut statement);
        if let Some(module) = item.strip_prefix("pub mod ") {
            names.push(module.trim().trim_end_matches(';').to_owned());
        } else if let Some(path) = item.strip_prefix("pub use ") {
            let list = match (path.find('{'), path.rfind('}')) {
                (Some(open), Some(close)) => &path[open + 1..close],
                _ => path.rsplit("::").next().unwrap_or(path),
            };
            names.extend(
                list.split(',')
                    .map(|name| name.trim().trim_end_matches(';').trim())
                    .filter(|name| !name.is_empty())
                    .map(|name| name.rsplit(" as ").next().unwrap_or(name).to_owned()),
            );
        }
    }
    names
}

#[test]
fn the_root_exports_at_most_thirty_names() {
    let names = root_names(include_str!("../src/lib.rs"));
    assert!(
        names.contains(&"GatewayImplementation".to_owned())
            && names.contains(&"testing".to_owned()),
        "the parser of lib.rs missed names it must see: {names:?}"
    );
    assert!(
        names.len() <= 30,
        "aigateway-runtime's root exports {} names (at most 30): {names:?}; make internals pub(crate) or reach them through a contract module",
        names.len()
    );
}
