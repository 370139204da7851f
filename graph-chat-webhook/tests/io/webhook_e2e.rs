//! The `webhook` example driven over real HTTP on loopback: handshakes, a good batch, forged
//! tokens, lifecycle events, garbage, an over-limit body, 40 concurrent batches, and a clean
//! shutdown on SIGTERM.
#![cfg(all(feature = "sqlite", unix))]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;
use graph_chat_notifications::crypto::Certificate;
use graph_chat_notifications::model::{ChangeType, LifecycleEvent};
use graph_chat_notifications::testing::GraphSimulator;
use serde_json::Value;

struct Server {
    child: Child,
    addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    stream: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    })
}

/// A fresh inbox path for one test.
fn inbox_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gcn-webhook-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("inbox.sqlite")
}

impl Server {
    fn start(jwks_path: &str) -> Self {
        Self::start_args(&token_args(jwks_path, &inbox_path("e2e")))
    }

    /// A webhook checking tokens against the JWKS file of `graph`, with a fresh inbox for `name`.
    fn for_graph(graph: &GraphSimulator, name: &str) -> Self {
        Self::start_args(&args_for(graph, name))
    }

    fn start_args(extra: &[String]) -> Self {
        Self::start_with(&extra.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn start_with(extra: &[&str]) -> Self {
        Self::spawn(Command::new(example_path("webhook")), extra)
    }

    /// The webhook with at most `files` open files, as a service under systemd's default of
    /// 1,024.
    fn start_with_open_files(files: u32, extra: &[String]) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(example_path("webhook"));
        Self::spawn(
            command,
            &extra.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }

    fn spawn(mut command: Command, extra: &[&str]) -> Self {
        let key = format!(
            "graphsim-rsa2048={}",
            fixture("keys/rsa2048/key.pkcs8.pem").display()
        );
        let mut child = command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--key",
                &key,
                "--client-state",
                CLIENT_STATE,
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let found = stderr
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.strip_prefix("listening on ").map(|a| a.parse().unwrap()));
            if let Some(a) = found {
                break a;
            }
            assert!(
                Instant::now() < deadline,
                "the webhook did not start: {:?}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Server {
            child,
            addr,
            stdout,
            stderr,
            readers,
        }
    }

    /// Sends SIGTERM and waits up to `patience` for the exit.
    fn terminate(&mut self, patience: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {patience:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (`kill -9`) and waits until everything it wrote has been read: what
    /// was printed before it died, all of it.
    fn kill_and_drain(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
    }

    /// POSTs `body` to `target` (path and query); returns status, content type, body, time taken.
    fn post(&self, target: &str, body: &[u8]) -> (u16, String, String, Duration) {
        let started = Instant::now();
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        // A server may answer (413) and close before it has read everything.
        let _ = s.write_all(body);
        let mut response = Vec::new();
        let _ = s.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let content_type = headers
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_string)
            })
            .unwrap_or_default();
        (status, content_type, body.to_string(), started.elapsed())
    }

    /// Waits until stdout has at least `n` lines; returns them.
    fn stdout_lines(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = self.stdout.lock().unwrap().clone();
            if lines.len() >= n {
                return lines
                    .iter()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} lines: {lines:?}",
                lines.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr_count(&self, prefix: &str) -> usize {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_webhook_end_to_end() {
    let now = SystemTime::now();
    let graph = GraphSimulator::new(APP, TENANT);
    let jwks = std::env::temp_dir().join(format!("webhook-e2e-jwks-{}.json", std::process::id()));
    std::fs::write(&jwks, graph.jwks()).unwrap();
    let server = Server::start(jwks.to_str().unwrap());
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let message = |id: usize| {
        format!(
            r#"{{"id":"{id}","chatId":"19:e2e@thread.v2","body":{{"contentType":"text","content":"m{id}"}}}}"#
        )
    };
    let item = |id: usize| {
        graph.notification(
            &message(id),
            (&cert).into(),
            "graphsim-rsa2048",
            ChangeType::Created,
        )
    };

    // Handshakes on both URLs: 200 text/plain, the token decoded.
    for path in ["/notifications", "/lifecycle"] {
        let (status, ct, body, _) = server.post(
            &format!("{path}?validationToken=Validation%3A%20Testing+it%2B"),
            b"",
        );
        assert_eq!(
            (status, ct.as_str(), body.as_str()),
            (200, "text/plain; charset=utf-8", "Validation: Testing it+")
        );
    }

    // A good batch: 202, then one line per notification.
    // Answered within Graph's 3 s, or Graph counts it failed.
    let status = graph_post(
        server.addr,
        "/notifications",
        &graph.collection(&[item(1), item(2)], &[graph.token(now)]),
    );
    assert_eq!(status, 202);
    let lines = server.stdout_lines(2);
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[1]["content"]["body"]["content"], "m2");

    // Forged tokens: still 202, nothing decrypted, one line on stderr.
    let forger = GraphSimulator::new(APP, TENANT);
    let (status, _, _, _) = server.post(
        "/notifications",
        &graph.collection(&[item(3)], &[forger.token(now)]),
    );
    assert_eq!(status, 202);
    wait_for("the refusal", || {
        server.stderr_count("webhook: batch refused") == 1
    });
    // Encrypted content without tokens: refused the same way.
    let (status, _, _, _) = server.post("/notifications", &graph.collection(&[item(4)], &[]));
    assert_eq!(status, 202);
    wait_for("the second refusal", || {
        server.stderr_count("webhook: batch refused") == 2
    });

    // Lifecycle events, known and unknown.
    let events = [
        graph.lifecycle("s1", LifecycleEvent::ReauthorizationRequired),
        graph.lifecycle(
            "s1",
            graph_chat_notifications::model::EnumValue::new("somethingNew"),
        ),
    ];
    assert_eq!(
        server.post("/lifecycle", &graph.collection(&events, &[])).0,
        202
    );
    let lines = server.stdout_lines(4);
    assert_eq!(lines[2]["lifecycleEvent"], "reauthorizationRequired");
    assert_eq!(lines[3]["lifecycleEvent"], "somethingNew");

    // Garbage: 202 whatever it is, a line on stderr for each.
    let before = server.stderr_count("webhook: batch refused");
    for garbage in [
        &b""[..],
        b"not json",
        b"\xff\xfe\x00",
        b"{\"value\": 5}",
        b"[[[[[[[[[[[[[[[[[[",
    ] {
        assert_eq!(server.post("/notifications", garbage).0, 202);
    }
    wait_for("five refusals", || {
        server.stderr_count("webhook: batch refused") == before + 5
    });

    // Past the body limit (16 MiB): 413, and nothing queued.
    let huge = vec![b' '; 16 * 1024 * 1024 + 1];
    assert_eq!(server.post("/notifications", &huge).0, 413);

    // 40 concurrent batches of 3: every notification exactly once, every reply fast.
    let before = server.stdout.lock().unwrap().len();
    let bodies: Vec<Vec<u8>> = (0..40)
        .map(|b| {
            graph.collection(
                &[item(1000 + b * 3), item(1001 + b * 3), item(1002 + b * 3)],
                &[graph.token(now)],
            )
        })
        .collect();
    let replies: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|body| s.spawn(|| graph_post(server.addr, "/notifications", body)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(replies, vec![202; 40], "each answered within Graph's 3 s");
    let lines = server.stdout_lines(before + 120);
    let mut ids: Vec<String> = lines[before..]
        .iter()
        .map(|l| {
            assert_eq!(l["ok"], true, "{l}");
            l["content"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (1000..1120).map(|i: usize| i.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected);

    // SIGTERM: a clean exit, status 0.
    let mut server = server;
    let status = server.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let _ = std::fs::remove_file(jwks);
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory so far, from `/proc` (KiB).
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// The content ids printed so far.
    fn printed_ids(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|l| l["content"]["id"].as_str().map(str::to_string))
            .collect()
    }
}

/// `count` batches of 20 message notifications, ids from `first`, each with `token`.
fn batches_of_20(
    graph: &GraphSimulator,
    cert: &Certificate,
    token: &str,
    first: usize,
    count: usize,
) -> Vec<(Vec<usize>, Vec<u8>)> {
    (0..count)
        .map(|b| {
            let ids: Vec<usize> = (first + b * 20..first + b * 20 + 20).collect();
            let items: Vec<Value> = ids.iter().map(|&i| message_item(graph, cert, i)).collect();
            (ids, graph.collection(&items, &[token.to_string()]))
        })
        .collect()
}

impl Server {
    /// POSTs every batch from `senders` threads; returns the ids of the batches answered 202.
    fn post_all(&self, bodies: &[(Vec<usize>, Vec<u8>)], senders: usize) -> Vec<usize> {
        std::thread::scope(|s| {
            let chunks: Vec<_> = bodies
                .chunks(bodies.len().div_ceil(senders))
                .map(|chunk| {
                    s.spawn(move || {
                        let mut ok = Vec::new();
                        for (ids, body) in chunk {
                            if self.post("/notifications", body).0 == 202 {
                                ok.extend(ids);
                            }
                        }
                        ok
                    })
                })
                .collect();
            chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
        })
    }
}

fn message_item(graph: &GraphSimulator, cert: &Certificate, id: usize) -> Value {
    graph.notification(
        &format!(r#"{{"id":"{id}","chatId":"19:e2e@thread.v2","body":{{"contentType":"text","content":"m{id}"}}}}"#),
        cert.into(),
        "graphsim-rsa2048",
        ChangeType::Created,
    )
}

/// The arguments of a webhook checking tokens against the JWKS file of `graph`, with a fresh
/// inbox for `name` (the same arguments start it again on the same inbox).
fn args_for(graph: &GraphSimulator, name: &str) -> Vec<String> {
    token_args(jwks_file(graph, name).to_str().unwrap(), &inbox_path(name))
}

/// The arguments of a webhook checking tokens against the JWKS file at `jwks`, for this
/// test's app and tenant, with its inbox at `inbox`.
fn token_args(jwks: &str, inbox: &std::path::Path) -> Vec<String> {
    [
        "--jwks",
        jwks,
        "--app-id",
        APP,
        "--tenant-id",
        TENANT,
        "--inbox",
        inbox.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn jwks_file(graph: &GraphSimulator, name: &str) -> std::path::PathBuf {
    let path = inbox_path(&format!("{name}-jwks")).with_file_name("jwks.json");
    std::fs::write(&path, graph.jwks()).unwrap();
    path
}

#[test]
fn the_webhook_refuses_to_start_unsafe() {
    let graph = GraphSimulator::new(APP, TENANT);
    let jwks = jwks_file(&graph, "refuse");
    let inbox = inbox_path("refuse");
    let key = format!(
        "graphsim-rsa2048={}",
        fixture("keys/rsa2048/key.pkcs8.pem").display()
    );
    let base = [
        "--listen",
        "127.0.0.1:0",
        "--key",
        key.as_str(),
        "--client-state",
        CLIENT_STATE,
    ];
    let jwks_args = [
        "--jwks",
        jwks.to_str().unwrap(),
        "--app-id",
        APP,
        "--tenant-id",
        TENANT,
    ];
    for (extra, why) in [
        (
            vec!["--inbox", inbox.to_str().unwrap()],
            "--jwks is required",
        ),
        (jwks_args.to_vec(), "--inbox is required"),
        (
            [
                &jwks_args[..],
                &["--inbox", inbox.to_str().unwrap(), "--insecure-no-tokens"],
            ]
            .concat(),
            "contradicts",
        ),
        (
            vec![
                "--jwks",
                "http://127.0.0.1:9/keys",
                "--app-id",
                APP,
                "--tenant-id",
                TENANT,
                "--inbox",
                inbox.to_str().unwrap(),
            ],
            "cannot load the signing keys",
        ),
    ] {
        let out = Command::new(example_path("webhook"))
            .args(base)
            .args(&extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(why), "{extra:?}: {stderr}");
    }
    // Explicitly insecure, it starts (and says so).
    let server = Server::start_with(&["--insecure-no-tokens", "--inbox", inbox.to_str().unwrap()]);
    assert_eq!(server.stderr_count("webhook: WARNING"), 1);
}

#[test]
fn acknowledged_batches_survive_kill_dash_nine() {
    let now = SystemTime::now();
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let args = args_for(&graph, "kill9");
    let token = graph.token(now);
    // 150 batches of 20 notifications: several seconds of RSA work for the workers, sent in
    // about one, so that work is pending when the process is killed.
    let bodies = batches_of_20(&graph, &cert, &token, 0, 150);
    let mut first = Server::start_args(&args);
    let acknowledged = first.post_all(&bodies, 8);
    assert_eq!(acknowledged.len(), 3000, "every batch acknowledged");
    // kill -9 at once: no chance to finish anything.
    first.kill_and_drain();
    let before: HashSet<String> = first.printed_ids().into_iter().collect();
    assert!(
        before.len() < 3000,
        "work was pending when the process died ({} of 3000 printed)",
        before.len()
    );

    // A restart on the same inbox finishes what was accepted: every acknowledged notification
    // is printed, by one run or the other (a batch in hand at the kill may print twice).
    let second = Server::start_args(&args);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut all = before.clone();
        all.extend(second.printed_ids());
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|i| !all.contains(&i.to_string()))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged notifications never printed",
            missing.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !second.printed_ids().is_empty(),
        "the restart drained the inbox"
    );
}

/// A batch the inbox cannot commit is answered 503, never 202, and is not processed; Graph's
/// retry, once the inbox can commit again, is taken and printed. The inbox is made unable to
/// commit by another connection holding SQLite's write lock past the webhook's busy timeout.
#[test]
fn a_batch_the_inbox_cannot_commit_is_answered_503_and_taken_on_retry() {
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let args = args_for(&graph, "locked");
    let inbox = args[args.iter().position(|a| a == "--inbox").unwrap() + 1].clone();
    let server = Server::start_args(&args);
    let token = graph.token(SystemTime::now());
    let body = graph.collection(
        &[
            message_item(&graph, &cert, 7001),
            message_item(&graph, &cert, 7002),
        ],
        std::slice::from_ref(&token),
    );

    let holder = rusqlite::Connection::open(&inbox).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (status, _, _, _) = server.post("/notifications", &body);
    assert_eq!(
        status, 503,
        "a batch that was not committed is not acknowledged"
    );
    // The server's stderr is read by another thread: the line may land just after the reply.
    wait_for("the 503 to be logged", || {
        server.stderr_count("webhook: batch not accepted (503") >= 1
    });
    assert_eq!(server.stderr_count("webhook: batch not accepted (503"), 1);
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        server.printed_ids().is_empty(),
        "nothing of it was processed: {:?}",
        server.stderr.lock().unwrap()
    );

    // Graph retries the same body: now it is committed, acknowledged and printed.
    assert_eq!(server.post("/notifications", &body).0, 202);
    wait_for("the retried batch to be printed", || {
        let ids = server.printed_ids();
        ids.contains(&"7001".to_string()) && ids.contains(&"7002".to_string())
    });
}

#[test]
fn a_flood_of_large_hostile_bodies_beside_real_batches() {
    let now = SystemTime::now();
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let server = Server::for_graph(&graph, "flood");
    // 15 MiB of padding beside a forged token (the right kid, a wrong signature).
    let forger_token = {
        let t = graph.token(now);
        let (signed, _) = t.rsplit_once('.').unwrap();
        format!("{signed}.AAAA")
    };
    let hostile = {
        let mut body = String::from("{\"padding\":\"");
        body.push_str(&"x".repeat(15 << 20));
        body.push_str("\",\"value\":[");
        body.push_str(&serde_json::to_string(&message_item(&graph, &cert, 0)).unwrap());
        body.push_str("],\"validationTokens\":[\"");
        body.push_str(&forger_token);
        body.push_str("\"]}");
        body.into_bytes()
    };
    let token = graph.token(now);
    let good: Vec<Vec<u8>> = (0..20)
        .map(|b| {
            graph.collection(
                &[message_item(&graph, &cert, 10_000 + b)],
                std::slice::from_ref(&token),
            )
        })
        .collect();
    let (good_replies, handshakes, hostile_statuses) = std::thread::scope(|s| {
        let flood: Vec<_> = (0..120)
            .map(|_| s.spawn(|| server.post("/notifications", &hostile).0))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let good_replies: Vec<u16> = good
            .iter()
            .map(|body| graph_post(server.addr, "/notifications", body))
            .collect();
        let handshakes: Vec<u16> = (0..10)
            .map(|_| {
                post_within(
                    server.addr,
                    "/notifications?validationToken=abc",
                    b"",
                    Duration::from_secs(2),
                )
            })
            .collect();
        let statuses: Vec<u16> = flood.into_iter().map(|h| h.join().unwrap()).collect();
        (good_replies, handshakes, statuses)
    });
    assert_eq!(
        good_replies,
        vec![202; 20],
        "Graph's batches are accepted during the flood, each within Graph's 3 s"
    );
    assert_eq!(handshakes, [200; 10], "handshakes answered within 2 s");
    // Hostile bodies: accepted-and-dropped (202), or turned away (503); never stored.
    assert!(hostile_statuses
        .iter()
        .all(|s| *s == 202 || *s == 503 || *s == 0));
    let printed = server.stdout_lines(20);
    assert_eq!(printed.len(), 20, "nothing hostile was stored: {printed:?}");
    let peak_mib = server.peak_rss_kib() / 1024;
    eprintln!("webhook peak RSS during the flood: {peak_mib} MiB");
    assert!(peak_mib < 300, "peak RSS {peak_mib} MiB");
}

/// A JWKS endpoint on loopback that counts its fetches and can rotate its keys.
struct JwksServer {
    url: String,
    jwks: Arc<Mutex<Vec<u8>>>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    fn start(jwks: Vec<u8>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/discovery/v2.0/keys",
            listener.local_addr().unwrap()
        );
        let jwks = Arc::new(Mutex::new(jwks));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&jwks), Arc::clone(&fetches));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // The request line and headers, up to the blank line.
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" || line == "\n" {
                        break;
                    }
                    line.clear();
                }
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = served.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Self { url, jwks, fetches }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn the_jwks_over_http_rotated_mid_test_under_a_storm_of_unknown_kids() {
    let started = Instant::now();
    let now = SystemTime::now();
    let old = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let endpoint = JwksServer::start(old.jwks());
    let inbox = inbox_path("jwks-http");
    let server = Server::start_with(&[
        "--jwks",
        &endpoint.url,
        "--app-id",
        APP,
        "--tenant-id",
        TENANT,
        "--inbox",
        inbox.to_str().unwrap(),
        "--jwks-min-interval",
        "2",
    ]);
    assert_eq!(endpoint.fetches(), 1, "fetched once at start");
    let item = message_item(&old, &cert, 1);
    assert_eq!(
        server
            .post(
                "/notifications",
                &old.collection(std::slice::from_ref(&item), &[old.token(now)])
            )
            .0,
        202
    );

    // A storm: 300 tokens naming unknown kids over about three seconds.
    let mut statuses = Vec::new();
    for i in 0..300 {
        let mut header = old.header();
        header["kid"] = serde_json::json!(format!("storm-{i}"));
        let token = format!(
            "{}.c2lnbmF0dXJl",
            graph_chat_notifications::testing::signing_input(&header, &old.claims_v1(now))
        );
        statuses.push(
            server
                .post(
                    "/notifications",
                    &old.collection(std::slice::from_ref(&item), &[token]),
                )
                .0,
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Never stored: kept out with 503 until a fetch decided, then dropped with 202.
    assert!(
        statuses.iter().all(|s| *s == 503 || *s == 202),
        "{statuses:?}"
    );
    assert!(statuses.contains(&503));
    let allowed = |elapsed: Duration| 1 + (elapsed.as_secs() as usize / 2) + 1;
    assert!(
        endpoint.fetches() <= allowed(started.elapsed()),
        "{} fetches in {:?}",
        endpoint.fetches(),
        started.elapsed()
    );

    // The identity platform rotates: the endpoint now lists only the new key.
    let new = GraphSimulator::with_signing_key(
        &graph_chat_notifications::testing::generate_private_key(2048),
        "rotated-kid",
        APP,
        TENANT,
    );
    assert_ne!(new.kid(), old.kid());
    *endpoint.jwks.lock().unwrap() = new.jwks();
    let body = new.collection(&[message_item(&new, &cert, 2)], &[new.token(now)]);
    // Graph retries the held batch while other traffic (signed with the old key) flows.
    let traffic_ids: Vec<usize> = (0..40).map(|i| 70_000 + i).collect();
    let traffic_bodies: Vec<Vec<u8>> = traffic_ids
        .iter()
        .map(|&i| old.collection(&[message_item(&old, &cert, i)], &[old.token(now)]))
        .collect();
    std::thread::scope(|s| {
        let traffic = s.spawn(|| {
            for body in &traffic_bodies {
                assert_eq!(server.post("/notifications", body).0, 202);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = server.post("/notifications", &body).0;
            if status == 202 {
                break;
            }
            assert_eq!(status, 503, "kept (503) until the policy allows a fetch");
            assert!(Instant::now() < deadline, "the new key was never fetched");
            std::thread::sleep(Duration::from_millis(200));
        }
        traffic.join().unwrap();
    });
    // A batch signed with the old key, received now, still validates: known keys are kept.
    assert_eq!(
        server
            .post(
                "/notifications",
                &old.collection(&[message_item(&old, &cert, 3)], &[old.token(now)])
            )
            .0,
        202
    );
    let ids = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ids = server.printed_ids();
            if ids.len() >= 3 + traffic_ids.len() || Instant::now() > deadline {
                break ids;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut sorted: Vec<usize> = ids.iter().map(|i| i.parse().unwrap()).collect();
    sorted.sort();
    let mut expected = vec![1, 2, 3];
    expected.extend(&traffic_ids);
    assert_eq!(sorted, expected, "only the genuine batches were stored");
    assert!(
        endpoint.fetches() <= allowed(started.elapsed()),
        "{} fetches in {:?}",
        endpoint.fetches(),
        started.elapsed()
    );
}

impl Server {
    /// Sends a raw request (method, target, extra headers, body); returns the status line and
    /// headers.
    fn request(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut response = Vec::new();
        let _ = s.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }
}

#[test]
fn event_grid_is_off_unless_asked_for() {
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let server = Server::for_graph(&graph, "eventgrid-off");
    let events = graph.cloud_events(&[message_item(&graph, &cert, 1)]);
    let bearer = format!("Bearer {}", graph.event_grid_bearer(SystemTime::now()));
    let reply = server.request(
        "POST",
        "/eventgrid",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/cloudevents-batch+json"),
        ],
        &events,
    );
    assert_eq!(status_of(reply.as_bytes()), 404, "{reply}");
    let reply = server.request(
        "OPTIONS",
        "/eventgrid",
        &[("WebHook-Request-Origin", "eventgrid.azure.net")],
        b"",
    );
    assert_ne!(status_of(reply.as_bytes()), 200, "{reply}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.printed_ids().is_empty());
}

#[test]
fn event_grid_deliveries_through_the_same_inbox() {
    let now = SystemTime::now();
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let mut args = args_for(&graph, "eventgrid");
    args.push("--event-grid".into());
    let server = Server::start_args(&args);
    // The abuse-protection handshake.
    let reply = server.request(
        "OPTIONS",
        "/eventgrid",
        &[
            ("WebHook-Request-Origin", "eventgrid.azure.net"),
            ("WebHook-Request-Rate", "120"),
        ],
        b"",
    );
    let lower = reply.to_ascii_lowercase();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        lower.contains("webhook-allowed-origin: eventgrid.azure.net"),
        "{reply}"
    );
    assert!(lower.contains("webhook-allowed-rate: *"), "{reply}");
    let refused = server.request("OPTIONS", "/eventgrid", &[], b"");
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");

    let bearer = format!("Bearer {}", graph.event_grid_bearer(now));
    let post = |body: &[u8], authorization: Option<&str>| {
        let mut headers = vec![("Content-Type", "application/cloudevents-batch+json")];
        if let Some(a) = authorization {
            headers.push(("Authorization", a));
        }
        status_of(
            server
                .request("POST", "/eventgrid", &headers, body)
                .as_bytes(),
        )
    };

    // A batch of CloudEvents, and one event alone: stored, then printed with their types.
    let events = graph.cloud_events(&[
        message_item(&graph, &cert, 1),
        message_item(&graph, &cert, 2),
    ]);
    assert_eq!(post(&events, Some(&bearer)), 202);
    let one = serde_json::to_vec(&graph.cloud_event(&message_item(&graph, &cert, 3))).unwrap();
    assert_eq!(post(&one, Some(&bearer)), 202);
    let lines = server.stdout_lines(3);
    for line in &lines {
        assert_eq!(line["ok"], true, "{line}");
        assert_eq!(line["eventType"], "Microsoft.Graph.ChatMessageCreated");
    }

    // Forgeries: the encrypted notification is genuine-looking (anyone can encrypt for the
    // public certificate) but the bearer is missing, forged, Graph's own validation token (the
    // wrong publisher), or the tenant is not served. Refused, stored nowhere.
    let forger = GraphSimulator::new(APP, TENANT);
    let forged = format!("Bearer {}", forger.event_grid_bearer(now));
    let graph_token = format!("Bearer {}", graph.token(now));
    let before = server.stderr_count("webhook: batch not accepted (401)");
    for authorization in [None, Some(forged.as_str()), Some(graph_token.as_str())] {
        let status = post(&events, authorization);
        assert!(
            status == 401 || status == 503,
            "{authorization:?}: {status}"
        );
    }
    wait_for("the bearer refusals", || {
        server.stderr_count("webhook: batch not accepted (401)") >= before + 2
    });
    let stranger = GraphSimulator::new(APP, "99999999-9999-9999-9999-999999999999");
    let foreign = stranger.cloud_events(&[message_item(&stranger, &cert, 4)]);
    assert_eq!(post(&foreign, Some(&bearer)), 202);
    wait_for("the tenant refusal", || {
        server.stderr_count("webhook: batch refused") >= 1
    });
    // A webhook collection posted to /eventgrid is not CloudEvents: refused, stored nowhere.
    let before = server.stderr_count("webhook: batch refused");
    let collection = graph.collection(&[message_item(&graph, &cert, 5)], &[]);
    assert_eq!(post(&collection, Some(&bearer)), 202);
    wait_for("the refusal", || {
        server.stderr_count("webhook: batch refused") == before + 1
    });
    std::thread::sleep(Duration::from_millis(300));
    let ids = server.printed_ids();
    assert_eq!(ids.len(), 3, "{ids:?}");
}

/// What the slow senders did: how many half-sent requests they opened, and how many the server
/// has closed.
struct Attack {
    half_heads: usize,
    closed: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    runtime: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(r) = self.runtime.take() {
            let _ = r.join();
        }
    }
}

/// Everything ends within this, whatever the server does.
const ATTACK_BOUND: Duration = Duration::from_secs(60);

/// From `source` (another loopback address than Graph's): 48 connections trickling
/// Graph-sized bodies (2 bytes every 0.4 s, reconnecting when cut), `half_heads` that send half
/// a request head and go quiet, and 100 that add a header line every 2 s.
fn slow_senders(target: SocketAddr, source: &str, half_heads: usize) -> Attack {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let source: std::net::IpAddr = source.parse().unwrap();
    let (counted, stopping) = (Arc::clone(&closed), Arc::clone(&stop));
    let runtime = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            // A connection the server's backlog never takes is no connection held open: give
            // up on it after 10 s, as a client would.
            let connect = move || async move {
                let socket = tokio::net::TcpSocket::new_v4().ok()?;
                socket.bind(SocketAddr::new(source, 0)).ok()?;
                tokio::time::timeout(Duration::from_secs(10), socket.connect(target))
                    .await
                    .ok()?
                    .ok()
            };
            let started = tokio::time::Instant::now();
            let end = started + ATTACK_BOUND;
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..half_heads {
                let (counted, stopping) = (Arc::clone(&counted), Arc::clone(&stopping));
                tasks.spawn(async move {
                    let Some(mut s) = connect().await else {
                        counted.fetch_add(1, SeqCst);
                        return;
                    };
                    let _ = s
                        .write_all(b"POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Le")
                        .await;
                    let mut buf = [0u8; 64];
                    // Until the server closes it (EOF or reset), or the bound.
                    loop {
                        tokio::select! {
                            read = s.read(&mut buf) => {
                                if matches!(read, Ok(0) | Err(_)) { break; }
                            }
                            _ = tokio::time::sleep_until(end) => return,
                        }
                        if stopping.load(SeqCst) {
                            return;
                        }
                    }
                    counted.fetch_add(1, SeqCst);
                });
            }
            for i in 0..100 {
                let stopping = Arc::clone(&stopping);
                tasks.spawn(async move {
                    let Some(mut s) = connect().await else { return };
                    if s.write_all(b"POST /notifications HTTP/1.1\r\nHost: x\r\n").await.is_err() {
                        return;
                    }
                    for line in 0.. {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        let header = format!("X-Slow-{i}-{line}: v\r\n");
                        if stopping.load(SeqCst)
                            || tokio::time::Instant::now() > end
                            || s.write_all(header.as_bytes()).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
            for _ in 0..48 {
                let stopping = Arc::clone(&stopping);
                tasks.spawn(async move {
                    while !stopping.load(SeqCst) && tokio::time::Instant::now() < end {
                        let Some(mut s) = connect().await else {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        };
                        let head = "POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n";
                        if s.write_all(head.as_bytes()).await.is_err() {
                            continue;
                        }
                        loop {
                            tokio::time::sleep(Duration::from_millis(400)).await;
                            if stopping.load(SeqCst)
                                || tokio::time::Instant::now() > end
                                || s.write_all(b"  ").await.is_err()
                            {
                                break;
                            }
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        });
    });
    Attack {
        half_heads,
        closed,
        stop,
        runtime: Some(runtime),
    }
}

/// POSTs from 127.0.0.1 as Graph does, waiting at most Graph's 3 s for the reply; the status,
/// or 0 when no reply came in time (Graph counts that as a failure).
fn graph_post(addr: SocketAddr, target: &str, body: &[u8]) -> u16 {
    post_within(addr, target, body, Duration::from_secs(3))
}

/// POSTs, giving up on a reply after `patience`; the status, or 0 when none came.
fn post_within(addr: SocketAddr, target: &str, body: &[u8], patience: Duration) -> u16 {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, patience) else {
        return 0;
    };
    s.set_read_timeout(Some(patience)).unwrap();
    s.set_write_timeout(Some(patience)).unwrap();
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
        match s.read(&mut reply[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    status_of(&reply[..n])
}

/// One source address trickling bodies and heads on 1,248 connections, the webhook at 1,024
/// open files: Graph's batches from another address are answered 202 within its 3 s and
/// decrypted, handshakes within 2 s, and every half-sent request is closed within 45 s.
#[test]
fn slow_senders_on_a_thousand_connections_do_not_deny_graph() {
    // The attacker (this process) needs its own 1,248 sockets and more.
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft: Option<u64> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok());
    assert!(
        soft.is_none_or(|n| n >= 4096),
        "this test opens 1,248 connections: raise the open-file limit (ulimit -n 4096), got {soft:?}"
    );
    let now = SystemTime::now();
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let server = Server::start_with_open_files(1024, &args_for(&graph, "slow-senders"));
    let attack = slow_senders(server.addr, "127.0.0.2", 1100);
    std::thread::sleep(Duration::from_millis(1500));
    let token = graph.token(now);
    let mut statuses = Vec::new();
    for b in 0..13 {
        let items: Vec<Value> = (0..20)
            .map(|i| message_item(&graph, &cert, 20_000 + b * 20 + i))
            .collect();
        let body = graph.collection(&items, std::slice::from_ref(&token));
        statuses.push(graph_post(server.addr, "/notifications", &body));
    }
    let handshakes: Vec<u16> = (0..3)
        .map(|_| {
            let addr = server.addr;
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = write!(
                s,
                "POST /notifications?validationToken=hello HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            if reply.ends_with("\r\n\r\nhello") {
                200
            } else {
                0
            }
        })
        .collect();
    assert_eq!(statuses, vec![202; 13], "Graph's batches during the attack");
    assert_eq!(handshakes, [200; 3], "handshakes during the attack");
    // Every real notification is decrypted and printed.
    let expected: HashSet<String> = (20_000..20_260).map(|i: usize| i.to_string()).collect();
    wait_for("the real notifications", || {
        let printed: HashSet<String> = server.printed_ids().into_iter().collect();
        expected.is_subset(&printed)
    });
    // The half-sent requests are closed by the server, within 45 s of the attack.
    let deadline = Instant::now() + Duration::from_secs(44);
    loop {
        let closed = attack.closed.load(std::sync::atomic::Ordering::SeqCst);
        if closed == attack.half_heads {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{closed} of {} half-sent requests closed",
            attack.half_heads
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(attack);
    assert!(server.stderr_count("webhook: ") > 0);
}

/// SIGTERM while strangers hold half-sent requests open: the process still exits, cleanly.
#[test]
fn sigterm_during_half_sent_requests_exits() {
    let graph = GraphSimulator::new(APP, TENANT);
    let mut server = Server::for_graph(&graph, "sigterm-half");
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(
            b"POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"val",
        )
        .unwrap();
        held.push(s);
    }
    let mut half_head = TcpStream::connect(server.addr).unwrap();
    half_head.write_all(b"POST /notifications HTT").unwrap();
    held.push(half_head);
    std::thread::sleep(Duration::from_millis(300));
    // The shutdown grace is 5 s; nothing the strangers do keeps it open past it.
    let status = server.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    drop(held);
}

/// Acknowledged work pending at a `kill -9`, then a restart whose JWKS no longer lists the key
/// the batches were verified with: every acknowledged notification is printed all the same
/// (admission's verdict is stored; nothing is verified twice).
#[test]
fn acknowledged_batches_survive_a_key_rotation_across_a_restart() {
    let now = SystemTime::now();
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let mut args = args_for(&graph, "rotation-restart");
    args.extend(["--jwks-min-interval".to_string(), "1".to_string()]);
    let jwks = args[args.iter().position(|a| a == "--jwks").unwrap() + 1].clone();
    let token = graph.token(now);
    let bodies = batches_of_20(&graph, &cert, &token, 50_000, 60);
    let mut first = Server::start_args(&args);
    let acknowledged = first.post_all(&bodies, 4);
    assert_eq!(acknowledged.len(), 1200);
    first.kill_and_drain();
    let before: HashSet<String> = first.printed_ids().into_iter().collect();

    // The identity platform rotated: the JWKS lists only a new key.
    let rotated = GraphSimulator::with_signing_key(
        &graph_chat_notifications::testing::generate_private_key(2048),
        "rotated-after-restart",
        APP,
        TENANT,
    );
    std::fs::write(&jwks, rotated.jwks()).unwrap();
    let second = Server::start_args(&args);
    // New traffic, signed with the new key, flows meanwhile.
    assert_eq!(
        second
            .post(
                "/notifications",
                &rotated.collection(
                    &[message_item(&rotated, &cert, 99_999)],
                    &[rotated.token(now)]
                )
            )
            .0,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut all = before.clone();
        all.extend(second.printed_ids());
        let missing = acknowledged
            .iter()
            .filter(|i| !all.contains(&i.to_string()))
            .count();
        if missing == 0 && all.contains("99999") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged notifications never printed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(second.stderr_count("webhook: batch refused"), 0);
}

/// A batch mixing a genuine notification and one with a wrong `clientState`: the genuine one is
/// stored and printed, the other is refused alone, printed as `ok: false` naming `clientState`
/// (as `decrypt` prints it), and never stored.
#[test]
fn a_notification_refused_alone_leaves_its_neighbours() {
    let now = SystemTime::now();
    let graph = GraphSimulator::new(APP, TENANT);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let server = Server::for_graph(&graph, "mixed");
    let mut forged = message_item(&graph, &cert, 2);
    forged["clientState"] = "guessed".into();
    let body = graph.collection(
        &[message_item(&graph, &cert, 1), forged],
        &[graph.token(now)],
    );
    assert_eq!(server.post("/notifications", &body).0, 202);
    let lines = server.stdout_lines(2);
    let by_index = |i: u64| {
        lines
            .iter()
            .find(|l| l["index"] == i)
            .unwrap_or_else(|| panic!("no line for {i}: {lines:?}"))
    };
    assert_eq!(by_index(0)["ok"], true);
    assert_eq!(by_index(0)["content"]["id"], "1");
    assert_eq!(by_index(1)["ok"], false);
    let error = by_index(1)["error"].as_str().unwrap();
    assert!(error.contains("clientState"), "{error}");
    assert!(
        !error.contains("guessed"),
        "the value sent is not echoed: {error}"
    );
    assert_eq!(server.printed_ids(), ["1"]);
    wait_for("the refusal line", || {
        server.stderr_count("webhook: notification refused") == 1
    });
}
