//! The property the app exists for: whatever Graph's delivery does (drops, duplicates,
//! reorders, delays, a silently expired subscription, a restart of the app), its view equals
//! Graph's truth after the last write plus one resync period.

use crate::common;

use std::time::Duration;

use crate::common::{wait_for, Harness};
use graph_sim::Faults;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Write,
    Edit(usize),
    Delete(usize),
    Dlp(usize),
    ExpireSubscriptions,
    RestartApp,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Write),
        2 => (0usize..8).prop_map(Step::Edit),
        1 => (0usize..8).prop_map(Step::Delete),
        1 => (0usize..8).prop_map(Step::Dlp),
        1 => Just(Step::ExpireSubscriptions),
        1 => Just(Step::RestartApp),
    ]
}

fn faults() -> impl Strategy<Value = Faults> {
    (
        0.0..0.5f64,
        0.0..0.5f64,
        0.0..0.5f64,
        0u64..150,
        0u64..3,
        any::<u64>(),
    )
        .prop_map(
            |(drop, duplicate, reorder, delay, fail_first, seed)| Faults {
                drop,
                duplicate,
                reorder,
                delay_ms: Some([0, delay]),
                fail_first,
                seed: Some(seed),
                ..Faults::default()
            },
        )
}

/// Runs `steps` against the chat (under the faults the simulator was given).
fn run(h: &mut Harness, chat: &str, steps: &[Step]) {
    let mut ids: Vec<String> = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        match step {
            Step::Write => {
                let sent = h.colleague_writes(chat, &format!("message {n}"), "text");
                ids.push(sent["id"].as_str().unwrap().to_owned());
            }
            Step::Edit(i) if !ids.is_empty() => {
                let id = &ids[i % ids.len()];
                // A deleted message cannot be edited: Graph refuses, and so may the simulator.
                let _ = h.sim().colleague_edits(chat, id, &format!("edit {n}"));
            }
            Step::Delete(i) if !ids.is_empty() => {
                let _ = h.sim().colleague_deletes(chat, &ids[i % ids.len()]);
            }
            Step::Dlp(i) if !ids.is_empty() => {
                let _ = h
                    .sim()
                    .policy_violation(chat, &ids[i % ids.len()], "BlockAccess");
            }
            Step::ExpireSubscriptions => {
                for id in h.sim().subscription_ids() {
                    h.sim().expire_subscription(&id).unwrap();
                }
            }
            Step::RestartApp => {
                h.stop_app();
                h.start_app();
            }
            _ => {}
        }
    }
}

proptest! {
    // Each case starts a simulator and the app and waits for a resync period: a few seconds.
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_view_converges_to_graphs_truth(faults in faults(), steps in prop::collection::vec(step(), 4..14)) {
        let mut h = Harness::start(Duration::from_secs(2));
        let chat = h.chat_ids().into_iter().next().unwrap();
        h.sim().set_faults(faults).unwrap();
        run(&mut h, &chat, &steps);
        // After the last write: one resync period (and the time it takes) later, the same.
        h.converged(&chat);
        // And the app is subscribed again, whatever expired.
        wait_for("two subscriptions", || (h.sim().subscription_ids().len() == 2).then_some(()));
    }
}

proptest! {
    // The same faults with the reconcile a day away: the triggers are evidence (a restart, a
    // subscription found gone) and a person's actions. A colleague's last message, then a page
    // load (which finds the chats the cache is behind on, and so the subscriptions lost) and
    // the chat opened (which reads it from its watermark: edits, deletes and DLP verdicts of
    // older messages) bring the view to Graph's truth, with no timer.
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_view_converges_on_evidence_and_a_visit(faults in faults(), steps in prop::collection::vec(step(), 4..14)) {
        let mut h = Harness::start(Duration::from_secs(86_400));
        let chat = h.chat_ids().into_iter().next().unwrap();
        h.sim().set_faults(faults).unwrap();
        run(&mut h, &chat, &steps);
        h.colleague_writes(&chat, "the last word", "text");
        // The person visits: the page, then the chat.
        let (status, _) = common::get(&h.http, &h.url());
        prop_assert_eq!(status, 200);
        h.messages(&chat);
        h.converged_within(&chat, common::PATIENCE);
        wait_for("two subscriptions", || (h.sim().subscription_ids().len() == 2).then_some(()));
    }
}
