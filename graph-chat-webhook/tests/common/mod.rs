//! What the IO crate's tests share: the core's fixtures (one copy, at the repository root), the
//! built examples.
#![allow(dead_code)]

use std::path::PathBuf;

#[path = "../../../tests/common/example.rs"]
mod example;
#[allow(unused_imports)] // not every test binary runs an example
pub use example::example_path;

pub const CLIENT_STATE: &str = "secretClientState";
pub const APP: &str = "11111111-2222-3333-4444-555555555555";
pub const TENANT: &str = "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1";

/// A file under the repository's `tests/fixtures/`.
pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(path)
}

pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole reply; returns the
/// status (0 when the server closed without one) and the raw reply.
pub fn request(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).into_owned();
    (status_of(&reply), text)
}

/// The status code of a raw HTTP reply; 0 when there is none (the server closed without one).
pub fn status_of(reply: &[u8]) -> u16 {
    std::str::from_utf8(reply)
        .ok()
        .and_then(|t| t.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
