//! Hand-written `#[repr(C)]` declarations for the parts of `netioddk.h`, `wsk.h` and `ws2def.h`
//! that the adapter uses.
//!
//! wdk-sys generates none of them (and mingw-w64 ships none of these
//! headers), so every item here cites the Microsoft reference page it was written from, and
//! every structure's x64 size and field offsets are pinned by compile-time assertions that the
//! Windows build evaluates.
//!
//! Only what the kernel adapter uses is declared; dispatch-table slots the adapter never calls
//! are typed as opaque pointers so that the table layout stays exact without declaring their
//! signatures.

// The names follow the C headers so that they can be checked against the documentation.
#![allow(non_camel_case_types, non_snake_case)]
#![allow(clippy::upper_case_acronyms, clippy::struct_field_names)]

pub mod netioddk;
pub mod ws2def;
pub mod wsk;
