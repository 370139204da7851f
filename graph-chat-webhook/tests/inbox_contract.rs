//! The `Inbox` contract, one suite run against every implementation (memory, SQLite, and
//! PostgreSQL with the `postgres` feature): ids increase, each batch goes to one claimer at a
//! time, a released batch comes back after its delay whatever else arrives, done batches are
//! gone, the cap refuses, close wakes claimers; for the durable ones, what was not done survives
//! reopening; and for PostgreSQL, copies of the webhook sharing one inbox: two copies racing for
//! a batch, a copy killed holding a lease.
//!
//! The PostgreSQL tests run against the database `GCW_POSTGRES_URL` (or `DATABASE_URL`) names,
//! each in a schema of its own made and dropped by the test, so they run in parallel. Without a
//! URL they print that they were skipped, and fail when `CI` is set.

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

/// Three batches stored; the process "dies" with two in hand (one never claimed before it died
/// counts the same) and one done. Reopened, the two come back, the done one does not. `wait`:
/// how long a claim after reopening may wait (for PostgreSQL, the dead copy's leases to run out).
fn not_done_survives_reopening(open: &dyn Fn() -> Box<dyn Inbox>, wait: Duration) {
    let (kept, finished) = {
        let inbox = open();
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
    let inbox = open();
    let mut ids = Vec::new();
    while let Some(b) = inbox.claim(wait) {
        ids.push(b.id);
    }
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&kept));
    assert!(!ids.contains(&finished));
    assert_eq!(inbox.stats().batches, 2);
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
        not_done_survives_reopening(
            &|| Box::new(SqliteInbox::open(&at).unwrap()),
            Duration::from_millis(20),
        );
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use graph_chat_webhook::PgInbox;

    /// A schema of the test's own on the test database, dropped when the test ends.
    struct Schema {
        admin: String,
        name: String,
        url: String,
    }

    impl Schema {
        /// `None` (after a line saying so) when no database is given, outside CI.
        fn new(test: &str) -> Option<Self> {
            let admin = match std::env::var("GCW_POSTGRES_URL")
                .or_else(|_| std::env::var("DATABASE_URL"))
            {
                Ok(url) if !url.is_empty() => url,
                _ => {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "GCW_POSTGRES_URL (or DATABASE_URL) is unset: in CI the PostgreSQL \
                         inbox's tests must run against a database (.ci/run starts one)"
                    );
                    eprintln!(
                        "SKIPPED {test}: set GCW_POSTGRES_URL=postgres://USER@HOST:PORT/DB to run \
                         the PostgreSQL inbox's tests"
                    );
                    return None;
                }
            };
            let name = format!("gcw_test_{}_{test}", std::process::id());
            sql(
                &admin,
                &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
            );
            let url = if admin.starts_with("postgres://") || admin.starts_with("postgresql://") {
                let sep = if admin.contains('?') { '&' } else { '?' };
                format!("{admin}{sep}options=-c%20search_path%3D{name}")
            } else {
                format!("{admin} options='-c search_path={name}'")
            };
            Some(Self { admin, name, url })
        }

        /// The schema's connection string with one more parameter.
        fn url_with(&self, key: &str, value: &str) -> String {
            if self.url.contains("://") {
                format!("{}&{key}={value}", self.url)
            } else {
                format!("{} {key}={value}", self.url)
            }
        }

        fn open(&self) -> PgInbox {
            PgInbox::open(&self.url).unwrap()
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            sql(
                &self.admin,
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            );
        }
    }

    /// Runs `statements` on the test database (outside any inbox).
    fn sql(url: &str, statements: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect to GCW_POSTGRES_URL");
            let driver = tokio::spawn(connection);
            client.batch_execute(statements).await.unwrap();
            drop(client);
            let _ = driver.await;
        });
    }

    #[test]
    fn the_postgres_inbox_keeps_the_contract() {
        let Some(db) = Schema::new("contract") else {
            return;
        };
        contract(&db.open());
        let Some(db) = Schema::new("capped") else {
            return;
        };
        capped(&db.open().with_cap_bytes(100));
        let Some(db) = Schema::new("claimers") else {
            return;
        };
        one_claimer_each(Arc::new(db.open()));
    }

    #[test]
    fn what_was_not_done_is_handed_out_again_after_restarting() {
        let Some(db) = Schema::new("restart") else {
            return;
        };
        // The restarted copy is a new holder: it takes over the dead one's batches when their
        // leases run out.
        not_done_survives_reopening(
            &|| Box::new(db.open().with_lease(Duration::from_secs(1))),
            Duration::from_secs(3),
        );
    }

    #[test]
    fn two_copies_racing_for_one_batch_complete_it_once() {
        let Some(db) = Schema::new("race") else {
            return;
        };
        let copies = [db.open(), db.open()];
        let id = copies[0].put(batch(1, 10)).unwrap();
        let start = std::sync::Barrier::new(2);
        let completed = std::thread::scope(|s| {
            let racers: Vec<_> = copies
                .iter()
                .map(|copy| {
                    let start = &start;
                    s.spawn(move || {
                        start.wait();
                        let claimed = copy.claim(Duration::from_secs(1))?;
                        copy.done(claimed.id).unwrap();
                        Some(claimed.id)
                    })
                })
                .collect();
            racers
                .into_iter()
                .filter_map(|r| r.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(completed, vec![id], "exactly one copy completes the batch");
        assert_eq!(copies[1].stats().batches, 0);

        // And many batches, two workers in each copy: each batch completed exactly once.
        let copies: [Arc<dyn Inbox>; 2] = [Arc::new(db.open()), Arc::new(db.open())];
        let mut stored = HashSet::new();
        for n in 0..100u8 {
            stored.insert(copies[usize::from(n % 2)].put(batch(n, 8)).unwrap());
        }
        let seen = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for copy in copies.iter().chain(copies.iter()) {
                let seen = &seen;
                s.spawn(move || {
                    while let Some(b) = copy.claim(Duration::from_millis(300)) {
                        seen.lock().unwrap().push(b.id);
                        copy.done(b.id).unwrap();
                    }
                });
            }
        });
        let seen = seen.into_inner().unwrap();
        let unique: HashSet<_> = seen.iter().copied().collect();
        assert_eq!(seen.len(), 100, "no batch was completed twice");
        assert_eq!(unique, stored);
        assert_eq!(copies[0].stats(), Default::default());
    }

    #[test]
    fn a_copy_killed_holding_a_lease_leaves_its_batch_to_another() {
        let Some(db) = Schema::new("killed") else {
            return;
        };
        let survivor = db.open();
        let id = {
            let doomed = db.open().with_lease(Duration::from_secs(3));
            let id = doomed.put(batch(1, 10)).unwrap();
            let claimed = doomed.claim(Duration::ZERO).unwrap();
            assert_eq!((claimed.id, claimed.attempts), (id, 0));
            // Held: the other copy does not take it.
            assert!(survivor.claim(Duration::ZERO).is_none());
            id
            // Killed: its connections close and its leases stop being renewed, with nothing
            // given back.
        };
        let taken = survivor.claim(Duration::from_secs(10)).unwrap();
        assert_eq!((taken.id, taken.attempts), (id, 1));
        assert_eq!(taken.record, vec![1; 10]);
        survivor.done(id).unwrap();
        assert_eq!(survivor.stats().batches, 0);
    }

    #[test]
    fn a_database_migrated_by_a_later_release_is_refused() {
        let Some(db) = Schema::new("later") else {
            return;
        };
        drop(db.open());
        sql(
            &db.admin,
            &format!("UPDATE {}.gcw_inbox_schema SET version = 99", db.name),
        );
        assert!(matches!(
            PgInbox::open(&db.url),
            Err(InboxError::Unavailable { .. })
        ));
    }

    #[test]
    fn a_connection_string_is_never_quoted_back() {
        let err = PgInbox::open("postgres://user:hunter2@[::1:bad/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err =
            PgInbox::open("host=127.0.0.1 port=1 password=hunter2 sslmode=require").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    /// `sslmode=require` against a server without TLS (the test cluster has none): refused,
    /// never carried on in the clear.
    #[test]
    fn tls_required_of_a_server_without_it_is_refused() {
        let Some(db) = Schema::new("tls") else {
            return;
        };
        let err = PgInbox::open(&db.url_with("sslmode", "require")).unwrap_err();
        assert!(matches!(err, InboxError::Unavailable { .. }), "{err}");
        // The same database without TLS opens: the refusal was TLS's.
        drop(db.open());
    }
}
