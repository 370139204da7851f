//! The version rules, public as `model::MessageVersion` and applied by `ChatTimeline`: the newest
//! version wins, a deletion beats a version of the same time, a late or older version never
//! overwrites a newer one, and a newer version without `deletedDateTime` (an `undoSoftDelete`)
//! restores a deleted message. A durable cache folding stored rows with `supersedes` ends where
//! the timeline ends.

use graph_chat_notifications::model::{
    ChangeType, ChatMessage, ChatTimeline, IntoOwned as _, MessageVersion,
};
use proptest::prelude::*;

/// A time `s` seconds into 2024-05-02T09:00:00Z.
fn t(s: u32) -> String {
    format!("2024-05-02T09:{:02}:{:02}Z", s / 60, s % 60)
}

/// One version of message `id`: created at `created`, last changed at `modified`, edited at
/// `edited`, deleted at `deleted`.
fn version(
    id: &str,
    created: u32,
    modified: u32,
    edited: Option<u32>,
    deleted: Option<u32>,
    text: &str,
) -> ChatMessage<'static> {
    let json = serde_json::json!({
        "id": id,
        "etag": (1_714_640_400_000u64 + u64::from(modified) * 1000).to_string(),
        "createdDateTime": t(created),
        "lastModifiedDateTime": t(modified),
        "lastEditedDateTime": edited.map(t),
        "deletedDateTime": deleted.map(t),
        "body": {"contentType": "text", "content": text},
    });
    let text = json.to_string();
    serde_json::from_str::<ChatMessage>(&text)
        .unwrap()
        .into_owned()
}

fn content(t: &ChatTimeline, id: &str) -> Option<String> {
    t.messages()
        .into_iter()
        .find(|m| m.id.as_deref() == Some(id))
        .map(|m| {
            m.body
                .get()
                .unwrap()
                .content
                .as_deref()
                .unwrap()
                .to_string()
        })
}

#[test]
fn an_undo_after_a_deletion_with_data_restores_the_message() {
    let sent = version("1", 10, 10, None, None, "hello");
    let deleted = version("1", 10, 200, None, Some(200), "");
    let restored = version("1", 10, 300, None, None, "hello");
    let mut t = ChatTimeline::new();
    t.apply(&ChangeType::Created.into(), "1", Some(&sent));
    t.apply(&ChangeType::Updated.into(), "1", Some(&deleted));
    assert!(t.get("1").unwrap().deleted);
    t.apply(&ChangeType::Updated.into(), "1", Some(&restored));
    assert_eq!(content(&t, "1").as_deref(), Some("hello"));
    // Arriving late, the deletion does not delete the restored message again.
    assert!(!t.apply(&ChangeType::Deleted.into(), "1", Some(&deleted)));
    assert!(!t.get("1").unwrap().deleted);
}

#[test]
fn the_order_field_by_field() {
    let at = |s: u32| Some(graph_chat_notifications::model::parse_time(&t(s)).unwrap());
    let v = |s, deleted, etag: &str, content: &str| {
        MessageVersion::new(at(s), deleted, Some(etag.into()), content.into())
    };
    assert!(
        v(2, false, "1", "a").supersedes(&v(1, true, "9", "z")),
        "time first"
    );
    assert!(
        v(1, true, "1", "a").supersedes(&v(1, false, "9", "z")),
        "then the deletion"
    );
    assert!(
        v(1, false, "10", "a").supersedes(&v(1, false, "9", "z")),
        "then the etag, as a number"
    );
    assert!(
        v(1, false, "1", "b").supersedes(&v(1, false, "1", "a")),
        "then the content"
    );
    assert!(
        !v(1, false, "1", "a").supersedes(&v(1, false, "1", "a")),
        "equal: no change"
    );
    let none = MessageVersion::new(None, true, None, String::new());
    assert!(
        v(0, false, "1", "a").supersedes(&none),
        "a time beats no time"
    );
}

/// One delivery: which version of the history, under which change type, with data.
#[derive(Debug, Clone)]
struct Delivery {
    version: usize,
    change: ChangeType,
}

#[derive(Debug, Clone)]
struct History {
    versions: Vec<(ChatMessage<'static>, bool)>,
}

/// A message's life: sent, edited some times, maybe deleted (the notification says `deleted`,
/// or `updated` with `deletedDateTime`), maybe restored (an undo, a newer version without
/// `deletedDateTime`), maybe edited again; every step strictly later than the one before.
fn history() -> impl Strategy<Value = History> {
    (
        1u32..40,
        proptest::collection::vec(1u32..30, 0..3),
        proptest::option::of((1u32..30, any::<bool>())),
        proptest::option::of(1u32..30),
        proptest::option::of(1u32..30),
    )
        .prop_map(|(created, edits, deletion, undo, late_edit)| {
            let mut versions = vec![(version("m", created, created, None, None, "v0"), false)];
            let mut now = created;
            let mut edited = None;
            for (i, gap) in edits.iter().enumerate() {
                now += gap;
                edited = Some(now);
                versions.push((
                    version("m", created, now, edited, None, &format!("v{}", i + 1)),
                    false,
                ));
            }
            let text = format!("v{}", edits.len());
            if let Some((gap, as_deleted_change)) = deletion {
                now += gap;
                versions.push((
                    version("m", created, now, edited, Some(now), ""),
                    as_deleted_change,
                ));
                if let Some(gap) = undo {
                    now += gap;
                    versions.push((version("m", created, now, edited, None, &text), false));
                    if let Some(gap) = late_edit {
                        now += gap;
                        versions.push((
                            version("m", created, now, Some(now), None, "after the undo"),
                            false,
                        ));
                    }
                }
            }
            History { versions }
        })
}

fn deliveries(h: &History) -> Vec<Delivery> {
    h.versions
        .iter()
        .enumerate()
        .map(|(i, (_, as_deleted))| Delivery {
            version: i,
            change: if *as_deleted {
                ChangeType::Deleted
            } else if i == 0 {
                ChangeType::Created
            } else {
                ChangeType::Updated
            },
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn any_order_and_repetition_converges_to_the_newest_version(
        h in history(),
        order in any::<u64>(),
        repeats in proptest::collection::vec(0usize..100, 0..10),
    ) {
        let mut all = deliveries(&h);
        for r in &repeats {
            all.push(all[r % h.versions.len()].clone());
        }
        let mut state = order;
        for i in (1..all.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            all.swap(i, (state >> 33) as usize % (i + 1));
        }

        let mut timeline = ChatTimeline::new();
        // A durable cache: one stored row per message, replaced only by a version that
        // supersedes it.
        let mut row: Option<(MessageVersion, usize)> = None;
        for d in &all {
            let (message, _) = &h.versions[d.version];
            timeline.apply(&d.change.into(), "m", Some(message));
            let incoming = MessageVersion::of(message, d.change == ChangeType::Deleted);
            if row.as_ref().is_none_or(|(stored, _)| incoming.supersedes(stored)) {
                row = Some((incoming, d.version));
            }
        }

        let newest = h.versions.len() - 1;
        let (newest_message, newest_as_deleted) = &h.versions[newest];
        let newest_deleted = *newest_as_deleted || newest_message.is_deleted();
        let entry = timeline.get("m").unwrap();
        prop_assert_eq!(entry.deleted, newest_deleted);
        prop_assert_eq!(entry.version(), &MessageVersion::of(newest_message, *newest_as_deleted));
        prop_assert_eq!(entry.message.as_ref(), Some(newest_message));
        prop_assert_eq!(timeline.messages().len(), usize::from(!newest_deleted));
        let (stored, index) = row.unwrap();
        prop_assert_eq!(index, newest);
        prop_assert_eq!(&stored, entry.version());
    }
}
