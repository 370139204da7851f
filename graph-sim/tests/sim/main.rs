//! The simulator's integration tests, in one binary: each file was a test binary of its own, and
//! each linked tokio, axum and the crypto backends again. Together they build and link once.
//! (`cross_check.py` beside them is run by hand: see the crate's README.)

#[path = "../common/mod.rs"]
mod common;

mod api;
mod binary;
mod identity;
mod notifications;
mod pipe;
mod usage;
