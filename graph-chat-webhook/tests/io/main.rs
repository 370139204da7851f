//! The IO crate's integration tests, in one binary: each file was a test binary of its own, and
//! each linked tokio, axum, SQLite and the crypto backends again. Together they build and link
//! once. Each module keeps its file's `#![cfg(...)]`.
//!
//! Kept apart: `inbox_contract`, the `Inbox` contract every implementation passes, so that
//! `cargo test -p graph-chat-webhook --test inbox_contract` runs it alone against a PostgreSQL
//! server.

#[path = "../common/mod.rs"]
mod common;

mod library;
mod strangers;
mod tokens;
mod tokens_sim;
mod webhook_e2e;
