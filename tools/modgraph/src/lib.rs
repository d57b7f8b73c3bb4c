//! The module graph of a library crate, and its cycles.
//!
//! A crate's top-level modules are the files `src/<name>.rs` (with their `src/<name>/`
//! children counted as part of them) and the crate root `src/lib.rs`. Module `a` depends on
//! module `b` when code in `a` names a path `crate::b…` (in a `use` or anywhere else); doc
//! comments and comments do not count. Test-only modules (`tests`, `testing`) are left out:
//! they may use anything.
//!
//! Parsing is `syn`'s; the graph walk is a plain depth-first search (no crate offers one for
//! a graph this size without more code than it saves).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt, fs,
    path::{Path, PathBuf},
};

use syn::visit::{self, Visit};

/// Module name → the modules it depends on.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// Why a crate's graph could not be built.
#[derive(Debug)]
pub enum Error {
    /// A file or directory could not be read.
    Read(PathBuf, std::io::Error),
    /// A file is not valid Rust.
    Parse(PathBuf, syn::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(path, error) => write!(f, "{}: cannot read: {error}", path.display()),
            Self::Parse(path, error) => write!(f, "{}: not valid Rust: {error}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

/// Modules left out of the graph: compiled only for tests.
const TEST_ONLY: [&str; 2] = ["tests", "testing"];

/// The graph of the crate whose sources are in `src`.
///
/// # Errors
/// A file under `src` cannot be read or parsed.
pub fn crate_graph(src: &Path) -> Result<Graph, Error> {
    let mut graph = Graph::new();
    let entries = fs::read_dir(src).map_err(|e| Error::Read(src.to_path_buf(), e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::Read(src.to_path_buf(), e))?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let module = if stem == "lib" { "crate" } else { stem }.to_owned();
        if TEST_ONLY.contains(&module.as_str()) {
            continue;
        }
        let is_rust = path.extension().is_some_and(|e| e == "rs");
        if !is_rust && !path.is_dir() {
            continue;
        }
        let dependencies = graph.entry(module.clone()).or_default();
        for file in rust_files(&path)? {
            for used in crate_paths(&file)? {
                if used != module && !TEST_ONLY.contains(&used.as_str()) {
                    dependencies.insert(used);
                }
            }
        }
    }
    Ok(graph)
}

/// `path` itself if it is a file, else every `.rs` file under it.
fn rust_files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let entries = fs::read_dir(path).map_err(|e| Error::Read(path.to_path_buf(), e))?;
    for entry in entries {
        let child = entry
            .map_err(|e| Error::Read(path.to_path_buf(), e))?
            .path();
        if child.is_dir() {
            files.extend(rust_files(&child)?);
        } else if child.extension().is_some_and(|e| e == "rs") {
            files.push(child);
        }
    }
    Ok(files)
}

/// The top-level modules that `file` names through `crate::`.
fn crate_paths(file: &Path) -> Result<BTreeSet<String>, Error> {
    let text = fs::read_to_string(file).map_err(|e| Error::Read(file.to_path_buf(), e))?;
    let syntax = syn::parse_file(&text).map_err(|e| Error::Parse(file.to_path_buf(), e))?;
    let mut collector = Collector::default();
    collector.visit_file(&syntax);
    Ok(collector.used)
}

/// Collects the first segment after `crate` of every path and `use` tree.
#[derive(Default)]
struct Collector {
    used: BTreeSet<String>,
}

impl Collector {
    /// The modules a `use` tree that follows `crate::` names.
    fn use_tree(&mut self, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                self.used.insert(path.ident.to_string());
            }
            syn::UseTree::Name(name) => {
                self.used.insert(name.ident.to_string());
            }
            syn::UseTree::Rename(rename) => {
                self.used.insert(rename.ident.to_string());
            }
            syn::UseTree::Group(group) => group.items.iter().for_each(|t| self.use_tree(t)),
            syn::UseTree::Glob(_) => {}
        }
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments = path.segments.iter();
        if let (Some(first), Some(second)) = (segments.next(), segments.next())
            && first.ident == "crate"
        {
            self.used.insert(second.ident.to_string());
        }
        visit::visit_path(self, path);
    }

    fn visit_use_tree(&mut self, tree: &'ast syn::UseTree) {
        if let syn::UseTree::Path(path) = tree
            && path.ident == "crate"
        {
            self.use_tree(&path.tree);
            return;
        }
        visit::visit_use_tree(self, tree);
    }

    // Attribute arguments (`#[doc = …]`, `#[cfg(…)]`) name no module to depend on.
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
}

/// A cycle of `graph` (its modules in order, the first repeated at the end), if it has one.
#[must_use]
pub fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    /// Visits `module`; `stack` holds the modules on the current path.
    fn visit<'g>(
        graph: &'g Graph,
        module: &'g str,
        stack: &mut Vec<&'g str>,
        done: &mut BTreeSet<&'g str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = stack.iter().position(|m| *m == module) {
            let mut cycle: Vec<String> = stack[start..].iter().map(|m| (*m).to_owned()).collect();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if !done.insert(module) {
            return None;
        }
        stack.push(module);
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(graph, module, &mut Vec::new(), &mut done))
}
