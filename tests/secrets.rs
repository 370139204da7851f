//! No secret leaks through `Debug` or `Display`: private keys, clientState, validation tokens,
//! decrypted plaintext. Every public type and error that touches one is formatted and searched.
#![cfg(feature = "rust-crypto")]

mod common;

use std::time::SystemTime;

use common::seal::{notification, Seal};
use common::*;
use graph_chat_notifications::crypto::{DecryptBuffer, PrivateKey};
use graph_chat_notifications::model::{decode, Kind};
use graph_chat_notifications::subscription::{Resource, Subscription, SubscriptionRequest};
use graph_chat_notifications::testing::GraphSimulator;
use graph_chat_notifications::tokens::TokenValidator;
use graph_chat_notifications::webhook::{handshake, ChangeType, Envelope, Limits, Receiver};
use serde_json::json;

const PLAINTEXT_MARKER: &str = "confidential-plaintext-7c1e";
const STATE: &str = "client-state-secret-93ab";

/// Every secret the formatted text must not contain.
struct Secrets {
    needles: Vec<String>,
}

impl Secrets {
    fn check(&self, what: &str, text: &str) {
        for n in &self.needles {
            assert!(!text.contains(n.as_str()), "{what} leaks {n:?}: {text}");
        }
    }
}

#[test]
fn debug_and_display_hold_no_secrets() {
    let pem = String::from_utf8(read("keys/rsa2048/key-and-cert.pem")).unwrap();
    let key = PrivateKey::from_bytes(pem.as_bytes()).unwrap();
    let graph = GraphSimulator::new("app", "tenant").client_state_value(STATE);
    let token = graph.token(SystemTime::now());
    let mut needles: Vec<String> = pem
        .lines()
        .filter(|l| l.len() > 16 && !l.starts_with("-----"))
        .map(str::to_string)
        .collect();
    needles.push(
        key.pkcs1_der()[..24]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    );
    needles.push(format!("{:?}", &key.pkcs1_der()[..12]));
    needles.extend([
        STATE.to_string(),
        PLAINTEXT_MARKER.to_string(),
        token.clone(),
        token[..40].to_string(),
    ]);
    let secrets = Secrets { needles };

    let tokens = TokenValidator::with_provider(provider(), ["app"], ["tenant"]);
    tokens.update_jwks(&graph.jwks()).unwrap();
    let builder = Receiver::builder()
        .keys(store().with_key("k", key.clone()).unwrap())
        .client_state(STATE)
        .tokens(tokens);
    secrets.check("ReceiverBuilder", &format!("{builder:?}"));
    let receiver = builder.build().unwrap();
    let plaintext = json!({"id": "1", "subject": PLAINTEXT_MARKER,
        "body": {"contentType": "text", "content": PLAINTEXT_MARKER},
        "attachments": [{"id": "a", "content": PLAINTEXT_MARKER}]})
    .to_string();
    let good = graph.notification(&plaintext, (&key).into(), "k", ChangeType::Created);
    let forged_state = {
        let mut n = good.clone();
        n["clientState"] = format!("{STATE}x").into();
        n
    };
    let body = graph.collection(
        &[good, forged_state, json!({"clientState": 5})],
        std::slice::from_ref(&token),
    );

    let envelope = Envelope::parse(&body, &Limits::default()).unwrap();
    secrets.check("Envelope", &format!("{envelope:?}"));
    for item in envelope.items() {
        match item {
            Ok(n) => {
                secrets.check("ChangeNotification", &format!("{n:?}"));
                secrets.check("EncryptedContent", &format!("{:?}", n.encrypted_content));
            }
            Err(e) => secrets.check("ItemError", &format!("{e} {e:?}")),
        }
    }
    let batch = receiver.receive(&body, SystemTime::now()).unwrap();
    secrets.check("Receiver", &format!("{receiver:?}"));
    secrets.check("Batch", &format!("{batch:?}"));
    secrets.check("KeyStore", &format!("{:?}", receiver.keys()));
    secrets.check("TokenValidator", &format!("{:?}", receiver.tokens()));
    secrets.check("ValidatedToken", &format!("{:?}", batch.validated_tokens()));
    let mut buf = DecryptBuffer::new();
    for i in 0..batch.len() {
        match batch.open(i, &mut buf) {
            Ok(opened) => {
                secrets.check("Opened", &format!("{opened:?}"));
                secrets.check(
                    "Payload",
                    &format!("{:?}", opened.payload.clone().into_owned()),
                );
                let typed = opened.decode().unwrap().unwrap();
                // The model is the user's data, but the message text stays out of its Debug.
                let text = format!("{typed:?}");
                assert_eq!(
                    text.matches(PLAINTEXT_MARKER).count(),
                    1,
                    "only the subject shows: {text}"
                );
            }
            Err(e) => secrets.check("ItemError", &format!("{e} {e:?}")),
        }
    }
    secrets.check("DecryptBuffer", &format!("{buf:?}"));
    secrets.check("PrivateKey", &format!("{key:?}"));
    secrets.check("Certificate", &format!("{:?}", key.certificate()));
    secrets.check("GraphSimulator", &format!("{graph:?}"));

    // Whole-body refusals, token errors among them.
    let forger = GraphSimulator::new("app", "tenant");
    let forged = graph.collection(&[], &[forger.token(SystemTime::now())]);
    let e = receiver.receive(&forged, SystemTime::now()).unwrap_err();
    secrets.check("BodyError", &format!("{e} {e:?}"));
    let tokens_only = forger.token(SystemTime::now());
    let e = receiver
        .tokens()
        .unwrap()
        .validate(&tokens_only, SystemTime::now())
        .unwrap_err();
    assert!(!format!("{e} {e:?}").contains(&tokens_only[..40]));

    // Decryption failures, key errors, model errors.
    let seal = Seal::new(&read("keys/rsa2048/cert.der"), "k");
    let mut broken = notification(
        seal.encrypt(format!("{{\"subject\": 5, \"x\": \"{PLAINTEXT_MARKER}\"}}").as_bytes()),
    );
    broken["clientState"] = STATE.into();
    let r2 = Receiver::builder()
        .keys(store().with_key("k", key.clone()).unwrap())
        .client_state(STATE)
        .dangerous_skip_token_validation()
        .build()
        .unwrap();
    let body2 = serde_json::to_vec(&json!({"value": [broken]})).unwrap();
    let b2 = r2.receive(&body2, SystemTime::now()).unwrap();
    let e = b2.open(0, &mut buf).unwrap().decode().unwrap_err();
    secrets.check("ItemError(Model)", &format!("{e} {e:?}"));
    let e = decode(
        &format!("{{\"importance\": [\"{PLAINTEXT_MARKER}\"]}}"),
        Some(Kind::ChatMessage),
    )
    .unwrap_err();
    secrets.check("ModelError", &format!("{e} {e:?}"));
    let e = PrivateKey::from_bytes(&pem.as_bytes()[..pem.len() / 2]).unwrap_err();
    secrets.check("KeyError", &format!("{e} {e:?}"));

    // Outbound: the clientState stays out of requests' and subscriptions' Debug.
    let request = SubscriptionRequest::builder(Resource::all_chats(), "https://example.com/n")
        .change_types([ChangeType::Created])
        .client_state(STATE)
        .expires_in(SystemTime::now(), std::time::Duration::from_secs(600));
    secrets.check("SubscriptionRequest", &format!("{request:?}"));
    secrets.check("HttpRequest", &format!("{:?}", request.build().unwrap()));
    let sub =
        Subscription::from_json(format!("{{\"id\":\"s\",\"clientState\":\"{STATE}\"}}").as_bytes())
            .unwrap();
    secrets.check("Subscription", &format!("{sub:?}"));
    let e = Subscription::from_json(
        format!("{{\"id\":\"s\",\"clientState\":[\"{STATE}\"]}}").as_bytes(),
    )
    .unwrap_err();
    secrets.check("SubscriptionParseError", &format!("{e} {e:?}"));

    // The handshake token is not a secret, but is reflected: Debug shows its length only.
    let reply = handshake(&format!("validationToken={PLAINTEXT_MARKER}")).unwrap();
    secrets.check("HandshakeResponse", &format!("{reply:?}"));
}
