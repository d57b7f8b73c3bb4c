//! The library crates' modules depend on each other one way, and the check sees every kind of
//! dependency it claims to.

use std::{fs, path::Path};

use wskecho_modgraph::{Graph, crate_graph, find_cycle};

/// The graph of a workspace crate, by its path from the workspace root.
fn graph_of(crate_dir: &str) -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(crate_dir)
        .join("src");
    crate_graph(&src).unwrap_or_else(|error| panic!("{error}"))
}

fn assert_acyclic(crate_dir: &str) {
    let graph = graph_of(crate_dir);
    assert!(graph.len() > 3, "{crate_dir}: modules not found: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "{crate_dir}: module cycle {}\ngraph: {graph:#?}",
            cycle.join(" → ")
        );
    }
}

#[test]
fn the_primitives_have_no_module_cycle() {
    assert_acyclic("crates/wsk-primitives");
}

#[test]
fn the_client_has_no_module_cycle() {
    assert_acyclic("crates/wsk-client");
}

#[test]
fn the_kernel_adapter_has_no_module_cycle() {
    assert_acyclic("crates/wsk-kernel");
}

#[test]
fn the_host_emulation_has_no_module_cycle() {
    assert_acyclic("crates/wsk-harness");
}

#[test]
fn the_client_graph_has_the_edges_its_imports_make() {
    let graph = graph_of("crates/wsk-client");
    let depends = |from: &str, to: &str| graph.get(from).is_some_and(|d| d.contains(to));
    // A grouped `use crate::{…}`, a plain `use crate::x::Y`, and the crate root.
    assert!(depends("binding", "socket"), "{graph:#?}");
    assert!(depends("accept", "binding_state"), "{graph:#?}");
    assert!(depends("provider", "token"), "{graph:#?}");
    assert!(!depends("socket", "binding"), "{graph:#?}");
    assert!(!graph.contains_key("tests") && !graph.contains_key("testing"));
    // `$crate::platform` inside the exported logging macros.
    let primitives = graph_of("crates/wsk-primitives");
    assert!(primitives["log"].contains("platform"), "{primitives:#?}");
}

/// A crate of four modules: `a` → `b` → `c` (→ `a` if `cyclic`), `d` → `a`, each edge made a
/// different way: `super::` in a `use`, `crate::` inside a macro invocation, `$crate::` in a
/// `macro_rules!` body, `super::super::` in a nested file. Comments, doc links and items under
/// `#[cfg(test)]` that name another module make no edge.
fn write_crate(dir: &Path, cyclic: bool) {
    let src = dir.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\nmod d;\n").unwrap();
    fs::write(
        src.join("a.rs"),
        "use super::b::B;\n/// Unlike [`crate::d::D`].\npub struct A(B);\n// crate::d\n",
    )
    .unwrap();
    fs::write(
        src.join("b.rs"),
        "pub struct B;\npub fn f() { assert!(crate::c::g()); }\n",
    )
    .unwrap();
    let mut c = String::from(
        "pub fn g() -> bool { true }\n#[cfg(test)]\nmod t { use crate::a::A; }\n\
         #[cfg(all(test, not(loom)))]\nuse crate::d::D;\n",
    );
    if cyclic {
        c.push_str("macro_rules! m { () => { $crate::a::A }; }\n");
    }
    fs::write(src.join("c.rs"), c).unwrap();
    fs::write(src.join("d.rs"), "mod inner;\npub struct D;\n").unwrap();
    fs::write(
        src.join("d").join("inner.rs"),
        "use super::super::a::A;\npub fn h(_: A) {}\n",
    )
    .unwrap();
}

#[test]
fn a_cycle_is_found_and_named() {
    let dir = std::env::temp_dir().join(format!("modgraph-cycle-{}", std::process::id()));
    write_crate(&dir, true);
    let graph = crate_graph(&dir.join("src")).unwrap();
    let cycle = find_cycle(&graph);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        cycle,
        Some(["a", "b", "c", "a"].map(String::from).to_vec()),
        "{graph:#?}"
    );
}

#[test]
fn a_one_way_graph_passes_and_comments_and_tests_make_no_edge() {
    let dir = std::env::temp_dir().join(format!("modgraph-dag-{}", std::process::id()));
    write_crate(&dir, false);
    let graph = crate_graph(&dir.join("src")).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
    let edges = |module: &str| -> Vec<&str> { graph[module].iter().map(String::as_str).collect() };
    assert_eq!(edges("a"), ["b"], "{graph:#?}");
    assert_eq!(edges("b"), ["c"], "{graph:#?}");
    assert!(edges("c").is_empty(), "{graph:#?}");
    assert_eq!(edges("d"), ["a"], "{graph:#?}");
}
