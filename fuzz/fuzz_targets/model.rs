//! Typed decoding of any text: a model or an error naming a path, never a panic; a model is
//! lossless (it serializes to the same JSON value it was decoded from) and decodes again from its
//! own serialization, to the same model. Resource paths too.
#![no_main]

use graph_chat_notifications::model::{decode, ResourceKind, ResourcePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ResourcePath::parse(text);
    for kind in [None, Some(ResourceKind::Chat), Some(ResourceKind::ChatMessage)] {
        if let Ok(resource) = decode(text, kind) {
            let sent: serde_json::Value = serde_json::from_str(text).expect("a decoded model is JSON");
            assert_eq!(serde_json::to_value(&resource).unwrap(), sent, "lossless");
            let again = serde_json::to_string(&resource).unwrap();
            let decoded = decode(&again, kind).expect("a model's own JSON decodes");
            assert_eq!(serde_json::to_string(&decoded).unwrap(), again);
        }
    }
});
