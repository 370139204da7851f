//! Any bytes as an Event Grid delivery: a typed refusal or one result per event, never a panic;
//! every event that parses carries its CloudEvent attributes, and errors name their event.
#![no_main]

use graph_chat_notifications::inbound::{Envelope, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let limits = Limits::default().with_max_depth(32).with_max_items(64);
    if let Ok(envelope) = Envelope::parse_cloud_events(body, &limits) {
        assert!(envelope.len() <= limits.max_items());
        assert!(envelope.validation_tokens().is_none());
        for (i, item) in envelope.items().iter().enumerate() {
            match item {
                Ok(n) => {
                    assert_eq!(n.index, i);
                    assert!(n.cloud_event.is_some(), "an event's attributes");
                    let _ = (n.idempotency_key(), n.is_validation_message(), format!("{n:?}"));
                }
                Err(e) => assert_eq!(e.index(), i),
            }
        }
    }
});
