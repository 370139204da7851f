//! The app's event streams (`GET /api/events`) held open from a few addresses do not take the
//! places Graph's deliveries need on the listener the webhook shares with the app.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface: strangers bind 127.0.0.2 and up,
//! Graph (the test, and the simulator) comes from 127.0.0.1.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// Streams each stranger address opens: the per-address connection cap the webhook had before
/// streams were counted apart (three addresses then filled its 768 connections).
const STREAMS_PER_STRANGER: usize = 256;

/// Graph's patience for an answer.
const GRAPH_PATIENCE: Duration = Duration::from_secs(3);

/// A validation handshake to the app's webhook, from 127.0.0.1: whether it was answered 200
/// with the token within Graph's 3 s.
fn handshake(addr: SocketAddr) -> bool {
    let started = Instant::now();
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, GRAPH_PATIENCE) else {
        return false;
    };
    s.set_read_timeout(Some(GRAPH_PATIENCE)).unwrap();
    let sent = s.write_all(
        b"POST /notifications?validationToken=hello HTTP/1.1\r\nHost: webhook.example.com\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    if sent.is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    started.elapsed() < GRAPH_PATIENCE
        && reply.starts_with(b"HTTP/1.1 200")
        && reply.ends_with(b"hello")
}

/// Writes all of `data` (tokio's `net` feature alone: no `io-util`).
async fn write_all(s: &tokio::net::TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        s.writable().await?;
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what has arrived (waiting for something).
async fn read(s: &tokio::net::TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        s.readable().await?;
        match s.try_read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn event_streams_from_three_addresses_leave_the_webhook_its_places() {
    let h = Harness::start(Duration::from_secs(600));
    let chat = h.chat_ids().into_iter().next().expect("a chat");
    let base = h.url();
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let addr: SocketAddr = host.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (stopping, counting, refusing) = (
        Arc::clone(&stop),
        Arc::clone(&streaming),
        Arc::clone(&refused),
    );
    let request =
        format!("GET /api/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n");
    let strangers = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let end = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut tasks = tokio::task::JoinSet::new();
            for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
                let source: IpAddr = source.parse().unwrap();
                for _ in 0..STREAMS_PER_STRANGER {
                    let (stopping, counting, refusing) =
                        (Arc::clone(&stopping), Arc::clone(&counting), Arc::clone(&refusing));
                    let request = request.clone();
                    tasks.spawn(async move {
                        while !stopping.load(SeqCst) && tokio::time::Instant::now() < end {
                            let socket = tokio::net::TcpSocket::new_v4().unwrap();
                            socket.bind(SocketAddr::new(source, 0)).unwrap();
                            let Ok(Ok(s)) =
                                tokio::time::timeout(Duration::from_secs(2), socket.connect(addr))
                                    .await
                            else {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                continue;
                            };
                            if write_all(&s, request.as_bytes()).await.is_err() {
                                continue;
                            }
                            let mut buf = [0u8; 1024];
                            let mut counted = false;
                            // Hold the stream until the server ends it (or the test does).
                            loop {
                                let wait = tokio::time::sleep(Duration::from_millis(500));
                                tokio::select! {
                                    read = read(&s, &mut buf) => match read {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => {
                                            if !counted && buf[..n].starts_with(b"HTTP/1.1 200") {
                                                counted = true;
                                                counting.fetch_add(1, SeqCst);
                                            } else if !counted && buf[..n].starts_with(b"HTTP/1.1 ") {
                                                refusing.fetch_add(1, SeqCst);
                                            }
                                        }
                                    },
                                    () = wait => {
                                        if stopping.load(SeqCst) || tokio::time::Instant::now() > end {
                                            return;
                                        }
                                    }
                                }
                            }
                            if counted {
                                counting.fetch_sub(1, SeqCst);
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    });
                }
            }
            while tasks.join_next().await.is_some() {}
        });
    });
    // The strangers open their streams (as many as they get).
    let deadline = Instant::now() + Duration::from_secs(20);
    while streaming.load(SeqCst) + refused.load(SeqCst) < 3 * STREAMS_PER_STRANGER
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let held = streaming.load(SeqCst);
    let handshakes: Vec<bool> = (0..10)
        .map(|_| {
            let ok = handshake(addr);
            std::thread::sleep(Duration::from_millis(100));
            ok
        })
        .collect();
    eprintln!(
        "strangers held {held} event streams from 3 addresses ({} refused); Graph's handshakes: {handshakes:?}",
        refused.load(SeqCst)
    );
    // Graph delivers a colleague's message to the app's webhook meanwhile.
    let id = h.says(&chat, "through the door");
    let delivered = wait_for("the colleague's message, delivered by Graph", || {
        h.message(&chat, &id)
    });
    stop.store(true, SeqCst);
    let _ = strangers.join();
    assert_eq!(
        handshakes, [true; 10],
        "Graph's handshakes while streams are held"
    );
    assert_eq!(delivered["id"], id);
}
