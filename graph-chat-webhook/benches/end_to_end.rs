//! The webhook end to end against the bare decrypt loop, on the same batches in the same run.
//!
//! `cargo bench -p graph-chat-webhook --bench end_to_end` (add `-- ROUNDS` for more than 3):
//! 100 batches of 20 RSA-2048 rich notifications, each with its validation token, POSTed over
//! loopback by 4 senders to [`Webhook::serve`] with the SQLite inbox (WAL, full sync) and one
//! worker per core whose handler writes each notification's JSON line to a sink; timed from the
//! first request to the last notification handled. Then the same notifications through
//! `Receiver::receive` + `Batch::open_each` on every core, as `throughput --threads 0` does.
//! Each round prints both costs per notification and their ratio; the last line is the median.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use graph_chat_notifications::crypto::{Certificate, DecryptBuffer, KeyStore, PrivateKey};
use graph_chat_notifications::inbound::{Batch, Payload, Receiver};
use graph_chat_notifications::model::ChangeType;
use graph_chat_notifications::testing::GraphSimulator;
use graph_chat_notifications::tokens::TokenValidator;
use graph_chat_webhook::{BatchContext, HandlerError, JwksSource, SqliteInbox, Webhook};

const APP: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1";
const BATCHES: usize = 100;
const PER_BATCH: usize = 20;
const SENDERS: usize = 4;

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn receiver(tokens: Option<TokenValidator>) -> Receiver {
    let key = PrivateKey::from_bytes(&fixture("keys/rsa2048/key.pkcs8.pem")).unwrap();
    let builder = Receiver::builder()
        .keys(KeyStore::new().with_key("graphsim-rsa2048", key).unwrap())
        .client_state("secretClientState");
    match tokens {
        Some(t) => builder.tokens(t),
        None => builder.dangerous_skip_token_validation(),
    }
    .build()
    .unwrap()
}

fn post(addr: std::net::SocketAddr, body: &[u8]) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /notifications HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Microseconds per notification through the webhook.
fn webhook_round(graph: &GraphSimulator, bodies: &[Vec<u8>], round: usize) -> f64 {
    let dir = std::env::temp_dir().join(format!("gcw-bench-{}-{round}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("jwks.json"), graph.jwks()).unwrap();
    let webhook = Webhook::builder(receiver(Some(TokenValidator::new([APP], [TENANT]))))
        .inbox(SqliteInbox::open(dir.join("inbox.sqlite")).unwrap())
        .jwks(JwksSource::File(dir.join("jwks.json")))
        .build()
        .unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&handled);
    let workers = webhook.start_workers(
        move |_: &BatchContext,
              batch: &Batch<'_, '_>,
              buf: &mut DecryptBuffer|
              -> Result<(), HandlerError> {
            let mut lines = Vec::new();
            batch.open_each(buf, |opened| {
                if let Ok(Payload::Decrypted(json)) = opened.map(|o| o.payload) {
                    lines.extend_from_slice(json.as_bytes());
                    lines.push(b'\n');
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            });
            std::io::sink().write_all(&lines)?;
            Ok(())
        },
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = webhook.clone();
    let server = runtime.spawn(async move {
        serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    let expected = (bodies.len() * PER_BATCH) as u64;
    let started = Instant::now();
    std::thread::scope(|s| {
        for chunk in bodies.chunks(bodies.len().div_ceil(SENDERS)) {
            s.spawn(move || {
                for body in chunk {
                    assert_eq!(post(addr, body), 202);
                }
            });
        }
    });
    while handled.load(Ordering::Relaxed) < expected {
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    workers.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    elapsed.as_secs_f64() * 1e6 / expected as f64
}

/// Microseconds per notification for the bare loop on every core (`throughput --threads 0`).
fn bare_round(bodies: &[Vec<u8>]) -> f64 {
    let receiver = receiver(None);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = DecryptBuffer::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(body) = bodies.get(i) else { break };
                    let batch = receiver.receive(body, SystemTime::now()).unwrap();
                    batch.open_each(&mut buf, |opened| {
                        let _ = std::hint::black_box(opened.map(|o| o.payload.clone()));
                    });
                }
            });
        }
    });
    started.elapsed().as_secs_f64() * 1e6 / (bodies.len() * PER_BATCH) as f64
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&fixture("keys/rsa2048/cert.der")).unwrap();
    let token = graph.token(SystemTime::now());
    let bodies: Vec<Vec<u8>> = (0..BATCHES)
        .map(|b| {
            let items: Vec<_> = (0..PER_BATCH)
                .map(|i| {
                    let id = b * PER_BATCH + i;
                    graph.notification(
                        &format!(r#"{{"id":"{id}","chatId":"19:bench@thread.v2","body":{{"contentType":"html","content":"<p>message {id} of the benchmark</p>"}}}}"#),
                        (&cert).into(),
                        "graphsim-rsa2048",
                        ChangeType::Created,
                    )
                })
                .collect();
            graph.collection(&items, std::slice::from_ref(&token))
        })
        .collect();
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let bare = bare_round(&bodies);
        let webhook = webhook_round(&graph, &bodies, round);
        let ratio = webhook / bare;
        println!("round {round}: webhook_us_per_notification={webhook:.1} bare_us_per_notification={bare:.1} ratio={ratio:.2}");
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!("median_ratio={:.2}", ratios[ratios.len() / 2]);
}
