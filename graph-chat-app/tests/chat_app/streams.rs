//! The app's event streams (`GET /api/events`) held open from a few addresses do not take the
//! places Graph's deliveries need on the listener the webhook shares with the app.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface: strangers bind 127.0.0.2 and up,
//! Graph (the test, and the simulator) comes from 127.0.0.1.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

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
    let cookie = h.cookie();
    let request = format!(
        "GET /api/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
    );
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

/// A request to the app's API whose body comes a byte a second, on the listener the webhook
/// shares: answered 408 once the body's deadline passes, instead of holding its connection (and
/// one of the webhook's places) for as long as the bytes keep coming; a body past the API's
/// size is answered 413.
#[test]
fn the_apis_request_bodies_are_bounded_in_time_and_size() {
    let h = Harness::start(Duration::from_secs(600));
    let chat = h.chat_ids().into_iter().next().expect("a chat");
    let host = h
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let addr: SocketAddr = host.parse().unwrap();
    let cookie = h.cookie();
    let head = |length: usize| {
        format!(
            "POST /api/chats/{chat}/messages HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        )
    };
    let status = |reply: &[u8]| {
        std::str::from_utf8(reply)
            .ok()
            .and_then(|t| t.split(' ').nth(1))
            .and_then(|c| c.parse::<u16>().ok())
    };

    // A byte a second, for at most 20 s (the test's bound), until the server answers.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(head(1000).as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    let mut buf = [0u8; 512];
    while reply.is_empty() && started.elapsed() < Duration::from_secs(20) {
        if s.write_all(b" ").is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    eprintln!(
        "a body a byte a second was answered {:?} after {:?}",
        status(&reply),
        started.elapsed()
    );
    assert_eq!(status(&reply), Some(408), "the trickled body's answer");

    // 100 KiB of JSON at once: over the API's size.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let content = "x".repeat(100 << 10);
    let body = format!(r#"{{"content":"{content}"}}"#);
    s.write_all(head(body.len()).as_bytes()).unwrap();
    let _ = s.write_all(body.as_bytes());
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert_eq!(status(&reply), Some(413), "the oversized body's answer");
}

/// Requests for the event stream that are answered with an error (a malformed `?after=`), on
/// connections kept open, do not count as streams: the address can still open its streams.
#[test]
fn event_stream_requests_answered_with_an_error_hold_no_stream_place() {
    let h = Harness::start(Duration::from_secs(600));
    let host = h
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let addr: SocketAddr = host.parse().unwrap();
    let source: IpAddr = "127.0.0.5".parse().unwrap();
    let cookie = h.cookie();
    let connect = || {
        let socket = connect_from(source, addr);
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        socket
    };
    let first_line = |s: &mut std::net::TcpStream| {
        let mut reply = Vec::new();
        let mut buf = [0u8; 256];
        while !reply.windows(2).any(|w| w == b"\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&reply)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    };
    // As many malformed requests as the address may hold streams, each connection kept open.
    let mut kept = Vec::new();
    for _ in 0..graph_chat_webhook::limits::STREAMS_PER_ADDRESS {
        let mut s = connect();
        s.write_all(
            format!("GET /api/events?after=x HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        assert!(first_line(&mut s).starts_with("HTTP/1.1 400"));
        kept.push(s);
    }
    let mut stream = connect();
    stream
        .write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let answer = first_line(&mut stream);
    eprintln!("after 16 malformed stream requests, a stream was answered {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A blocking connection from `source` (bound through a tokio socket, then handed to std).
fn connect_from(source: IpAddr, addr: SocketAddr) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let s = socket.connect(addr).await.unwrap();
        let s = s.into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        s
    })
}
