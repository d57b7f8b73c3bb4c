//! Checks the cross-built `wskecho.sys`: machine, subsystem, entry point, security flags,
//! section permissions, imports (against the mingw-w64 import libraries, read independently
//! of the libraries the link used), the PDB reference, optional expected imports/bytes, and
//! optionally every function's stack frame against a limit (from the x64 unwind information,
//! [`unwind`]). See `docs/building.md`.

pub mod checks;
pub mod cli;
pub mod export_list;
pub mod image;
pub mod pdb;
pub mod unwind;
