//! Once its buffers are warm, opening a notification allocates nothing: a counting global
//! allocator watches `Batch::open` over a whole batch, twice over. With the RustCrypto provider
//! the RSA step is excluded (the `rsa` crate allocates inside its arithmetic); with AWS-LC it is
//! not (its RSA runs in C on the C heap, and the Rust side allocates nothing).
#![cfg(feature = "rust-crypto")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use graph_chat_notifications::crypto::{
    CryptoFailure, CryptoProvider, DecryptBuffer, KeyStore, PrivateKey, RsaOaepSha1Key, RUST_CRYPTO,
};
use graph_chat_notifications::inbound::{Payload, Receiver};
use graph_chat_notifications::KeyError;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

fn watching() -> bool {
    WATCHING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if watching() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if watching() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts the allocations `f` makes on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    WATCHING.with(|w| w.set(true));
    f();
    WATCHING.with(|w| w.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// RustCrypto's RSA step, not watched.
struct Unwatched(Box<dyn RsaOaepSha1Key>);

impl RsaOaepSha1Key for Unwatched {
    fn unwrap_key(&self, ciphertext: &[u8], out: &mut [u8; 32]) -> Result<(), CryptoFailure> {
        let was = WATCHING.with(|w| w.replace(false));
        let r = self.0.unwrap_key(ciphertext, out);
        WATCHING.with(|w| w.set(was));
        r
    }
}

fn unwatched_load(key: &PrivateKey) -> Result<Box<dyn RsaOaepSha1Key>, KeyError> {
    Ok(Box::new(Unwatched((RUST_CRYPTO.load_rsa_private_key)(
        key,
    )?)))
}

static RUST_CRYPTO_RSA_UNWATCHED: CryptoProvider = RUST_CRYPTO
    .with_name("rust-crypto, RSA unwatched")
    .with_rsa_private_key_loader(unwatched_load);

fn open_twice_warm(provider: &'static CryptoProvider) -> usize {
    let mut keys = KeyStore::with_provider(provider);
    keys.insert("graphsim-rsa2048", key(2048, "key-and-cert.pem"))
        .unwrap();
    let receiver = Receiver::builder()
        .keys(keys)
        .client_state(CLIENT_STATE)
        .dangerous_skip_token_validation()
        .build()
        .unwrap();
    let body = read("batches/rsa2048.json");
    let batch = receiver
        .receive(&body, std::time::SystemTime::now())
        .unwrap();
    let mut buf = DecryptBuffer::new();
    let open_all = |buf: &mut DecryptBuffer| {
        for i in 0..batch.len() {
            let opened = batch.open(i, buf).unwrap();
            assert!(matches!(opened.payload, Payload::Decrypted(_)));
        }
    };
    open_all(&mut buf); // warm the buffers
    allocations_in(|| {
        open_all(&mut buf);
        open_all(&mut buf);
    })
}

#[test]
fn opening_notifications_allocates_nothing_once_warm() {
    assert_eq!(open_twice_warm(&RUST_CRYPTO_RSA_UNWATCHED), 0);
    #[cfg(feature = "aws-lc")]
    assert_eq!(
        open_twice_warm(&graph_chat_notifications::crypto::AWS_LC),
        0
    );
    // The counter does count: the RustCrypto RSA step allocates, and is seen when watched.
    assert!(open_twice_warm(&RUST_CRYPTO) > 0);
}
