//! The whole item path with a fixed key: parse, clientState, key lookup, base64, RSA-OAEP,
//! HMAC, AES, UTF-8 and JSON checks, typed decoding. The first byte picks the input's use:
//! a raw body, or a plaintext sealed for the key (so the stages after the HMAC are reached).
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
use graph_chat_notifications::testing::{encrypt_with, Encryption, Recipient};
use graph_chat_notifications::inbound::Receiver;
use graph_chat_notifications::ItemErrorKind;
use libfuzzer_sys::fuzz_target;

const PEM: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa2048/key-and-cert.pem");

fn setup() -> &'static (Receiver, PrivateKey) {
    static S: OnceLock<(Receiver, PrivateKey)> = OnceLock::new();
    S.get_or_init(|| {
        let key = PrivateKey::from_bytes(PEM).unwrap();
        let receiver = Receiver::builder()
            .keys(KeyStore::new().with_key("k", key.clone()).unwrap())
            .client_state("secretClientState")
            .dangerous_skip_token_validation()
            .build()
            .unwrap();
        (receiver, key)
    })
}

fuzz_target!(|data: &[u8]| {
    let (receiver, key) = setup();
    let Some((&mode, rest)) = data.split_first() else { return };
    let body = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        // Padding and key length under the fuzzer's control too.
        let how = Encryption {
            symmetric_key: (mode & 0x80 != 0).then(|| vec![mode; (mode as usize >> 1) % 40]),
            no_padding: mode & 0x40 != 0 && rest.len() % 16 == 0,
        };
        let content = encrypt_with(Recipient::Key(key), "k", rest, &how);
        serde_json::to_vec(&serde_json::json!({"value": [{
            "clientState": "secretClientState", "changeType": "created",
            "resource": "chats('19:a@thread.v2')/messages('1')", "encryptedContent": content,
        }]}))
        .unwrap()
    };
    let Ok(batch) = receiver.receive(&body, SystemTime::UNIX_EPOCH) else { return };
    let mut buf = DecryptBuffer::new();
    for i in 0..batch.len() {
        let opened = batch.open(i, &mut buf);
        if mode % 2 == 1 && mode & 0xC0 == 0 {
            // A plaintext sealed the way Graph does: the crate's JSON check must agree with
            // serde_json's (depth past 128 aside, which the crate refuses).
            let text = std::str::from_utf8(rest).ok().map(|t| t.strip_prefix('\u{feff}').unwrap_or(t));
            let serde_ok = text.is_some_and(|t| serde_json::from_str::<&serde_json::value::RawValue>(t).is_ok());
            let shallow = !rest.windows(129).any(|w| w.iter().all(|&c| c == b'[' || c == b'{'));
            match &opened {
                Ok(_) => assert!(serde_ok, "accepted what serde_json refuses"),
                Err(e) if matches!(e.kind(), ItemErrorKind::PlaintextNotJson { .. }) && shallow => {
                    assert!(!serde_ok, "refused what serde_json accepts")
                }
                Err(_) => {}
            }
        }
        match opened {
            Ok(opened) => {
                let _ = opened.decode();
                let _ = format!("{opened:?}");
            }
            Err(e) => assert_eq!(e.index(), i),
        }
    }
});
