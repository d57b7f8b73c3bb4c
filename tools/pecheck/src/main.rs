//! PE checker for wskecho.sys (being written).
fn main() {}
