//! The app's integration tests, in one binary: each file was a test binary of its own, and
//! each linked tokio, axum, SQLite and the crypto backends again. Together they build and link
//! once. Each module keeps its file's `#![cfg(...)]`.
//!
//! Kept apart: `browser` (headless Chromium, `--test browser -- --ignored`) and `cost` (a
//! measurement, `--test cost -- --ignored`).

#[path = "../common/mod.rs"]
mod common;

mod app;
mod attacks;
mod cache;
mod convergence;
mod evidence;
mod example;
mod images;
mod jobs;
mod privacy;
mod replicas;
mod signin;
mod streams;
mod writes;
