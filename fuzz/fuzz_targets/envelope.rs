//! Any bytes as a POST body: a typed refusal or notifications, never a panic.
#![no_main]

use graph_chat_notifications::inbound::{Envelope, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let limits = Limits::default().with_max_depth(32);
    if let Ok(envelope) = Envelope::parse(body, &limits) {
        assert!(envelope.len() <= limits.max_items());
        for (i, item) in envelope.items().iter().enumerate() {
            match item {
                Ok(n) => {
                    assert_eq!(n.index, i);
                    let _ = (n.change_type(), n.lifecycle_event(), format!("{n:?}"));
                }
                Err(e) => assert_eq!(e.index(), i),
            }
        }
        let _ = envelope.has_encrypted_content();
    }
});
