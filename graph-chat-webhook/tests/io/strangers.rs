//! Strangers from a few addresses against the webhook in process, on loopback: Graph
//! (127.0.0.1) must keep getting its batches and handshakes answered within its 3 s while
//! strangers (127.0.0.2 and up) hold connections at the caps, hold the body budget with bodies
//! that stop after a burst, or while the JWKS endpoint drips its answer.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so a client socket bound to
//! 127.0.0.2 is a second source address.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;
use graph_chat_notifications::crypto::{Certificate, KeyStore, PrivateKey};
use graph_chat_notifications::inbound::Receiver;
use graph_chat_notifications::model::ChangeType;
use graph_chat_notifications::testing::GraphSimulator;
use graph_chat_notifications::tokens::TokenValidator;
use graph_chat_webhook::{BuildError, JwksSource, MemoryInbox, ServerLimits, Webhook};
use serde_json::Value;

/// Graph's patience for an answer.
const GRAPH_PATIENCE: Duration = Duration::from_secs(3);

/// A webhook served in process on 127.0.0.1; stopped when dropped.
struct Running {
    addr: SocketAddr,
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

fn receiver() -> Receiver {
    let key = PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem")).unwrap();
    Receiver::builder()
        .keys(KeyStore::new().with_key("graphsim-rsa2048", key).unwrap())
        .client_state(CLIENT_STATE)
        .tokens(TokenValidator::new([APP], [TENANT]))
        .build()
        .unwrap()
}

fn jwks_file(graph: &GraphSimulator, name: &str) -> JwksSource {
    let jwks =
        std::env::temp_dir().join(format!("gcw-strangers-{}-{name}.json", std::process::id()));
    std::fs::write(&jwks, graph.jwks()).unwrap();
    JwksSource::File(jwks)
}

fn serve(webhook: Webhook) -> Running {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            // A route of the program's own beside the webhook's, reading its body without
            // bounds of its own (as axum's `String` and `Json` do).
            let router = webhook.router().route(
                "/api/slow",
                axum::routing::post(|b: String| async move { b.len().to_string() }),
            );
            webhook
                .serve_router(router, listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    Running {
        addr: rx.recv().unwrap(),
        stop: Some(stop),
        server: Some(server),
    }
}

fn start(graph: &GraphSimulator, name: &str, limits: ServerLimits) -> Running {
    let webhook = Webhook::builder(receiver())
        .inbox(MemoryInbox::new(1 << 30))
        .jwks(jwks_file(graph, name))
        .limits(limits)
        .on_refusal(|_| {})
        .build()
        .unwrap();
    serve(webhook)
}

fn message(graph: &GraphSimulator, cert: &Certificate, id: usize) -> Value {
    graph.notification(
        &format!(r#"{{"id":"{id}","chatId":"19:door@thread.v2","body":{{"contentType":"text","content":"m{id}"}}}}"#),
        cert.into(),
        "graphsim-rsa2048",
        ChangeType::Created,
    )
}

/// A batch of one notification, signed by `graph`.
fn batch(graph: &GraphSimulator, id: usize) -> Vec<u8> {
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    graph.collection(
        &[message(graph, &cert, id)],
        &[graph.token(SystemTime::now())],
    )
}

/// POSTs from 127.0.0.1 as Graph does, waiting at most Graph's 3 s for the whole exchange; the
/// status, or 0 when none came in time (Graph counts that as a failure).
fn graph_post(addr: SocketAddr, target: &str, body: &[u8]) -> u16 {
    let started = Instant::now();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, GRAPH_PATIENCE) else {
        return 0;
    };
    let left = || {
        GRAPH_PATIENCE
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1))
    };
    s.set_write_timeout(Some(left())).unwrap();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).is_err() || s.write_all(body).is_err() {
        return 0;
    }
    let mut reply = [0u8; 16];
    let mut n = 0;
    while n < 12 {
        s.set_read_timeout(Some(left())).unwrap();
        match s.read(&mut reply[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    if started.elapsed() > GRAPH_PATIENCE {
        return 0;
    }
    status_of(&reply[..n])
}

/// Graph's traffic during an attack: `n` batches and `n` handshakes, one after the other; the
/// statuses of each.
fn graph_traffic(addr: SocketAddr, graph: &GraphSimulator, n: usize) -> (Vec<u16>, Vec<u16>) {
    let mut batches = Vec::new();
    let mut handshakes = Vec::new();
    for i in 0..n {
        batches.push(graph_post(addr, "/notifications", &batch(graph, 1000 + i)));
        handshakes.push(graph_post(
            addr,
            "/notifications?validationToken=hello",
            b"",
        ));
        std::thread::sleep(Duration::from_millis(100));
    }
    (batches, handshakes)
}

/// Graph's traffic beside an attack (`n` batches, `n` handshakes): every batch must be answered
/// 202 and every handshake 200, each within 3 s. Prints what the strangers did and what Graph got.
fn assert_graph_gets_through(
    addr: SocketAddr,
    graph: &GraphSimulator,
    n: usize,
    attack: &Strangers,
    what: &str,
) {
    let (batches, handshakes) = graph_traffic(addr, graph, n);
    eprintln!(
        "{what} ({} opened, {} cut); Graph got batches {batches:?}, handshakes {handshakes:?}",
        attack.opened.load(SeqCst),
        attack.cut.load(SeqCst)
    );
    assert_eq!(batches, vec![202; n], "Graph's batches: {what}");
    assert_eq!(handshakes, vec![200; n], "Graph's handshakes: {what}");
}

/// Strangers on their own runtime until dropped; counts what they did.
struct Strangers {
    stop: Arc<AtomicBool>,
    /// Connections the strangers opened, and those the server cut.
    opened: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
    runtime: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Strangers {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(r) = self.runtime.take() {
            let _ = r.join();
        }
    }
}

/// Everything a stranger does ends within this, whatever the server does.
const ATTACK_BOUND: Duration = Duration::from_secs(40);

/// From each of `sources`, `per_source` connections each sending `first` (then `then` every 3 s
/// when given), reopened as soon as the server cuts them (after `pause`).
fn strangers(
    target: SocketAddr,
    sources: &[&str],
    per_source: usize,
    first: Arc<Vec<u8>>,
    then: Option<&'static [u8]>,
    pause: Duration,
) -> Strangers {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let cut = Arc::new(AtomicUsize::new(0));
    let sources: Vec<IpAddr> = sources.iter().map(|s| s.parse().unwrap()).collect();
    let (stopping, opening, cutting) = (Arc::clone(&stop), Arc::clone(&opened), Arc::clone(&cut));
    let runtime = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let end = tokio::time::Instant::now() + ATTACK_BOUND;
            let mut tasks = tokio::task::JoinSet::new();
            for source in sources {
                for _ in 0..per_source {
                    let (stopping, opening, cutting) = (
                        Arc::clone(&stopping),
                        Arc::clone(&opening),
                        Arc::clone(&cutting),
                    );
                    let first = Arc::clone(&first);
                    tasks.spawn(async move {
                        while !stopping.load(SeqCst) && tokio::time::Instant::now() < end {
                            let socket = tokio::net::TcpSocket::new_v4().unwrap();
                            socket.bind(SocketAddr::new(source, 0)).unwrap();
                            let connected = tokio::time::timeout(
                                Duration::from_secs(2),
                                socket.connect(target),
                            )
                            .await;
                            let Ok(Ok(mut s)) = connected else {
                                tokio::time::sleep(pause).await;
                                continue;
                            };
                            opening.fetch_add(1, SeqCst);
                            if s.write_all(&first).await.is_ok() {
                                let mut buf = [0u8; 256];
                                // Until the server closes it (EOF or reset).
                                loop {
                                    let wait = tokio::time::sleep(Duration::from_secs(3));
                                    tokio::select! {
                                        read = s.read(&mut buf) => {
                                            if matches!(read, Ok(0) | Err(_)) { break; }
                                        }
                                        () = wait => {
                                            if stopping.load(SeqCst)
                                                || tokio::time::Instant::now() > end
                                            {
                                                return;
                                            }
                                            if let Some(more) = then {
                                                if s.write_all(more).await.is_err() { break; }
                                            }
                                        }
                                    }
                                }
                            }
                            cutting.fetch_add(1, SeqCst);
                            tokio::time::sleep(pause).await;
                        }
                    });
                }
            }
            while tasks.join_next().await.is_some() {}
        });
    });
    Strangers {
        stop,
        opened,
        cut,
        runtime: Some(runtime),
    }
}

const HALF_HEAD: &[u8] = b"POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Le";

fn half_heads(target: SocketAddr, sources: &[&str], per_source: usize) -> Strangers {
    strangers(
        target,
        sources,
        per_source,
        Arc::new(HALF_HEAD.to_vec()),
        None,
        Duration::ZERO,
    )
}

fn wait_until_opened(strangers: &Strangers, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while strangers.opened.load(SeqCst) < n {
        assert!(Instant::now() < deadline, "the strangers could not connect");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the server take them all in.
    std::thread::sleep(Duration::from_millis(500));
}

/// Three addresses each hold their cap of half-sent heads (with the default limits) and reopen
/// each one as soon as it is cut: Graph's batches and handshakes are all answered within 3 s.
#[test]
fn three_addresses_at_their_cap_of_half_sent_heads_leave_room_for_graph() {
    let graph = GraphSimulator::new(APP, TENANT);
    let limits = ServerLimits::default();
    let per_source = limits.connections_per_address();
    let server = start(&graph, "three-addresses", limits);
    let sources = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let attack = half_heads(server.addr, &sources, per_source);
    wait_until_opened(&attack, 3 * per_source);
    assert_graph_gets_through(
        server.addr,
        &graph,
        10,
        &attack,
        &format!("strangers held {per_source} half-sent heads from each of 3 addresses"),
    );
}

/// The connection cap full of half-sent heads from three addresses, reopened as soon as cut:
/// past the cap, a connection without a head in time is shed for Graph's, so every batch and
/// handshake of Graph's is answered within 3 s.
#[test]
fn at_the_connection_cap_half_sent_heads_are_shed_for_graph() {
    let graph = GraphSimulator::new(APP, TENANT);
    let limits = ServerLimits::default()
        .with_max_connections(48)
        .with_connections_per_address(16);
    let server = start(&graph, "shed", limits);
    let sources = ["127.0.0.5", "127.0.0.6", "127.0.0.7"];
    let attack = half_heads(server.addr, &sources, 16);
    wait_until_opened(&attack, 48);
    assert_graph_gets_through(
        server.addr,
        &graph,
        10,
        &attack,
        "strangers held the cap of 48 from 3 addresses",
    );
}

/// At the connection cap, three addresses hold requests on a route of the program's own (beside
/// the webhook's) whose body comes a byte every 3 s: a request whose body has not all arrived
/// is shed for Graph's, and those routes never hold the places kept for the webhook's.
#[test]
fn at_the_connection_cap_bodies_trickled_to_another_route_are_shed_for_graph() {
    let graph = GraphSimulator::new(APP, TENANT);
    let limits = ServerLimits::default()
        .with_max_connections(48)
        .with_connections_per_address(16)
        .with_reserved_for_webhook(16);
    let server = start(&graph, "trickle-app", limits);
    let sources = ["127.0.0.21", "127.0.0.22", "127.0.0.23"];
    let head = b"POST /api/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx".to_vec();
    let attack = strangers(
        server.addr,
        &sources,
        16,
        Arc::new(head),
        Some(b"x"),
        Duration::ZERO,
    );
    wait_until_opened(&attack, 48);
    // Past the grace.
    std::thread::sleep(Duration::from_millis(1500));
    assert_graph_gets_through(
        server.addr,
        &graph,
        5,
        &attack,
        "strangers trickled bodies to /api/slow on 16 connections from each of 3 addresses",
    );
}

/// At the connection cap, three addresses send heads to `/notifications` that declare a body
/// and send none, reopening each as soon as it is answered (408 after the body's grace): a
/// request whose body has not arrived is shed for Graph's.
#[test]
fn at_the_connection_cap_heads_without_their_bodies_are_shed_for_graph() {
    let graph = GraphSimulator::new(APP, TENANT);
    let limits = ServerLimits::default()
        .with_max_connections(48)
        .with_connections_per_address(16);
    let server = start(&graph, "no-body", limits);
    let sources = ["127.0.0.31", "127.0.0.32", "127.0.0.33"];
    let head = b"POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".to_vec();
    let attack = strangers(
        server.addr,
        &sources,
        16,
        Arc::new(head),
        None,
        Duration::ZERO,
    );
    wait_until_opened(&attack, 48);
    // Through a whole cycle of the body's grace.
    std::thread::sleep(Duration::from_millis(2500));
    assert_graph_gets_through(
        server.addr,
        &graph,
        10,
        &attack,
        "strangers held heads without bodies on 16 connections from each of 3 addresses",
    );
}

/// POSTs `len` bytes to `/notifications` from 127.0.0.1, `piece` bytes every 100 ms, pausing
/// for `pause` once halfway (a stall of TCP); the status (0 when none came within 60 s).
fn paced_post(addr: SocketAddr, len: usize, piece: usize, pause: Duration) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /notifications HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let body = vec![b' '; len];
    let mut sent = 0;
    let mut paused = false;
    for chunk in body.chunks(piece) {
        if s.write_all(chunk).is_err() {
            break;
        }
        sent += chunk.len();
        if !paused && sent >= len / 2 {
            paused = true;
            std::thread::sleep(pause);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    status_of(&reply)
}

/// Large honest bodies from Graph's one address: three 10 MiB batches at once, each at about
/// 1.5 MB/s with a stall of a second halfway, are all read (202): the window's rate holds a
/// large body to half its average rate, and the address's share counts the 30 MiB received,
/// not the buffers' capacity.
#[test]
fn large_batches_at_once_through_a_stall_are_accepted() {
    let graph = GraphSimulator::new(APP, TENANT);
    let server = start(&graph, "large", ServerLimits::default());
    let addr = server.addr;
    let senders: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || paced_post(addr, 10 << 20, 150_000, Duration::from_secs(1)))
        })
        .collect();
    let statuses: Vec<u16> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    eprintln!("three 10 MiB bodies at about 1.5 MB/s with a 1 s stall: {statuses:?}");
    assert_eq!(statuses, [202; 3]);
}

/// Two addresses, each with many connections that declare 1,040,000 bytes, send 1,000,000 at
/// once, then a byte every 3 s (reopened when cut): they hold only their shares of the body
/// budget, and lose them once their last 2 s hold a byte; Graph's batches get 202 within 3 s.
/// (The budget is scaled down to 32 MiB, and the shares with it, to keep the test small.)
#[test]
fn bodies_that_stop_after_a_burst_from_two_addresses_leave_the_budget_to_graph() {
    let graph = GraphSimulator::new(APP, TENANT);
    let limits = ServerLimits::default()
        .with_body_budget(32 << 20)
        .with_body_budget_per_address(4 << 20);
    let server = start(&graph, "budget", limits);
    let mut burst =
        b"POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1040000\r\n\r\n"
            .to_vec();
    burst.extend(std::iter::repeat_n(b' ', 1_000_000));
    let per_source = 64;
    let attack = strangers(
        server.addr,
        &["127.0.0.8", "127.0.0.9"],
        per_source,
        Arc::new(burst),
        Some(b" "),
        Duration::from_millis(100),
    );
    wait_until_opened(&attack, 2 * per_source);
    assert_graph_gets_through(
        server.addr,
        &graph,
        10,
        &attack,
        &format!("strangers sent 1,000,000-byte bursts on {per_source} connections from each of 2 addresses"),
    );
}

/// A JWKS endpoint on loopback that serves `jwks`, or, while `drip` is set, its answer a byte
/// every half second (head and body): a byte a second, a little early. (ureq's own timeouts,
/// once passed, give each further wait a second, so a drip faster than that is never cut by
/// them.)
struct DrippingJwks {
    url: String,
    jwks: Arc<Mutex<Vec<u8>>>,
    drip: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Drop for DrippingJwks {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

impl DrippingJwks {
    fn start(jwks: Vec<u8>, drip: bool) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/keys", listener.local_addr().unwrap());
        let jwks = Arc::new(Mutex::new(jwks));
        let drip = Arc::new(AtomicBool::new(drip));
        let stop = Arc::new(AtomicBool::new(false));
        let (served, dripping, stopping) =
            (Arc::clone(&jwks), Arc::clone(&drip), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (served, dripping, stopping) = (
                    Arc::clone(&served),
                    Arc::clone(&dripping),
                    Arc::clone(&stopping),
                );
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if line == "\r\n" || line == "\n" {
                            break;
                        }
                        line.clear();
                    }
                    let body = served.lock().unwrap().clone();
                    let mut answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    answer.extend(body);
                    if !dripping.load(SeqCst) {
                        let _ = stream.write_all(&answer);
                        return;
                    }
                    // A byte every half second, for as long as the answer lasts (or the test).
                    for byte in answer {
                        if stopping.load(SeqCst) || stream.write_all(&[byte]).is_err() {
                            return;
                        }
                        std::thread::sleep(DRIP);
                    }
                });
            }
        });
        Self {
            url,
            jwks,
            drip,
            stop,
        }
    }
}

/// The pause between two bytes of a dripping answer.
const DRIP: Duration = Duration::from_millis(500);

/// Building the webhook against a JWKS endpoint that drips its answer fails, with a clear
/// error, within the JWKS deadline (and some slack), instead of hanging.
#[test]
fn a_dripping_jwks_answer_at_start_up_fails_within_the_deadline() {
    let graph = GraphSimulator::new(APP, TENANT);
    let endpoint = DrippingJwks::start(graph.jwks(), true);
    let url = endpoint.url.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let built = Webhook::builder(receiver())
            .inbox(MemoryInbox::new(1 << 20))
            .jwks(JwksSource::Url(url))
            .on_refusal(|_| {})
            .build();
        let _ = tx.send(built.map(|_| ()));
    });
    let bound = Duration::from_secs(5) + Duration::from_secs(10);
    let built = rx
        .recv_timeout(bound)
        .unwrap_or_else(|_| panic!("building the webhook still hangs after {bound:?}"));
    eprintln!(
        "start-up against a dripping JWKS ended after {:?}: {built:?}",
        started.elapsed()
    );
    match built {
        Err(BuildError::Jwks(reason)) => {
            assert!(reason.contains("signing keys"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// Over https, an endpoint that drips its TLS handshake (a record that never completes, a byte
/// every half second) is cut by the JWKS deadline too: the deadline holds on the socket under
/// TLS, not only on each read of TLS (one of which waits for a whole record).
#[test]
fn a_dripping_tls_handshake_at_start_up_fails_within_the_deadline() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/keys", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut hello = [0u8; 4096];
        let _ = stream.read(&mut hello);
        // A handshake record of 16 KiB: the client needs all of it before it can go on.
        let mut record = vec![0x16, 0x03, 0x03, 0x40, 0x00];
        record.extend([0u8; 60]);
        for byte in record {
            if stopping.load(SeqCst) || stream.write_all(&[byte]).is_err() {
                return;
            }
            std::thread::sleep(DRIP);
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let built = Webhook::builder(receiver())
            .inbox(MemoryInbox::new(1 << 20))
            .jwks(JwksSource::Url(url))
            .on_refusal(|_| {})
            .build();
        let _ = tx.send(built.map(|_| ()));
    });
    let bound = Duration::from_secs(5) + Duration::from_secs(10);
    let built = rx.recv_timeout(bound);
    stop.store(true, SeqCst);
    let built =
        built.unwrap_or_else(|_| panic!("building the webhook still hangs after {bound:?}"));
    eprintln!(
        "start-up against a dripping TLS handshake ended after {:?}: {built:?}",
        started.elapsed()
    );
    match built {
        Err(BuildError::Jwks(reason)) => assert!(reason.contains("signing keys"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// While running, a refresh whose answer drips is cut by the deadline; once the endpoint
/// answers normally again, a batch signed with the rotated key is accepted within a bounded
/// time (the stuck refresh does not block the next one).
#[test]
fn a_dripping_jwks_refresh_is_cut_and_the_rotated_key_is_learned() {
    let old = GraphSimulator::new(APP, TENANT);
    let endpoint = DrippingJwks::start(old.jwks(), false);
    let webhook = Webhook::builder(receiver())
        .inbox(MemoryInbox::new(1 << 30))
        .jwks(JwksSource::Url(endpoint.url.clone()))
        .jwks_min_interval(Duration::from_secs(1))
        .on_refusal(|_| {})
        .build()
        .unwrap();
    let server = serve(webhook);
    assert_eq!(
        graph_post(server.addr, "/notifications", &batch(&old, 1)),
        202
    );
    // The identity platform rotates, and its answer drips.
    let new = GraphSimulator::with_signing_key(
        &graph_chat_notifications::testing::generate_private_key(2048),
        "rotated-kid",
        APP,
        TENANT,
    );
    *endpoint.jwks.lock().unwrap() = new.jwks();
    endpoint.drip.store(true, SeqCst);
    std::thread::sleep(Duration::from_millis(1100));
    let rotated = batch(&new, 2);
    // Kept (503) while the refresh drips.
    assert_eq!(graph_post(server.addr, "/notifications", &rotated), 503);
    std::thread::sleep(Duration::from_secs(1));
    // The endpoint answers normally again.
    endpoint.drip.store(false, SeqCst);
    let answered_again = Instant::now();
    let bound = Duration::from_secs(5) + Duration::from_secs(10);
    let mut statuses = Vec::new();
    loop {
        let status = graph_post(server.addr, "/notifications", &rotated);
        statuses.push(status);
        if status == 202 {
            break;
        }
        assert!(
            answered_again.elapsed() < bound,
            "the rotated key is still unknown {bound:?} after the JWKS answered again: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "rotated key learned {:?} after the JWKS answered again ({} tries)",
        answered_again.elapsed(),
        statuses.len()
    );
}
