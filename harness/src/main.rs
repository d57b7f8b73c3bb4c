//! wskecho user-mode harness (being written).
fn main() {}
