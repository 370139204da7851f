//! One receiver serves many threads, and its keys rotate while they use it: every batch sees
//! one key store from start to end, and an update that fails changes nothing.
#![cfg(feature = "rust-crypto")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;

use crate::common::*;
use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore};
use graph_chat_notifications::inbound::{KeyUpdateError, Receiver};
use graph_chat_notifications::{ItemErrorKind, KeyError};

#[test]
fn one_receiver_serves_many_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Receiver>();
    assert_send_sync::<graph_chat_notifications::tokens::TokenValidator>();
    assert_send_sync::<KeyStore>();

    let receiver = receiver(all_keys());
    let body = read("batches/two-certs.json");
    let expected: Vec<String> = manifest("two-certs.json")
        .iter()
        .map(|(n, _)| plaintext(n))
        .collect();
    let start = Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                start.wait();
                for _ in 0..3 {
                    let got: Vec<String> = open_all(&receiver, &body)
                        .into_iter()
                        .map(Result::unwrap)
                        .collect();
                    assert_eq!(got, expected);
                }
            });
        }
    });
}

/// Sets its flag when dropped.
struct Done<'a>(&'a AtomicBool);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn keys_rotate_while_one_receiver_serves_many_threads() {
    // The old certificate is the 2048-bit fixture, the new one the 3072-bit one; each fixture
    // batch is encrypted for one of them.
    let receiver = receiver(
        store()
            .with_key("graphsim-rsa2048", key(2048, "key.pkcs8.pem"))
            .unwrap(),
    );
    let (old_body, new_body) = (read("batches/rsa2048.json"), read("batches/rsa3072.json"));
    let (n_old, n_new) = (
        manifest("rsa2048.json").len(),
        manifest("rsa3072.json").len(),
    );
    // How many items of `body` opened; every other one must have failed for want of its key.
    let opened = |body: &[u8]| {
        let results = open_all(&receiver, body);
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(e.kind(), &ItemErrorKind::UnknownCertificate, "{e}");
        }
        results.iter().filter(|r| r.is_ok()).count()
    };
    assert_eq!((opened(&old_body), opened(&new_body)), (n_old, 0));
    let received_before = receiver
        .receive(&old_body, std::time::SystemTime::now())
        .unwrap();

    // The new key goes in while other threads keep opening batches: the old key never fails,
    // no batch sees half an update, and once the update is done every batch sees the new key.
    let start = Barrier::new(3);
    let updated = AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    loop {
                        let after_update = updated.load(Ordering::SeqCst);
                        assert_eq!(opened(&old_body), n_old);
                        let new = opened(&new_body);
                        assert!(new == 0 || new == n_new, "{new} of {n_new} opened");
                        if after_update {
                            return new;
                        }
                    }
                })
            })
            .collect();
        start.wait();
        // Set even if the update panics, so that the readers stop.
        let _done = Done(&updated);
        receiver
            .update_keys(|keys| keys.insert("graphsim-rsa3072", key(3072, "key.pkcs8.pem")))
            .unwrap();
        drop(_done);
        for reader in readers {
            assert_eq!(reader.join().unwrap(), n_new);
        }
    });
    assert_eq!((opened(&old_body), opened(&new_body)), (n_old, n_new));

    // The old key goes; a batch received before that keeps the keys it started with.
    receiver
        .update_keys(|keys| {
            assert!(keys.remove("graphsim-rsa2048"));
            Ok(())
        })
        .unwrap();
    assert_eq!((opened(&old_body), opened(&new_body)), (0, n_new));
    let mut still_open = 0;
    received_before.open_each(&mut DecryptBuffer::new(), |r| {
        r.unwrap();
        still_open += 1;
    });
    assert_eq!(still_open, n_old);

    // A change that fails leaves the keys as they were.
    let refused = receiver.update_keys(|keys| {
        keys.remove("graphsim-rsa3072");
        keys.insert("", key(2048, "key.pkcs8.pem"))
    });
    assert_eq!(
        refused.unwrap_err(),
        KeyUpdateError::Key(KeyError::BadCertificateId { len: 0 })
    );
    assert_eq!(opened(&new_body), n_new);
    assert_eq!(
        receiver.keys().unwrap().ids().collect::<Vec<_>>(),
        ["graphsim-rsa3072"]
    );
}
