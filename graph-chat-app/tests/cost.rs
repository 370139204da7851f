//! The cost benchmark: Graph calls per chat per hour and per person per day at steady state, at a
//! page load and under faults, counted by the simulator (`Simulator::usage`, what
//! `GET /_sim/usage` answers). Ignored by default (it runs for a few minutes); run it with
//!
//! ```text
//! cargo test -p graph-chat-app --test cost -- --ignored --nocapture
//! ```
//!
//! `COST_WINDOW_SECS` sets each measured window (default 150 s); the app runs with its default
//! `--resync-every`. The numbers are in `BENCHMARKS.md`.

mod common;

use std::time::{Duration, Instant};

use common::{wait_for, Harness};
use graph_chat_app::options::Options;
use graph_chat_app::sync::ResyncReason;
use graph_sim::{Faults, Usage};

const CHATS: usize = 4;

/// The calls of a window, by kind.
#[derive(Debug, Default)]
struct Counted {
    message_lists: u64,
    chat_reads: u64,
    subscription_reads: u64,
    subscription_writes: u64,
    other: u64,
}

impl Counted {
    fn of(usage: &Usage) -> Self {
        let mut c = Self::default();
        for call in &usage.calls {
            let n = call.count;
            let route = call.route.as_str();
            match call.method.as_str() {
                "GET" if route.ends_with("/messages") => c.message_lists += n,
                "GET" if route.contains("/chats") => c.chat_reads += n,
                "GET" if route.contains("/subscriptions") => c.subscription_reads += n,
                _ if route.contains("/subscriptions") => c.subscription_writes += n,
                _ => c.other += n,
            }
        }
        c
    }

    fn total(&self) -> u64 {
        self.message_lists
            + self.chat_reads
            + self.subscription_reads
            + self.subscription_writes
            + self.other
    }

    fn print(&self, what: &str, window: Duration) {
        let hours = window.as_secs_f64() / 3600.0;
        let per_chat_hour = self.total() as f64 / CHATS as f64 / hours;
        let per_day = self.total() as f64 / hours * 24.0;
        println!(
            "{what}: {} calls in {:.0} s (message lists {}, chat reads {}, subscription GETs {}, \
             subscription writes {}, other {}): {per_chat_hour:.1} per chat per hour, \
             {per_day:.0} per person per day",
            self.total(),
            window.as_secs_f64(),
            self.message_lists,
            self.chat_reads,
            self.subscription_reads,
            self.subscription_writes,
            self.other,
        );
    }
}

fn window() -> Duration {
    Duration::from_secs(
        std::env::var("COST_WINDOW_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(150),
    )
}

/// A colleague writes one message in each chat every 5 s for `window`.
fn colleague_writes_for(h: &Harness, chats: &[String], window: Duration) {
    let end = Instant::now() + window;
    let mut n = 0;
    while Instant::now() < end {
        for chat in chats {
            h.colleague_writes(chat, &format!("steady {n}"), "text");
        }
        n += 1;
        std::thread::sleep(
            Duration::from_secs(5).min(end.saturating_duration_since(Instant::now())),
        );
    }
}

#[test]
#[ignore = "a benchmark: minutes long; run with --ignored --nocapture"]
fn graph_calls_per_chat_and_person() {
    let resync = Options::parse(Vec::<String>::new()).unwrap().resync_every;
    println!("--resync-every {resync} (the default), {CHATS} chats");
    let h = Harness::start(Duration::from_secs(resync));
    let mut chats = vec![h.first_chat()];
    for n in 1..CHATS {
        chats.push(h.create_chat(&format!("Chat {n}")));
    }
    wait_for("every chat in the cache", || {
        (h.chat_ids().len() == CHATS).then_some(())
    });
    let window = window();

    // Steady state: a colleague writing, every notification delivered.
    h.sim().reset_usage();
    colleague_writes_for(&h, &chats, window);
    let usage = h.sim().usage();
    Counted::of(&usage).print("steady state", window);
    println!("  polled resources: {}", usage.polled.len());

    // A page load (and the chats opened): what a person's visit costs.
    h.sim().reset_usage();
    let (status, _) = common::get(&h.http, &h.url());
    assert_eq!(status, 200);
    for chat in &chats {
        h.messages(chat);
    }
    std::thread::sleep(Duration::from_secs(3));
    let visit = Counted::of(&h.sim().usage());
    println!(
        "page load and {CHATS} chats opened: {} calls (message lists {}, chat reads {}, \
         subscription GETs {})",
        visit.total(),
        visit.message_lists,
        visit.chat_reads,
        visit.subscription_reads
    );

    // Under faults: a third of the notifications lost, a fifth of the calls throttled.
    h.sim()
        .set_faults(Faults {
            drop: 0.3,
            throttle: 0.2,
            seed: Some(5),
            ..Faults::default()
        })
        .unwrap();
    h.sim().reset_usage();
    colleague_writes_for(&h, &chats, window);
    let faulty = Counted::of(&h.sim().usage());
    h.sim().set_faults(Faults::default()).unwrap();
    faulty.print("drop 0.3, throttle 0.2", window);

    // The person visits after the faults: the page, then each chat.
    h.sim().reset_usage();
    let (status, _) = common::get(&h.http, &h.url());
    assert_eq!(status, 200);
    for chat in &chats {
        h.messages(chat);
    }
    std::thread::sleep(Duration::from_secs(3));
    let healed = Counted::of(&h.sim().usage());
    println!(
        "the visit after the faults: {} calls (message lists {}, chat reads {}, subscription GETs {})",
        healed.total(),
        healed.message_lists,
        healed.chat_reads,
        healed.subscription_reads
    );

    // One reconcile (`--resync-every`), as the timer runs it.
    h.sim().reset_usage();
    let _ = h
        .runtime
        .block_on(h.person().resync_all(ResyncReason::Periodic));
    let reconcile = Counted::of(&h.sim().usage());
    println!(
        "one reconcile: {} calls (message lists {}, chat reads {}, subscription GETs {})",
        reconcile.total(),
        reconcile.message_lists,
        reconcile.chat_reads,
        reconcile.subscription_reads
    );
}
