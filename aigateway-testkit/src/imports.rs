//! The import graph of a crate's `src/` tree, and the cycles in it.
//!
//! A crate compiles as one unit, so the compiler accepts modules that import each other
//! in a circle; a reader does not: a file whose imports lead back to itself cannot be
//! read (or changed) on its own. This module lets a crate's test fail when such a circle
//! appears, naming the modules and the lines that close it, so that layering by the data
//! flow stays true after it was done once.
//!
//! # The rules
//! - **One node per file.** `lib.rs` is the crate root (`crate`); `a.rs` and `a/mod.rs`
//!   are module `a`; `a/b.rs` (or `a/b/mod.rs`) is `a::b`. A child module file is a node
//!   of its own, not part of its parent's: `attached/index.rs` may sit below `reconcile.rs`
//!   while `attached.rs` sits above it. `main.rs` and `src/bin/` are other crates (their
//!   `crate::` is not the library's) and are left out.
//! - **Edges** come from code, never from comments or string literals (so intra-doc links
//!   such as ``[`crate::status`]`` do not count): every `use crate::...` tree (braces
//!   expanded), every `crate::a::b` path elsewhere, and paths that start with `self::`
//!   or with the name of one of the file's own child modules (`pub use index::Cache;` in
//!   `attached.rs`), because a file that re-exports its parts depends on them.
//!   `super::` is not followed: inline test modules use it to reach their own file.
//! - **Resolution**: a path names the deepest module file among its prefixes
//!   (`crate::attached::index::Cache` is `attached::index`), and an item that module
//!   only imports (`pub use index::Cache;` in `attached.rs`, or a root re-export in
//!   `lib.rs`) is followed to the module that holds it: a file depends on where things
//!   are defined, not on the facade it reaches them through. A path through a re-export
//!   of another crate's item (`crate::ObjectRef`) makes no edge. Glob imports are not
//!   followed (the path stays with the module that imports the glob).
//! - A **cycle** is a strongly connected set of two or more files; a file naming itself
//!   is not one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Which module each file of a crate's `src/` imports from, read from the source text.
#[derive(Debug, Clone, Default)]
pub struct ImportGraph {
    /// Every edge `from -> to` with the first line in `from` that makes it.
    edges: BTreeMap<(String, String), Import>,
    /// Every module of the tree, by module path (`crate`, `a`, `a::b`).
    modules: BTreeSet<String>,
    /// What each module's `use` items bind: (module, name) -> the absolute path named,
    /// `None` when it is another crate's.
    aliases: BTreeMap<(String, String), Option<Vec<String>>>,
}

/// Where one file first names another module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The file, relative to `src/`.
    pub file: PathBuf,
    /// Its 1-based line.
    pub line: usize,
}

/// A set of modules that import each other in a circle, with the edges between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportCycle {
    /// The modules of the circle, sorted (`crate` is the root, `lib.rs`).
    pub modules: Vec<String>,
    /// Every edge among them: importing module, imported module, and where.
    pub edges: Vec<(String, String, Import)>,
}

impl fmt::Display for ImportCycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} modules import each other: {}",
            self.modules.len(),
            self.modules.join(", ")
        )?;
        for (from, to, at) in &self.edges {
            writeln!(f, "  {from} -> {to}  ({}:{})", at.file.display(), at.line)?;
        }
        Ok(())
    }
}

/// The import cycles among the files of the crate whose source root is `src` (the
/// directory holding `lib.rs`), largest first; empty when the modules form layers.
pub fn import_cycles(src: &Path) -> io::Result<Vec<ImportCycle>> {
    Ok(ImportGraph::read(src)?.cycles())
}

impl ImportGraph {
    /// Reads every `.rs` file under `src` (see the module docs for the rules).
    pub fn read(src: &Path) -> io::Result<Self> {
        let mut files = Vec::new();
        collect_files(src, src, &mut files)?;
        let mut graph = ImportGraph::default();
        let mut sources = Vec::new();
        for relative in files {
            let Some(module) = module_path(&relative) else {
                continue;
            };
            let text = std::fs::read_to_string(src.join(&relative))?;
            graph.modules.insert(module.join("::"));
            sources.push((relative, module, text));
        }
        let paths: Vec<_> = sources
            .iter()
            .map(|(_, _, text)| referenced_paths(text))
            .collect();
        for ((_, module, _), paths) in sources.iter().zip(&paths) {
            for path in paths {
                let Some(name) = &path.binds else { continue };
                let target = graph.absolute(module, &path.segments);
                graph
                    .aliases
                    .insert((module.join("::"), name.clone()), target);
            }
        }
        for ((relative, module, _), paths) in sources.iter().zip(&paths) {
            let from = name_of(module);
            for SourcePath { line, segments, .. } in paths {
                let Some(absolute) = graph.absolute(module, segments) else {
                    continue;
                };
                let Some(to) = graph.defining_module(absolute) else {
                    continue;
                };
                if to != from {
                    graph.edges.entry((from.clone(), to)).or_insert(Import {
                        file: relative.clone(),
                        line: *line,
                    });
                }
            }
        }
        Ok(graph)
    }

    /// Every module of the tree (`crate` for the root).
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.modules
            .iter()
            .map(|m| if m.is_empty() { "crate" } else { m.as_str() })
    }

    /// The modules `module` imports from.
    pub fn imports_of(&self, module: &str) -> Vec<&str> {
        self.edges
            .keys()
            .filter(|(from, _)| from == module)
            .map(|(_, to)| to.as_str())
            .collect()
    }

    /// The strongly connected sets of two or more modules, largest first.
    pub fn cycles(&self) -> Vec<ImportCycle> {
        let names: Vec<String> = self.modules().map(str::to_owned).collect();
        let index: BTreeMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut next = vec![Vec::new(); names.len()];
        for (from, to) in self.edges.keys() {
            if let (Some(&a), Some(&b)) = (index.get(from.as_str()), index.get(to.as_str())) {
                next[a].push(b);
            }
        }
        let mut cycles: Vec<ImportCycle> = strongly_connected(&next)
            .into_iter()
            .filter(|set| set.len() > 1)
            .map(|set| {
                let mut modules: Vec<String> = set.iter().map(|&i| names[i].clone()).collect();
                modules.sort();
                let edges = self
                    .edges
                    .iter()
                    .filter(|((from, to), _)| modules.contains(from) && modules.contains(to))
                    .map(|((from, to), at)| (from.clone(), to.clone(), at.clone()))
                    .collect();
                ImportCycle { modules, edges }
            })
            .collect();
        cycles.sort_by(|a, b| {
            b.modules
                .len()
                .cmp(&a.modules.len())
                .then(a.modules.cmp(&b.modules))
        });
        cycles
    }

    /// Each module's layer when there is no cycle: 0 for a module that imports none of the
    /// crate's others, else one more than the highest layer it imports from.
    pub fn layers(&self) -> BTreeMap<String, usize> {
        fn layer(
            graph: &ImportGraph,
            module: &str,
            seen: &mut BTreeMap<String, usize>,
            path: &mut Vec<String>,
        ) -> usize {
            if let Some(&known) = seen.get(module) {
                return known;
            }
            if path.iter().any(|m| m == module) {
                return 0; // a cycle: `cycles` reports it
            }
            path.push(module.to_owned());
            let below = graph
                .imports_of(module)
                .into_iter()
                .map(|m| layer(graph, m, seen, path) + 1)
                .max();
            path.pop();
            let value = below.unwrap_or(0);
            seen.insert(module.to_owned(), value);
            value
        }
        let mut seen = BTreeMap::new();
        for module in self.modules().map(str::to_owned).collect::<Vec<_>>() {
            layer(self, &module, &mut seen, &mut Vec::new());
        }
        seen
    }

    /// `path` as seen from `module` made absolute (segments after `crate`), or `None` when
    /// it names nothing of this crate.
    fn absolute(&self, module: &[String], path: &[String]) -> Option<Vec<String>> {
        let (first, rest) = path.split_first()?;
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "self" => Some(module.iter().chain(rest).cloned().collect()),
            child => {
                let mut candidate = module.to_vec();
                candidate.push(child.to_owned());
                self.modules
                    .contains(&candidate.join("::"))
                    .then(|| module.iter().chain(path).cloned().collect())
            }
        }
    }

    /// The module whose file defines what `absolute` names, following `use` items;
    /// `None` when that is another crate.
    fn defining_module(&self, mut absolute: Vec<String>) -> Option<String> {
        for _ in 0..16 {
            let depth = (0..=absolute.len())
                .rev()
                .find(|&n| self.modules.contains(&absolute[..n].join("::")))
                .unwrap_or(0);
            let module = absolute[..depth].join("::");
            let imported = absolute
                .get(depth)
                .and_then(|name| self.aliases.get(&(module, name.clone())));
            match imported {
                Some(None) => return None,
                Some(Some(target)) => {
                    absolute = target
                        .iter()
                        .chain(&absolute[depth + 1..])
                        .cloned()
                        .collect()
                }
                None => return Some(name_of(&absolute[..depth])),
            }
        }
        None // a loop of imports: the compiler refuses it anyway
    }
}

fn name_of(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

fn collect_files(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(
                path.strip_prefix(root)
                    .expect("under the root")
                    .to_path_buf(),
            );
        }
    }
    Ok(())
}

/// The module path of a file relative to `src/`; `None` for `main.rs` and `bin/`.
fn module_path(relative: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") || parts == ["main.rs"] {
        return None;
    }
    let file = parts.pop()?;
    let stem = file.strip_suffix(".rs")?;
    if !(parts.is_empty() && stem == "lib" || stem == "mod") {
        parts.push(stem.to_owned());
    }
    Some(parts)
}

/// A token of code: an identifier, `::`, or one punctuation character, with its line.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Path,
    Punct(char),
}

/// Tokens of `text` with comments, strings and character literals left out.
fn tokens(text: &str) -> Vec<(usize, Token)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let count_lines = |from: usize, to: usize, line: &mut usize| {
        *line += chars[from..to.min(chars.len())]
            .iter()
            .filter(|&&c| c == '\n')
            .count();
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let (start, mut depth) = (i, 0);
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            count_lines(start, i, &mut line);
        } else if let Some(end) = raw_string_end(&chars, i) {
            count_lines(i, end, &mut line);
            i = end;
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            count_lines(start, i, &mut line);
        } else if c == '\'' {
            // A character literal ('a', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            out.push((
                line,
                Token::Ident(ident.trim_start_matches("r#").to_owned()),
            ));
        } else if c == ':' && next == Some(':') {
            out.push((line, Token::Path));
            i += 2;
        } else {
            if c == '\n' {
                line += 1;
            } else if !c.is_whitespace() {
                out.push((line, Token::Punct(c)));
            }
            i += 1;
        }
    }
    out
}

/// The end of a raw or byte string literal starting at `i` (`r"..."`, `r#"..."#`, `b"..."`,
/// `br#"..."#`), if one starts there and is not the tail of an identifier.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    let raw = chars.get(j) == Some(&'r');
    if raw {
        j += 1;
    }
    if j == i {
        return None;
    }
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    if !raw && hashes > 0 {
        return None;
    }
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"'
            && chars[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += if chars[j] == '\\' && !raw { 2 } else { 1 };
    }
    Some(chars.len())
}

/// One path of the source: where, its segments as written, and the name a `use` item
/// binds it to (`None` for a glob and for paths outside `use`).
#[derive(Debug, Clone, PartialEq)]
struct SourcePath {
    line: usize,
    segments: Vec<String>,
    binds: Option<String>,
}

/// Every path of `text`: the leaves of each `use` tree, and every other chain
/// `a::b::c` (the first segment as written).
fn referenced_paths(text: &str) -> Vec<SourcePath> {
    let tokens = tokens(text);
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].1 == Token::Ident("use".to_owned()) {
            i += 1;
            use_tree(&tokens, &mut i, Vec::new(), &mut paths);
            continue;
        }
        let starts_chain = matches!(&tokens[i].1, Token::Ident(_))
            && tokens.get(i + 1).is_some_and(|t| t.1 == Token::Path)
            && (i == 0 || tokens[i - 1].1 != Token::Path);
        if starts_chain {
            let line = tokens[i].0;
            let mut segments = Vec::new();
            while let Some((_, Token::Ident(name))) = tokens.get(i) {
                segments.push(name.clone());
                if tokens.get(i + 1).is_some_and(|t| t.1 == Token::Path) {
                    i += 2;
                } else {
                    i += 1;
                    break;
                }
            }
            paths.push(SourcePath {
                line,
                segments,
                binds: None,
            });
            continue;
        }
        i += 1;
    }
    paths
}

/// Reads one use tree at `tokens[*i]` below `prefix`, up to its `;`, `,` or `}`.
fn use_tree(
    tokens: &[(usize, Token)],
    i: &mut usize,
    mut prefix: Vec<String>,
    paths: &mut Vec<SourcePath>,
) {
    let line = tokens.get(*i).map_or(0, |t| t.0);
    let mut binds = None;
    let mut glob = false;
    while let Some((_, token)) = tokens.get(*i) {
        match token {
            Token::Ident(name) if name == "as" => {
                if let Some((_, Token::Ident(alias))) = tokens.get(*i + 1) {
                    binds = Some(alias.clone());
                }
                *i += 2;
                break;
            }
            Token::Ident(name) => {
                prefix.push(name.clone());
                *i += 1;
            }
            Token::Path => *i += 1,
            Token::Punct('{') => {
                *i += 1;
                loop {
                    use_tree(tokens, i, prefix.clone(), paths);
                    match tokens.get(*i).map(|t| &t.1) {
                        Some(Token::Punct(',')) => *i += 1,
                        Some(Token::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        _ => return,
                    }
                    if tokens.get(*i).is_some_and(|t| t.1 == Token::Punct('}')) {
                        *i += 1;
                        return;
                    }
                }
            }
            Token::Punct('*') => {
                glob = true;
                *i += 1;
            }
            _ => break,
        }
    }
    if !prefix.is_empty() {
        if binds.is_none() && !glob {
            // `use a::b::{self}` binds `b`.
            binds = prefix.iter().rev().find(|s| *s != "self").cloned();
        }
        if binds.as_deref() == Some("_") {
            binds = None;
        }
        paths.push(SourcePath {
            line,
            segments: prefix,
            binds,
        });
    }
    if tokens.get(*i).is_some_and(|t| t.1 == Token::Punct(';')) {
        *i += 1;
    }
}

/// Tarjan's strongly connected components of the graph `next` (node -> successors).
fn strongly_connected(next: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        next: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        sets: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.counter);
        s.low[v] = s.counter;
        s.counter += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &s.next[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut set = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                set.push(w);
                if w == v {
                    break;
                }
            }
            s.sets.push(set);
        }
    }
    let n = next.len();
    let mut s = State {
        next,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        counter: 0,
        sets: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.sets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
            std::fs::write(path, text).expect("a file");
        }
        dir
    }

    #[test]
    fn a_circle_through_a_use_tree_and_a_path_is_found_with_its_lines() {
        let dir = tree(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
            ("a.rs", "use crate::{b::{Bee, other}, c};\n"),
            ("b.rs", "pub struct Bee;\nfn f() { crate::c::see(); }\n"),
            (
                "c/mod.rs",
                "pub fn see() {}\n\n\nfn g() -> crate::a::Aye { todo!() }\n",
            ),
        ]);
        let cycles = import_cycles(dir.path()).expect("readable");
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["a", "b", "c"]);
        let c_to_a = cycles[0]
            .edges
            .iter()
            .find(|(from, to, _)| from == "c" && to == "a")
            .expect("c -> a");
        assert_eq!(
            c_to_a.2,
            Import {
                file: PathBuf::from("c/mod.rs"),
                line: 4
            }
        );
        let shown = cycles[0].to_string();
        assert!(
            shown.contains("3 modules import each other: a, b, c"),
            "{shown}"
        );
        assert!(shown.contains("b -> c  (b.rs:2)"), "{shown}");
    }

    #[test]
    fn layers_have_no_cycle_and_comments_strings_and_super_do_not_count() {
        let dir = tree(&[
            ("lib.rs", "mod low;\nmod high;\npub use high::Top;\n"),
            (
                "low.rs",
                "//! Used by [`crate::high`].\n/* crate::high::Top */\nconst S: &str = \"crate::high\";\nconst R: &str = r#\"crate::high \"x\"\"#;\nfn f<'a>(c: &'a char) -> char { '\"' }\n#[cfg(test)]\nmod tests { use super::*; }\n",
            ),
            ("high.rs", "use crate::low;\npub struct Top;\n"),
            ("main.rs", "use crate::high;\n"),
        ]);
        let graph = ImportGraph::read(dir.path()).expect("readable");
        assert!(graph.cycles().is_empty(), "{:?}", graph.cycles());
        assert_eq!(graph.imports_of("low"), Vec::<&str>::new());
        let layers = graph.layers();
        assert_eq!((layers["low"], layers["high"], layers["crate"]), (0, 1, 2));
    }

    #[test]
    fn a_child_module_is_its_own_node_and_a_parent_that_re_exports_it_depends_on_it() {
        let facade = [
            ("lib.rs", "mod parts;\nmod user;\n"),
            ("parts.rs", "mod one;\nmod two;\npub use one::One;\n"),
            ("parts/one.rs", "pub struct One;\n"),
            ("user.rs", "use crate::parts::One;\n"),
        ];
        // A sibling reached by its own path: layers.
        let by_path = tree(
            &[
                facade.as_slice(),
                &[("parts/two.rs", "use crate::parts::one::One;\n")],
            ]
            .concat(),
        );
        let graph = ImportGraph::read(by_path.path()).expect("readable");
        assert!(graph.cycles().is_empty(), "{:?}", graph.cycles());
        assert_eq!(graph.imports_of("parts"), ["parts::one"]);
        assert_eq!(graph.imports_of("parts::two"), ["parts::one"]);
        // A sibling reached through the parent's re-export depends on the sibling, not the parent.
        let reexports = [(
            "parts.rs",
            "mod one;\nmod two;\npub use one::One;\npub use self::two::*;\npub struct Base;\n",
        )];
        let two_uses_one = [("parts/two.rs", "use crate::parts::One;\n")];
        let through_parent = tree(&[facade.as_slice(), &reexports, &two_uses_one].concat());
        let graph = ImportGraph::read(through_parent.path()).expect("readable");
        assert!(graph.cycles().is_empty(), "{:?}", graph.cycles());
        assert_eq!(graph.imports_of("parts::two"), ["parts::one"]);
        // A part that uses what its parent defines, while the parent uses the part: a circle.
        let two_uses_base = [("parts/two.rs", "fn f(_: crate::parts::Base) {}\n")];
        let cycle = tree(&[facade.as_slice(), &reexports, &two_uses_base].concat());
        let cycles = import_cycles(cycle.path()).expect("readable");
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].modules, ["parts", "parts::two"]);
    }

    #[test]
    fn a_root_re_export_leads_to_the_module_that_defines_it_and_another_crates_to_none() {
        let dir = tree(&[
            (
                "lib.rs",
                "mod errors;\nmod user;\npub use errors::{describe as explain, Error};\npub use kube::ObjectRef;\n",
            ),
            ("errors.rs", "pub struct Error;\npub fn describe() {}\n"),
            (
                "user.rs",
                "fn f(_: crate::Error, _: crate::ObjectRef) { crate::explain() }\n",
            ),
        ]);
        let graph = ImportGraph::read(dir.path()).expect("readable");
        assert_eq!(graph.imports_of("user"), ["errors"]);
        assert_eq!(graph.imports_of("crate"), ["errors"]);
    }
}
