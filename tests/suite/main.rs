//! The crate's integration tests, in one binary: each file was a test binary of its own, and
//! each linked the crypto backends again. Together they build and link once.
//!
//! Kept apart, as binaries of their own: `allocations` and `bounded_memory` (each installs a
//! counting `#[global_allocator]` for the whole process) and `tracing_events` (it records through
//! `tracing`'s process-wide callsite registry, which other tests' threads would share).
//!
//! Each module keeps its file's `#![cfg(...)]`, so a feature set that lacks what a file needs
//! leaves that file out, as it did its binary. Proptest regressions sit beside their file
//! (`<file>.proptest-regressions`), where proptest looks for them.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod channels;
mod check_order;
mod concurrency;
mod decrypt_example;
mod http_conversions;
mod key_formats;
mod keys;
mod microsoft_vector;
mod models;
mod no_panic;
mod open_door;
mod pkcs12_keys;
mod proptest_mutations;
mod quickstart_example;
mod reference_interop;
mod requests;
mod resync;
mod secrets;
mod subscriptions;
mod thumbprint;
mod tokens;
mod version_rules;
