//! Memory follows the limits, not what a body holds: a global allocator that tracks the peak
//! of live bytes allocated on the watching thread measures `Receiver::receive` (and opening)
//! on hostile bodies up to the 16 MiB body limit. The body itself is the caller's, allocated
//! before the watch; the bound is the body's size again (strings with escapes are copied out
//! of it, at most once) plus a small constant.
#![cfg(feature = "rust-crypto")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::SystemTime;

use common::mint::{self, Minter, APP, TENANT};
use common::*;
use graph_chat_notifications::crypto::DecryptBuffer;
use graph_chat_notifications::inbound::{Limits, Receiver};
use graph_chat_notifications::tokens::TokenValidator;
use graph_chat_notifications::ItemErrorKind;
use serde_json::{json, Value};

struct Peak;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            LIVE.with(|l| {
                let now = l.get() + delta;
                l.set(now);
                PEAK.with(|p| p.set(p.get().max(now)));
            });
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

/// The peak of bytes allocated (and not yet freed) while `f` runs on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (usize, T) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    WATCHING.with(|w| w.set(true));
    let out = f();
    WATCHING.with(|w| w.set(false));
    (PEAK.with(Cell::get).max(0) as usize, out)
}

const MIB: usize = 1 << 20;
const BODY: usize = 16 * MIB - 64;

fn receiver() -> Receiver {
    let validator = TokenValidator::with_provider(provider(), [APP], [TENANT]);
    validator
        .update_jwks(&read("tokens/jwks.json"), mint::now())
        .unwrap();
    Receiver::builder()
        .keys(all_keys())
        .client_state(CLIENT_STATE)
        .tokens(validator)
        .build()
        .unwrap()
}

/// `head` + `unit` repeated + `tail`, just under 16 MiB.
fn fill(head: &str, unit: &str, tail: &str) -> Vec<u8> {
    let n = (BODY - head.len() - tail.len()) / unit.len();
    let mut body = String::with_capacity(BODY);
    body.push_str(head);
    for i in 0..n {
        if i > 0 && unit.starts_with(',') {
            body.push_str(unit);
        } else {
            body.push_str(unit.trim_start_matches(','));
        }
    }
    body.push_str(tail);
    body.into_bytes()
}

/// Receives `body` (and opens every notification of an accepted batch) under the watch; the
/// peak must stay within the body's size plus `slack`.
fn assert_bounded(name: &str, body: &[u8], slack: usize) {
    let r = receiver();
    let (peak, outcome) = peak_of(|| match r.receive(body, mint::now()) {
        Ok(batch) => {
            let mut buf = DecryptBuffer::new();
            let failures = (0..batch.len())
                .filter(|&i| batch.open(i, &mut buf).is_err())
                .count();
            format!("accepted, {} items, {failures} failed", batch.len())
        }
        Err(e) => format!("refused: {e}"),
    });
    let bound = body.len() + slack;
    eprintln!(
        "{name}: {} byte body, peak {peak} bytes ({outcome})",
        body.len()
    );
    assert!(
        peak <= bound,
        "{name}: peak {peak} bytes for a {} byte body ({outcome})",
        body.len()
    );
}

#[test]
fn a_flat_array_of_numbers() {
    let body = fill("{\"value\":[", ",0", "]}");
    assert_bounded("flat array", &body, MIB);
    // Counting stops at the limit: the refusal comes without reading the rest.
    let r = receiver();
    let e = r.receive(&body, SystemTime::now()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the body carries more than 1000 notifications"
    );
}

#[test]
fn duplicate_root_keys() {
    let body = fill("{", "\"a\":0,", "\"value\":[]}");
    assert_bounded("duplicate root keys", &body, MIB);
    let body = fill("{\"value\":[],", "\"VALUE\":0,", "\"x\":0}");
    assert_bounded("duplicate value keys", &body, MIB);
}

#[test]
fn many_padded_items_and_members() {
    // A thousand items, each a long run of unknown and duplicate members.
    let per_item = BODY / 1000 - 16;
    let item = format!(
        "{{{}\"changeType\":\"created\"}}",
        "\"x\":[1,{}],".repeat(per_item / 12)
    );
    let mut body = String::from("{\"value\":[");
    for i in 0..1000 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&item);
    }
    body.push_str("]}");
    assert_bounded("padded items", body.as_bytes(), 2 * MIB);
    // One item made of a million duplicate known keys.
    let body = fill("{\"value\":[{", "\"id\":\"1\",", "\"z\":0}]}");
    assert_bounded("duplicate item keys", &body, MIB);
}

#[test]
fn one_huge_string() {
    let body = fill("{\"value\":[{\"resource\":\"", "A", "\"}]}");
    assert_bounded("huge plain string", &body, MIB);
    // Escapes force a copy: still at most the body's size once.
    let body = fill("{\"value\":[{\"resource\":\"", "\\n", "\"}]}");
    assert_bounded("huge escaped string", &body, MIB);
    let body = fill("{\"value\":[{\"unknown\":\"", "\\u0041", "\"}]}");
    assert_bounded("huge escaped unknown member", &body, MIB);
}

#[test]
fn an_oversized_data_key_behind_a_valid_token() {
    let mut body: Value = serde_json::from_slice(&read("tokens/batch.json")).unwrap();
    body["validationTokens"] = json!([Minter::fixture().token(&Minter::v1())]);
    let huge = "QUFB".repeat(3 * MIB / 2); // 6 MiB of base64 for 4.5 MiB
    body["value"][0]["encryptedContent"]["dataKey"] = json!(huge);
    body["value"][1]["encryptedContent"]["dataSignature"] = json!(huge);
    let body = serde_json::to_vec(&body).unwrap();
    let r = receiver();
    let batch = r.receive(&body, mint::now()).unwrap();
    let mut buf = DecryptBuffer::new();
    // Opening refuses each by its length, before decoding: nothing the size of the field is
    // allocated, so a thread's reusable buffers do not grow.
    for (i, field) in [
        (0, "encryptedContent.dataKey"),
        (1, "encryptedContent.dataSignature"),
    ] {
        let (peak, e) = peak_of(|| batch.open(i, &mut buf).unwrap_err());
        assert_eq!(e.field(), field);
        assert!(
            matches!(e.kind(), ItemErrorKind::WrongLength { actual, .. } if *actual == 9 * MIB / 2),
            "{e}"
        );
        assert!(peak < 64 * 1024, "opening {field} peaked at {peak} bytes");
    }
}

#[test]
fn the_limits_bound_what_is_kept() {
    // A tighter item limit bounds the kept items too.
    let r = Receiver::builder()
        .client_state(CLIENT_STATE)
        .limits(Limits::default().with_max_items(10))
        .build()
        .unwrap();
    let body = fill("{\"value\":[", ",{\"id\":\"1\"}", "]}");
    let (peak, e) = peak_of(|| r.receive(&body, SystemTime::now()).unwrap_err());
    assert_eq!(e.to_string(), "the body carries more than 10 notifications");
    assert!(peak < 64 * 1024, "peak {peak}");
}
