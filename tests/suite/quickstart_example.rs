//! `cargo run --example quickstart` is the first thing a newcomer runs: it prints values the way
//! a person reads them (no Rust `Debug` of options), every line ended.
#![cfg(feature = "testing")]

use crate::common;

#[test]
fn the_quickstart_prints_values_not_debug_output() {
    let out = std::process::Command::new(common::example_path("quickstart"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with('\n'), "the last line is ended: {text:?}");
    for debug in ["Some(", "None", "\\\"", "..."] {
        assert!(!text.contains(debug), "{debug:?} in {text}");
    }
    for shown in [
        "2. handshake: answer 200 (text/plain; charset=utf-8) with the token: Validation: Testing client application reachability",
        "4. chat \"Group chat\" (group), 3 members",
        "from John Smith at 2023-01-10T18:07:30.302Z",
        "bytes of html",
        "6. done: 2 typed resources",
    ] {
        assert!(text.contains(shown), "{shown:?} not in {text}");
    }
    // The subscription body is printed whole, as JSON.
    let body = text.lines().nth(1).unwrap().trim();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["changeType"], "created,updated,deleted");
}
