//! Test doubles for the client's tests and for the tests of applications built on it (the
//! `testing` feature).
//!
//! [`TestPlatform`] (from `wsk-primitives`) accounts for every allocation and records log
//! lines; [`provider`] has a `TestProvider` that records every call, lets a test complete
//! operations in any order, and checks the contract of `provider.rs`; [`mirror`] is a small
//! handler that sends back what it receives, for tests about the client rather than a handler;
//! [`scenario`] has the steps such tests share.

#![allow(clippy::missing_panics_doc, clippy::significant_drop_tightening)] // test code

pub mod mirror;
pub mod provider;
pub mod scenario;

pub use wsk_primitives::testing::TestPlatform;
