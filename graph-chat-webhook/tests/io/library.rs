//! The library in process, over real HTTP on loopback: what is stored (counted in the inbox),
//! what a handler sees, and what survives a panicking handler.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::common::*;
use graph_chat_notifications::crypto::{Certificate, DecryptBuffer, KeyStore, PrivateKey};
use graph_chat_notifications::inbound::{Batch, Payload, Receiver};
use graph_chat_notifications::model::ChangeType;
use graph_chat_notifications::testing::GraphSimulator;
use graph_chat_notifications::tokens::TokenValidator;
use graph_chat_webhook::{
    BatchContext, HandlerError, Inbox, InboxError, InboxStats, JwksSource, MemoryInbox, NewBatch,
    Refusal, StoredBatch, Webhook,
};
use serde_json::Value;

/// A memory inbox that keeps a copy of every record stored.
struct Recording {
    inner: MemoryInbox,
    records: Mutex<Vec<Vec<u8>>>,
}

impl Inbox for Recording {
    fn put(&self, batch: NewBatch) -> Result<graph_chat_webhook::BatchId, InboxError> {
        self.records.lock().unwrap().push(batch.record.clone());
        self.inner.put(batch)
    }
    fn claim(&self, wait: Duration) -> Option<StoredBatch> {
        self.inner.claim(wait)
    }
    fn release(&self, id: graph_chat_webhook::BatchId, retry_in: Duration) {
        self.inner.release(id, retry_in)
    }
    fn done(&self, id: graph_chat_webhook::BatchId) -> Result<(), InboxError> {
        self.inner.done(id)
    }
    fn stats(&self) -> InboxStats {
        self.inner.stats()
    }
    fn close(&self) {
        self.inner.close()
    }
}

struct Running {
    addr: std::net::SocketAddr,
    webhook: Webhook,
    inbox: Arc<Recording>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

fn start(graph: &GraphSimulator, name: &str) -> Running {
    let jwks = std::env::temp_dir().join(format!("gcw-lib-{}-{name}.json", std::process::id()));
    std::fs::write(&jwks, graph.jwks()).unwrap();
    let key = PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem")).unwrap();
    let receiver = Receiver::builder()
        .keys(KeyStore::new().with_key("graphsim-rsa2048", key).unwrap())
        .client_state(CLIENT_STATE)
        .tokens(TokenValidator::new([APP], [TENANT]))
        .build()
        .unwrap();
    let inbox = Arc::new(Recording {
        inner: MemoryInbox::new(1 << 30),
        records: Mutex::new(Vec::new()),
    });
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&refusals);
    let webhook = Webhook::builder(receiver)
        .shared_inbox(Arc::clone(&inbox) as Arc<dyn Inbox>)
        .jwks(JwksSource::File(jwks))
        .on_refusal(move |r| seen.lock().unwrap().push(r.clone()))
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = webhook.clone();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    Running {
        addr: rx.recv().unwrap(),
        webhook,
        inbox,
        refusals,
        stop: Some(stop),
        server: Some(server),
    }
}

fn message(graph: &GraphSimulator, cert: &Certificate, id: usize) -> Value {
    graph.notification(
        &format!(r#"{{"id":"{id}","chatId":"19:lib@thread.v2","body":{{"contentType":"text","content":"m{id}"}}}}"#),
        cert.into(),
        "graphsim-rsa2048",
        ChangeType::Created,
    )
}

fn post(running: &Running, body: &[u8]) -> u16 {
    request(running.addr, "POST", "/notifications", &[], body).0
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn garbage_padding_and_forged_client_states_are_never_stored() {
    let now = SystemTime::now();
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let running = start(&graph, "garbage");

    // An empty collection padded to just under the body limit.
    let mut padded = String::from(r#"{"value": [], "pad": ""#);
    padded.push_str(&"x".repeat((16 << 20) - 64));
    padded.push_str("\"}");
    assert_eq!(post(&running, padded.as_bytes()), 202);
    // A token-free collection whose clientState is wrong.
    let mut wrong = graph.notification_without_data(
        r#"{"id":"19:x@thread.v2","chatType":"group"}"#,
        ChangeType::Updated,
    );
    wrong["clientState"] = "not the client state".into();
    assert_eq!(
        post(&running, &graph.collection(&[wrong.clone(), wrong], &[])),
        202
    );
    // Encrypted content without tokens, and with a forged token.
    let forger = GraphSimulator::new(APP, TENANT);
    assert_eq!(
        post(
            &running,
            &graph.collection(&[message(&graph, &cert, 1)], &[])
        ),
        202
    );
    assert_eq!(
        post(
            &running,
            &graph.collection(&[message(&graph, &cert, 2)], &[forger.token(now)])
        ),
        202
    );
    assert!(
        running.inbox.records.lock().unwrap().is_empty(),
        "nothing was stored"
    );
    // Refusals are reported from a thread of their own, just after the replies.
    wait_for("six refusals", || {
        running.refusals.lock().unwrap().len() >= 6
    });
    let refusals = running.refusals.lock().unwrap().clone();
    let codes: Vec<&str> = refusals.iter().map(Refusal::code).collect();
    assert_eq!(
        codes,
        [
            "nothingAdmitted",
            "notification",
            "notification",
            "nothingAdmitted",
            "dropped",
            "dropped"
        ],
        "{refusals:?}"
    );

    // A genuine batch with padding around and inside its notification: stored, without it.
    let mut item = message(&graph, &cert, 3);
    item["unknownPadding"] = "P".repeat(100_000).into();
    let body = graph.collection(&[item], &[graph.token(now)]);
    let mut body: Value = serde_json::from_slice(&body).unwrap();
    body["rootPadding"] = "Q".repeat(100_000).into();
    assert_eq!(post(&running, &serde_json::to_vec(&body).unwrap()), 202);
    let records = running.inbox.records.lock().unwrap().clone();
    assert_eq!(records.len(), 1);
    let record = String::from_utf8(records[0].clone()).unwrap();
    assert!(!record.contains("PPPP") && !record.contains("QQQQ"));
    assert!(!record.contains(CLIENT_STATE), "no clientState is stored");
    assert!(!record.contains(&graph.token(now)), "no token is stored");
    assert!(record.len() < 10_000, "{} bytes", record.len());
}

#[test]
fn a_panicking_handler_loses_no_batch_and_no_worker() {
    let now = SystemTime::now();
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let running = start(&graph, "panic");
    let printed = Arc::new(Mutex::new(Vec::new()));
    let panics = Arc::new(AtomicUsize::new(0));
    let (out, count) = (Arc::clone(&printed), Arc::clone(&panics));
    // One worker: a panic that took it down would stop everything after it.
    let workers = running.webhook.start_workers_with(
        move |ctx: &BatchContext,
              batch: &Batch<'_, '_>,
              buf: &mut DecryptBuffer|
              -> Result<(), HandlerError> {
            let mut ids = Vec::new();
            batch.open_each(buf, |opened| {
                if let Payload::Decrypted(json) = opened.unwrap().payload {
                    let v: Value = serde_json::from_str(&json).unwrap();
                    ids.push(v["id"].as_str().unwrap().to_string());
                }
            });
            // Every batch panics on its first attempt and fails (Err) on its second.
            match ctx.attempts {
                0 => {
                    count.fetch_add(1, Ordering::SeqCst);
                    panic!("a handler bug");
                }
                1 => Err(HandlerError::new("the output is down")),
                _ => {
                    out.lock().unwrap().extend(ids);
                    Ok(())
                }
            }
        },
        1,
    );
    for b in 0..3 {
        let body = graph.collection(&[message(&graph, &cert, b)], &[graph.token(now)]);
        assert_eq!(post(&running, &body), 202);
    }
    wait_for("every batch handled", || printed.lock().unwrap().len() == 3);
    let mut ids = printed.lock().unwrap().clone();
    ids.sort();
    assert_eq!(ids, ["0", "1", "2"]);
    assert_eq!(panics.load(Ordering::SeqCst), 3);
    assert_eq!(workers.len(), 1);
    assert_eq!(running.inbox.stats().batches, 0, "all done");
    workers.shutdown();
}

#[test]
fn handshakes_and_the_body_limit() {
    let graph = GraphSimulator::new(APP, TENANT);
    let running = start(&graph, "limits");
    let (status, reply) = request(
        running.addr,
        "POST",
        "/lifecycle?validationToken=a%2Bb%20c",
        &[],
        b"",
    );
    assert_eq!(status, 200);
    assert!(reply
        .to_ascii_lowercase()
        .contains("content-type: text/plain"));
    assert!(reply.ends_with("\r\n\r\na+b c"), "{reply}");
    // Past 16 MiB: 413, reported with its route.
    let huge = vec![b' '; (16 << 20) + 1];
    assert_eq!(post(&running, &huge), 413);
    wait_for("the refusal", || {
        running
            .refusals
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.status() == Some(413) && r.to_string().contains("/notifications"))
    });
    // The Event Grid routes are not served unless configured.
    assert_eq!(
        request(running.addr, "POST", "/eventgrid", &[], b"[]").0,
        404
    );
}
