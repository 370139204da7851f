//! The `webhook` example driven over real HTTP on loopback: handshakes, a good batch, forged
//! tokens, lifecycle events, garbage, an over-limit body, 40 concurrent batches, and a clean
//! shutdown on SIGTERM.
#![cfg(all(feature = "rust-crypto", unix))]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use graph_chat_notifications::crypto::Certificate;
use graph_chat_notifications::testing::GraphSimulator;
use graph_chat_notifications::webhook::{ChangeType, LifecycleEvent};
use serde_json::Value;

const APP: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1";

struct Server {
    child: Child,
    addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
}

impl Server {
    fn start(jwks_path: &str) -> Self {
        let key = format!(
            "graphsim-rsa2048={}",
            fixture("keys/rsa2048/key.pkcs8.pem").display()
        );
        let mut child = Command::new(example_path("webhook"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--key",
                &key,
                "--client-state",
                CLIENT_STATE,
            ])
            .args(["--jwks", jwks_path, "--app-id", APP, "--tenant-id", TENANT])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), Arc::clone(&stdout));
        collect(child.stderr.take().unwrap(), Arc::clone(&stderr));
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
    let (status, _, _, took) = server.post(
        "/notifications",
        &graph.collection(&[item(1), item(2)], &[graph.token(now)]),
    );
    assert_eq!(status, 202);
    assert!(took < Duration::from_secs(3));
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
        graph.lifecycle("s1", LifecycleEvent::Other("somethingNew".into())),
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
    let replies: Vec<(u16, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|body| {
                s.spawn(|| {
                    let r = server.post("/notifications", body);
                    (r.0, r.3)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, took) in &replies {
        assert_eq!(*status, 202);
        assert!(*took < Duration::from_secs(3), "{took:?}");
    }
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
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let _ = std::fs::remove_file(jwks);
}
