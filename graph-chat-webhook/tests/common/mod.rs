//! What the IO crate's tests share: the core's fixtures (one copy, at the repository root), the
//! built examples.
#![allow(dead_code)]

use std::path::PathBuf;

pub const CLIENT_STATE: &str = "secretClientState";
pub const APP: &str = "11111111-2222-3333-4444-555555555555";
pub const TENANT: &str = "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1";

/// A file under the repository's `tests/fixtures/`.
pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(path)
}

pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A built example of this crate (`cargo test` builds them).
pub fn example_path(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not built; run through `cargo test`",
        path.display()
    );
    path
}
