//! The module graph of a library crate, and its cycles.
//!
//! A crate's top-level modules are the files `src/<name>.rs` (with their `src/<name>/`
//! children counted as part of them) and the crate root `src/lib.rs` (node `crate`). Module `a`
//! depends on module `b` when code in `a` names a path that resolves into `b`: `crate::b…`,
//! `super::…` or `self::…` climbing into `b`, or (in the crate root) `b::…`; in a `use`, in any
//! other path, and inside macro invocations and `macro_rules!` bodies (`crate::b…` and
//! `$crate::b…` token sequences). A `crate::` path whose first name is no module (a root
//! re-export or `#[macro_export]` macro) is an edge to `crate`. Comments and doc comments do not
//! count, nor do items under `#[cfg(test)]` or `#[cfg(doc)]` and the modules `tests` and
//! `testing` (tests, and test doubles for tests only): they may use anything. A crate-local macro called by its bare name (textual
//! scope) makes no edge.
//!
//! Parsing is `syn`'s; the graph walk is a plain depth-first search (no crate offers one for
//! a graph this size without more code than it saves).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt, fs,
    path::{Path, PathBuf},
};

use proc_macro2::{TokenStream, TokenTree};
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

/// The node of the crate root.
const ROOT: &str = "crate";

/// The graph of the crate whose sources are in `src`.
///
/// # Errors
/// A file under `src` cannot be read or parsed.
pub fn crate_graph(src: &Path) -> Result<Graph, Error> {
    let mut modules = BTreeMap::new();
    let entries = fs::read_dir(src).map_err(|e| Error::Read(src.to_path_buf(), e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::Read(src.to_path_buf(), e))?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let is_rust = path.extension().is_some_and(|e| e == "rs");
        if (is_rust || path.is_dir()) && !TEST_ONLY.contains(&stem) {
            let name = if stem == "lib" { ROOT } else { stem };
            modules
                .entry(name.to_owned())
                .or_insert_with(Vec::new)
                .push(path);
        }
    }
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, paths) in &modules {
        let mut collector = Collector {
            known: &known,
            path: Vec::new(),
            used: BTreeSet::new(),
        };
        for path in paths {
            for file in rust_files(path)? {
                collector.path = module_path(&file, src);
                let text = fs::read_to_string(&file).map_err(|e| Error::Read(file.clone(), e))?;
                let syntax = syn::parse_file(&text).map_err(|e| Error::Parse(file.clone(), e))?;
                collector.visit_file(&syntax);
            }
        }
        let dependencies = graph.entry(module.clone()).or_default();
        // `used` holds only known modules and `crate`: never a test-only one.
        dependencies.extend(collector.used.into_iter().filter(|used| used != module));
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

/// The module path of `file` under `src`: `src/a/b/c.rs` is `a::b::c`, `src/a/b/mod.rs` is
/// `a::b`, `src/lib.rs` is the crate root (empty).
fn module_path(file: &Path, src: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut path: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if path.last().is_some_and(|last| last == "mod") || path == ["lib"] {
        path.pop();
    }
    path
}

/// Whether `attrs` hold a `#[cfg(..)]` that compiles the item only for tests or docs.
fn test_or_doc_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let syn::Meta::List(list) = &attr.meta else {
            return false;
        };
        if !list.path.is_ident("cfg") {
            return false;
        }
        let text = list.tokens.to_string();
        let words: Vec<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        let negated = words
            .windows(2)
            .any(|w| w[0] == "not" && (w[1] == "test" || w[1] == "doc"));
        !negated && words.iter().any(|w| *w == "test" || *w == "doc")
    })
}

/// The attributes of an item.
fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Collects the top-level modules that one module's files name.
struct Collector<'k> {
    /// The crate's top-level modules.
    known: &'k BTreeSet<String>,
    /// The module path of the code being visited (file, then inline `mod` blocks).
    path: Vec<String>,
    used: BTreeSet<String>,
}

impl Collector<'_> {
    /// Records the module that the path `segments` (as written, starting with `crate`, `super`,
    /// `self` or a name) resolves into, if it leaves the current module.
    fn record(&mut self, segments: &[String]) {
        let Some(first) = segments.first() else {
            return;
        };
        let absolute: Vec<&String> = match first.as_str() {
            "crate" => segments[1..].iter().collect(),
            "self" => self.path.iter().chain(&segments[1..]).collect(),
            "super" => {
                let up = segments.iter().take_while(|s| *s == "super").count();
                let keep = self.path.len().saturating_sub(up);
                self.path[..keep].iter().chain(&segments[up..]).collect()
            }
            // A plain path names a crate module only in the crate root (2018 paths).
            name if self.path.is_empty() && self.known.contains(name) => segments.iter().collect(),
            _ => return,
        };
        let Some(top) = absolute.first() else {
            return;
        };
        if self.known.contains(top.as_str()) {
            self.used.insert((*top).clone());
        } else if first == "crate" {
            // A root re-export or exported macro.
            self.used.insert(ROOT.to_owned());
        }
    }

    /// Records the paths of a `use` tree below `prefix`.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                prefix.push(name.ident.to_string());
                self.record(prefix);
                prefix.pop();
            }
            syn::UseTree::Rename(rename) => {
                prefix.push(rename.ident.to_string());
                self.record(prefix);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => {
                prefix.push("*".to_owned());
                self.record(prefix);
                prefix.pop();
            }
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    /// Records `crate::name` and `$crate::name` sequences in macro tokens.
    fn macro_tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (at, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Group(group) => self.macro_tokens(group.stream()),
                TokenTree::Ident(ident) if ident == "crate" => {
                    if let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(name)),
                    ) = (trees.get(at + 1), trees.get(at + 2), trees.get(at + 3))
                        && a.as_char() == ':'
                        && b.as_char() == ':'
                    {
                        self.record(&["crate".to_owned(), name.to_string()]);
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !test_or_doc_only(item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        if module.content.is_none() || TEST_ONLY.contains(&module.ident.to_string().as_str()) {
            return;
        }
        self.path.push(module.ident.to_string());
        visit::visit_item_mod(self, module);
        self.path.pop();
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.record(&segments);
        }
        visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if item.leading_colon.is_none() {
            self.use_tree(&mut Vec::new(), &item.tree);
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        self.macro_tokens(mac.tokens.clone());
    }

    // Attribute arguments (`#[doc = …]`, `#[cfg(…)]`) name no module to depend on.
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}

    // `pub(in crate::x)` restricts visibility; it uses nothing.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}
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
