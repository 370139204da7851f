//! Feature `tracing`: the inbound path's events count refusals by kind and never hold content,
//! secrets or tokens.
#![cfg(all(feature = "rust-crypto", feature = "tracing"))]

mod common;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use common::*;
use graph_chat_notifications::crypto::DecryptBuffer;
use graph_chat_notifications::inbound::{Limits, Receiver};
use graph_chat_notifications::model::ChangeType;
use graph_chat_notifications::testing::GraphSimulator;
use graph_chat_notifications::tokens::TokenValidator;
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records every span and event as `name field=value ...`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line(String);
impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = Line(format!("span {}", span.metadata().name()));
        span.record(&mut line);
        self.0.lock().unwrap().push(line.0);
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!("{}", event.metadata().level()));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn events_count_by_kind_and_hold_no_content_or_secret() {
    const STATE: &str = "client-state-secret-5e1d";
    let graph = GraphSimulator::new("app-1", "tenant-1").client_state_value(STATE);
    let now = SystemTime::now();
    let validator = TokenValidator::with_provider(provider(), ["app-1"], ["tenant-1"]);
    validator.update_jwks(&graph.jwks(), now).unwrap();
    let receiver = Receiver::builder()
        .keys(all_keys())
        .client_state(STATE)
        .tokens(validator)
        .build()
        .unwrap();
    let cert =
        graph_chat_notifications::crypto::Certificate::from_bytes(&read("keys/rsa2048/cert.der"))
            .unwrap();
    let content = r#"{"id":"1","body":{"content":"words-nobody-may-log"}}"#;
    let good = graph.notification(
        content,
        (&cert).into(),
        "graphsim-rsa2048",
        ChangeType::Created,
    );
    let mut wrong = good.clone();
    wrong["clientState"] = json!("wrong-state");
    let mut unknown_cert = good.clone();
    unknown_cert["encryptedContent"]["encryptionCertificateId"] = json!("nobody");
    let token = graph.token(now);
    let body = graph.collection(
        &[good, wrong.clone(), wrong, unknown_cert],
        std::slice::from_ref(&token),
    );

    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let batch = receiver.receive(&body, now).unwrap();
        let mut opened = 0;
        batch.open_each(&mut DecryptBuffer::new(), |r| {
            opened += usize::from(r.is_ok())
        });
        assert_eq!(opened, 1);
        let small = Receiver::builder()
            .client_state(STATE)
            .dangerous_skip_token_validation()
            .limits(Limits::default().with_max_body_bytes(16))
            .build()
            .unwrap();
        assert!(small.receive(&body, now).is_err());
    });
    let lines = recorder.0.lock().unwrap().clone();
    let all = lines.join("\n");
    assert!(
        all.contains("body accepted") && all.contains("notifications=4"),
        "{all}"
    );
    assert!(
        all.contains("opened=1") && all.contains("refused=3"),
        "{all}"
    );
    assert!(
        lines.iter().any(|l| l.contains("notifications refused")
            && l.contains("kind=\"clientStateMismatch\"")
            && l.contains("count=2")),
        "{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("kind=\"unknownCertificate\"") && l.contains("count=1")),
        "{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("body refused") && l.contains("error=\"tooLarge\"")),
        "{all}"
    );
    for secret in [
        STATE,
        "wrong-state",
        "words-nobody-may-log",
        &token,
        &token[..40],
    ] {
        assert!(!all.contains(secret), "events leak {secret:?}: {all}");
    }
}
