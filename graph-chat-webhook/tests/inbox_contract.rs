//! The `Inbox` contract, checked against both implementations: ids increase, each batch goes
//! to one claimer at a time, a released batch comes back after its delay whatever else arrives,
//! done batches are gone, the cap refuses, close wakes claimers; and for SQLite, what was not
//! done survives reopening.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use graph_chat_webhook::{Inbox, InboxError, MemoryInbox, NewBatch, Route};

fn batch(n: u8, len: usize) -> NewBatch {
    NewBatch {
        route: if n % 2 == 0 {
            Route::Notifications
        } else {
            Route::Lifecycle
        },
        received: UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + u64::from(n)),
        record: vec![n; len],
    }
}

fn contract(inbox: &dyn Inbox) {
    let a = inbox.put(batch(1, 10)).unwrap();
    let b = inbox.put(batch(2, 20)).unwrap();
    assert!(b > a, "ids increase in commit order");
    assert_eq!(inbox.stats().batches, 2);
    assert_eq!(inbox.stats().bytes, 30);

    // Oldest first, as stored.
    let first = inbox.claim(Duration::ZERO).unwrap();
    assert_eq!(
        (first.id, first.route, first.attempts),
        (a, Route::Lifecycle, 0)
    );
    assert_eq!(first.record, vec![1; 10]);
    assert_eq!(
        first.received,
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_001)
    );
    // In hand: not handed out again.
    let second = inbox.claim(Duration::ZERO).unwrap();
    assert_eq!(second.id, b);
    assert!(inbox.claim(Duration::from_millis(20)).is_none());

    // Given back: offered again after the delay, before newer batches, with its attempt.
    inbox.release(a, Duration::from_millis(700));
    let mut newer = Vec::new();
    for n in 3..8 {
        let id = inbox.put(batch(n, 5)).unwrap();
        newer.push(id);
        let claimed = inbox.claim(Duration::ZERO).unwrap();
        assert_eq!(claimed.id, id, "newer traffic flows meanwhile");
        inbox.done(id).unwrap();
    }
    let again = inbox.claim(Duration::from_secs(5)).unwrap();
    assert_eq!((again.id, again.attempts), (a, 1));

    // Done: gone for good.
    inbox.done(a).unwrap();
    inbox.done(b).unwrap();
    assert_eq!(inbox.stats().batches, 0);
    assert_eq!(inbox.stats().bytes, 0);
    assert!(inbox.claim(Duration::from_millis(20)).is_none());

    // Close wakes a waiting claimer.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| inbox.claim(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        inbox.close();
        assert!(waiter.join().unwrap().is_none());
    });
}

fn capped(inbox: &dyn Inbox) {
    inbox.put(batch(1, 60)).unwrap();
    assert!(matches!(
        inbox.put(batch(2, 50)),
        Err(InboxError::Full {
            bytes: 60,
            cap: 100
        })
    ));
    let claimed = inbox.claim(Duration::ZERO).unwrap();
    inbox.done(claimed.id).unwrap();
    inbox.put(batch(2, 50)).unwrap();
}

fn one_claimer_each(inbox: Arc<dyn Inbox>) {
    for n in 0..200u8 {
        inbox.put(batch(n, 8)).unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (inbox, seen) = (Arc::clone(&inbox), Arc::clone(&seen));
            s.spawn(move || {
                while let Some(b) = inbox.claim(Duration::from_millis(50)) {
                    seen.lock().unwrap().push(b.id);
                    inbox.done(b.id).unwrap();
                }
            });
        }
    });
    let seen = seen.lock().unwrap();
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), 200);
    assert_eq!(unique.len(), 200, "no batch was handed to two claimers");
}

#[test]
fn the_memory_inbox_keeps_the_contract() {
    contract(&MemoryInbox::new(1 << 20));
    capped(&MemoryInbox::new(100));
    one_claimer_each(Arc::new(MemoryInbox::new(1 << 20)));
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use graph_chat_webhook::SqliteInbox;

    fn path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("gcw-inbox-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("inbox.sqlite")
    }

    #[test]
    fn the_sqlite_inbox_keeps_the_contract() {
        contract(&SqliteInbox::open(path("contract")).unwrap());
        capped(
            &SqliteInbox::open(path("capped"))
                .unwrap()
                .with_cap_bytes(100),
        );
        one_claimer_each(Arc::new(SqliteInbox::open(path("claimers")).unwrap()));
    }

    /// A notification's body holds its `clientState` (and, for a basic notification, what
    /// changed): once its batch is done, nothing of it stays in the inbox's files, free pages
    /// and WAL included.
    #[test]
    fn a_done_batch_leaves_no_copy_in_the_files() {
        let at = path("wipe");
        let marker = b"client-state-secret-7b41e9";
        {
            let inbox = SqliteInbox::open(&at).unwrap();
            let mut record = vec![b'x'; 3000];
            record.extend_from_slice(marker);
            let id = inbox
                .put(NewBatch {
                    route: Route::Notifications,
                    received: UNIX_EPOCH,
                    record,
                })
                .unwrap();
            let claimed = inbox.claim(Duration::from_secs(5)).unwrap();
            assert_eq!(claimed.id, id);
            inbox.done(id).unwrap();
            // A batch done before the next arrives: the inbox goes on working.
            inbox.put(batch(2, 10)).unwrap();
            inbox.close();
        }
        let dir = at.parent().unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let file = entry.unwrap().path();
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "{} still holds a done batch",
                file.display()
            );
        }
    }

    #[test]
    fn an_inbox_that_would_not_survive_the_process_is_refused() {
        for path in ["", ":memory:", "file::memory:?cache=shared"] {
            assert!(
                matches!(SqliteInbox::open(path), Err(InboxError::Unavailable { .. })),
                "{path:?}"
            );
        }
    }

    #[test]
    fn what_was_not_done_is_handed_out_again_after_reopening() {
        let at = path("reopen");
        let (kept, finished) = {
            let inbox = SqliteInbox::open(&at).unwrap();
            let kept = inbox.put(batch(1, 10)).unwrap();
            let finished = inbox.put(batch(2, 10)).unwrap();
            let in_hand = inbox.put(batch(3, 10)).unwrap();
            for _ in 0..3 {
                let b = inbox.claim(Duration::ZERO).unwrap();
                if b.id == finished {
                    inbox.done(b.id).unwrap();
                }
            }
            let _ = in_hand; // claimed, never done: the process "dies" with it in hand
            (kept, finished)
        };
        let inbox = SqliteInbox::open(&at).unwrap();
        let mut ids = Vec::new();
        while let Some(b) = inbox.claim(Duration::from_millis(20)) {
            ids.push(b.id);
        }
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert!(ids.contains(&kept));
        assert!(!ids.contains(&finished));
        assert_eq!(inbox.stats().batches, 2);
    }
}
