//! Images sent through the app's API (`POST /api/chats/{chatId}/images`): inline through Graph
//! (`hostedContents`), bounded at 2 MiB of image, images only; the larger body limit is the
//! image route's alone, every other route keeps the API's 64 KiB.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::{post, Harness};
use base64::Engine as _;
use serde_json::json;

/// A 2 x 2 PNG.
const PNG_2X2: &str = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAwMDAwMDAAAANAAH/3WvRAAAAAElFTkSuQmCC";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A PNG of `len` bytes: the 2 x 2 one, padded.
fn png(len: usize) -> Vec<u8> {
    let mut png = base64::engine::general_purpose::STANDARD
        .decode(PNG_2X2)
        .unwrap();
    png.resize(len, 0);
    png
}

/// The status of a `POST` of `length` bytes of JSON to `path`, written raw (the app may answer
/// before it has read them all).
fn raw_post(h: &Harness, path: &str, body: &[u8]) -> Option<u16> {
    let host = h
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCookie: {}\r\nConnection: close\r\n\r\n",
        body.len(),
        h.cookie()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    std::str::from_utf8(&reply)
        .ok()
        .and_then(|t| t.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
}

#[test]
fn an_image_up_to_2_mib_is_sent_inline_through_graph() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat = h.first_chat();
    let url = format!("{}api/chats/{chat}/images", h.url());
    let (status, item) = post(
        &h.http,
        &url,
        &json!({"content": "a <b>chart</b>", "contentType": "image/png", "contentBytes": b64(&png(1 << 20))}),
    );
    assert_eq!(status, 201, "{item:#}");
    let id = item["id"].as_str().unwrap();
    // Graph holds the image as the message's hosted content, the caption escaped.
    let graph = h
        .sim()
        .truth(&chat)
        .unwrap()
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap();
    let content = graph["body"]["content"].as_str().unwrap();
    assert!(content.contains("/hostedContents/"), "{graph:#}");
    assert!(content.contains("a &lt;b&gt;chart&lt;/b&gt;"), "{graph:#}");
    let (status, hosted) = h.graph(
        "GET",
        &format!("v1.0/chats/{chat}/messages/{id}/hostedContents"),
    );
    assert_eq!(status, 200, "{hosted:#}");
    assert_eq!(
        hosted["value"].as_array().map(Vec::len),
        Some(1),
        "{hosted:#}"
    );
    // The page gets the image's path through the app.
    assert!(
        item["content"].as_str().unwrap().contains("/api/chats/"),
        "{item:#}"
    );
}

#[test]
fn an_image_over_2_mib_or_a_file_that_is_no_image_is_refused_saying_why() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat = h.first_chat();
    let before = h.sim().truth(&chat).unwrap().len();
    let url = format!("{}api/chats/{chat}/images", h.url());
    let (status, answer) = post(
        &h.http,
        &url,
        &json!({"contentType": "image/png", "contentBytes": b64(&png((2 << 20) + 1))}),
    );
    assert_eq!(status, 413, "{answer:#}");
    assert!(
        answer["error"].as_str().unwrap().contains("2 MiB"),
        "{answer:#}"
    );
    let (status, answer) = post(
        &h.http,
        &url,
        &json!({"contentType": "image/svg+xml", "contentBytes": b64(b"<svg onload=alert(1)/>")}),
    );
    assert_eq!(status, 415, "{answer:#}");
    // Said to be a PNG, but not one.
    let (status, answer) = post(
        &h.http,
        &url,
        &json!({"contentType": "image/png", "contentBytes": b64(b"<html>")}),
    );
    assert_eq!(status, 415, "{answer:#}");
    assert_eq!(h.sim().truth(&chat).unwrap().len(), before, "nothing sent");
}

#[test]
fn only_the_image_route_reads_more_than_64_kib_and_it_too_is_bounded() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat = h.first_chat();
    // 100 KiB to another route of the same chat: over the API's 64 KiB.
    let text = format!(r#"{{"content":"{}","mentions":[]}}"#, "x".repeat(100 << 10));
    assert_eq!(
        raw_post(&h, &format!("/api/chats/{chat}/mention"), text.as_bytes()),
        Some(413)
    );
    // 4 MiB to the image route: over its 3 MiB.
    let body = vec![b' '; 4 << 20];
    assert_eq!(
        raw_post(&h, &format!("/api/chats/{chat}/images"), &body),
        Some(413)
    );
}
