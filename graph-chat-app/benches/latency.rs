//! Graph -> screen: from the simulator accepting a colleague's message to the app's
//! Server-Sent Event naming it (the webhook's handshake-free path: delivery POST, admission,
//! durable inbox, worker decrypt, cache under the version rules, event log, SSE), at a steady
//! rate; then ingest throughput, a burst written as fast as the simulator takes it.
//!
//! ```text
//! cargo bench -p graph-chat-app --bench latency [-- --rate 20 --seconds 30 --burst 500]
//! ```
//!
//! Everything runs on this machine, on loopback: the simulator, the app and the reader share
//! its cores, as they would on a laptop.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Harness;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rate = arg("--rate", 20).max(1);
    let seconds = arg("--seconds", 30).max(1);
    let burst = arg("--burst", 500);
    let h = Harness::start(Duration::from_secs(3600));
    let chat = h.chat_ids().into_iter().next().unwrap();
    let events = h.events(None, None);
    // Arrival times of message events, by id, on the reader's thread.
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let reader = {
        let arrived = Arc::clone(&arrived);
        std::thread::spawn(move || loop {
            let e = events.until("events", |_| true);
            if e.data["kind"] == "message" {
                if let Some(id) = e.data["id"].as_str() {
                    arrived
                        .lock()
                        .unwrap()
                        .entry(id.to_owned())
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    let _ = reader;

    // Warm-up: a few messages first (connections, caches).
    for n in 0..10 {
        h.colleague_writes(&chat, &format!("warm-up {n}"), "text");
    }
    std::thread::sleep(Duration::from_secs(1));

    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let total = rate * seconds;
    let mut sent: Vec<(String, Instant)> = Vec::with_capacity(total as usize);
    let start = Instant::now();
    for n in 0..total {
        let due = start + interval * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t0 = Instant::now();
        let m = h.colleague_writes(&chat, &format!("steady {n}"), "text");
        sent.push((m["id"].as_str().unwrap().to_owned(), t0));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut latencies = loop {
        let arrived = arrived.lock().unwrap();
        let found: Vec<Duration> = sent
            .iter()
            .filter_map(|(id, t0)| arrived.get(id).map(|t1| t1.duration_since(*t0)))
            .collect();
        if found.len() == sent.len() || Instant::now() > deadline {
            break found;
        }
        drop(arrived);
        std::thread::sleep(Duration::from_millis(50));
    };
    latencies.sort();
    println!(
        "latency: {} messages at {rate}/s for {seconds} s, {} on screen: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sent.len(),
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
    );

    if burst > 0 {
        let t0 = Instant::now();
        let ids: Vec<String> = (0..burst)
            .map(|n| {
                h.colleague_writes(&chat, &format!("burst {n}"), "text")["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let written = t0.elapsed();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let done = {
                let arrived = arrived.lock().unwrap();
                ids.iter().all(|id| arrived.contains_key(id))
            };
            if done || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let elapsed = t0.elapsed();
        let arrived = arrived.lock().unwrap();
        let on_screen = ids.iter().filter(|id| arrived.contains_key(*id)).count();
        println!(
            "ingest: a burst of {burst} written in {:.0} ms, {on_screen} on screen after {:.0} ms: {:.0} messages/s",
            ms(written),
            ms(elapsed),
            on_screen as f64 / elapsed.as_secs_f64()
        );
    }
    std::process::exit(0);
}
