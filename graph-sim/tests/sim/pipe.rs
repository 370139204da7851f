//! An answer the simulator gives before it needs the whole request body (a body over its limit,
//! a throttled call) must not break the client's pipe: the body is read to its end (up to a
//! bound) before the answer goes out, so a client that writes its whole request before reading
//! the answer always gets the answer, never `BrokenPipe` or `ConnectionReset`.

use crate::common;

use graph_sim::Faults;
use std::io::{Read as _, Write as _};

use tokio::net::TcpSocket;

/// The simulator's request body limit (4 MiB).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Writes `POST /v1.0/chats` with a body of `len` bytes in 64 KiB chunks after the head, then
/// reads the answer; every write must succeed. Returns the status line and the whole answer.
async fn post_in_chunks(base: &str, len: usize) -> (String, String) {
    let addr: std::net::SocketAddr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    // A small send buffer, so the client can only run ahead of what the server reads by the
    // server's receive window: with an answer that does not read the body, the writes stall
    // until the server closes, and then fail.
    socket.set_send_buffer_size(64 * 1024).unwrap();
    let stream = socket.connect(addr).await.unwrap().into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    let answer = tokio::task::spawn_blocking(move || write_then_read(stream, addr, len))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or("").to_string();
    (status, answer)
}

#[tokio::test]
async fn a_body_over_the_limit_is_read_before_the_413() {
    let sim = common::default_sim().await;
    // Past the limit by more than any socket buffer holds (tcp_rmem may reach 32 MiB).
    let (status, answer) = post_in_chunks(&sim.base_url(), BODY_LIMIT + 40 * 1024 * 1024).await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(answer.contains("RequestEntityTooLarge"), "{answer}");
}

#[tokio::test]
async fn a_throttled_call_reads_its_body_before_the_429() {
    let sim = common::default_sim().await;
    sim.set_faults(Faults {
        throttle: 1.0,
        ..Default::default()
    })
    .unwrap();
    let (status, answer) = post_in_chunks(&sim.base_url(), BODY_LIMIT - 1024).await;
    assert!(status.contains(" 429 "), "{status}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: "),
        "{answer}"
    );
    // Over the limit and throttled: still an answer, not a broken pipe.
    let (status, _) = post_in_chunks(&sim.base_url(), BODY_LIMIT + 40 * 1024 * 1024).await;
    assert!(
        status.contains(" 413 ") || status.contains(" 429 "),
        "{status}"
    );
}

/// The blocking half of [`post_in_chunks`]: the head, the body in chunks, then the answer.
fn write_then_read(
    mut stream: std::net::TcpStream,
    addr: std::net::SocketAddr,
    len: usize,
) -> Vec<u8> {
    let head = format!(
        "POST /v1.0/chats HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer any-token\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < len {
        let n = chunk.len().min(len - sent);
        if let Err(e) = stream.write_all(&chunk[..n]) {
            panic!("writing the body failed after {sent} of {len} bytes: {e}");
        }
        sent += n;
    }
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the answer is read whole");
    answer
}
