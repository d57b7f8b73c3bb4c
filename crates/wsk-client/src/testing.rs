//! Test doubles for the core's unit tests.
//!
//! [`TestPlatform`] (from `wsk-primitives`) accounts for every allocation and records log
//! lines; `testing/provider.rs` has a `TestProvider` that records every call, lets a test
//! complete operations in any order, and checks the contract of `provider.rs`.

#![allow(clippy::missing_panics_doc, clippy::significant_drop_tightening)] // test code

pub mod provider;

pub use wsk_primitives::testing::TestPlatform;
