//! The app's own records, in `app.sqlite` under `--data`: who is signed in (sessions, kept as
//! the SHA-256 of their id, never the id a browser holds), the people whose Graph side the app
//! runs (their refresh token sealed by the [`Sealer`]), and the app's secrets (the `clientState`,
//! sealed too). Sessions survive a restart on the same `--data`.
//!
//! With `--database postgres://...` ([`Accounts::open_postgres`]) the same records live in that
//! database, in the schema its `search_path` names, shared by every copy of the app: a person
//! stays signed in whichever copy answers, and a login cookie brought to one copy's callback
//! cannot be brought again to another. The secrets stay sealed by the [`Sealer`], whose key is
//! not in the database: every copy is given the same sealing key file.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("accounts-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! use graph_chat_app::accounts::Accounts;
//! use graph_chat_app::secrets::Sealer;
//! let accounts = Accounts::open(&dir, Sealer::load_or_create(&dir).unwrap()).unwrap();
//! let session = accounts.start_session("user-1").unwrap();
//! assert_eq!(accounts.session_user(session.cookie()).unwrap().as_deref(), Some("user-1"));
//! assert_eq!(accounts.session_user("forged").unwrap(), None);
//! accounts.end_sessions_of("user-1").unwrap();
//! assert_eq!(accounts.session_user(session.cookie()).unwrap(), None);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand_core::RngCore;
use rusqlite::Connection;
use zeroize::Zeroizing;

use crate::secrets::Sealer;
use crate::store::{args, ddl, Backend, Database, StoreError, Tx};

/// The app's records' file under the data directory.
pub const ACCOUNTS_FILE: &str = "app.sqlite";

/// How long a session lasts from sign-in: a working week. Graph access ends sooner for a person
/// whose refresh token is revoked (their sessions end with it).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The tables, for both engines (`store::ddl`): a table is added here once.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (hash {blob} PRIMARY KEY, user_id TEXT NOT NULL, expires {int} NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
CREATE TABLE IF NOT EXISTS people (user_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, refresh {blob});
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS spent_logins (hash {blob} PRIMARY KEY, at {int} NOT NULL);
";

/// What the sealer binds a refresh token to.
const REFRESH_PURPOSE: &str = "refresh token";
/// What the sealer binds the `clientState` to.
const CLIENT_STATE_PURPOSE: &str = "clientState";

/// A session just started: the id the browser keeps in its cookie (only its hash is stored).
/// `Debug` shows nothing of it.
pub struct NewSession {
    cookie: Zeroizing<String>,
}

impl NewSession {
    /// The cookie's value.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSession([redacted])")
    }
}

/// A person the app runs the Graph side of. `Debug` leaves the refresh token out.
pub struct Person {
    /// Their user id (`oid`).
    pub user_id: String,
    /// Their name.
    pub display_name: String,
    /// Their refresh token, unsealed.
    pub refresh_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Person")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// The app's records. Cheap to clone; every clone is the same file.
#[derive(Clone)]
pub struct Accounts {
    backend: Arc<Backend>,
    sealer: Arc<Sealer>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn hash(cookie: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cookie.as_bytes())
        .as_ref()
        .to_vec()
}

/// 32 random bytes from the OS, as hex.
pub fn random_token() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand_core::OsRng.fill_bytes(&mut bytes[..]);
    Zeroizing::new(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Accounts {
    /// Opens (or creates) `app.sqlite` under `data`, its secrets sealed by `sealer`.
    pub fn open(data: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        let conn = Connection::open(data.join(ACCOUNTS_FILE))?;
        // First: a copy still closing (a restart) may hold the file for a moment, and setting
        // the journal mode waits for it only with a busy timeout set.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // A secret overwritten or deleted leaves no copy in the file's free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.execute_batch(&ddl(SCHEMA, false))?;
        Ok(Self {
            backend: Arc::new(Backend::Sqlite(Mutex::new(conn))),
            sealer: Arc::new(sealer),
        })
    }

    /// Opens (or creates, under the database's migration lock) the records in `db`, shared by
    /// every copy of the app on it, their secrets sealed by `sealer` (the same key on every
    /// copy). Blocking: call it off the async threads.
    pub fn open_postgres(db: &Database, sealer: Sealer) -> Result<Self, StoreError> {
        db.migrate(None, &ddl(SCHEMA, true))?;
        Ok(Self {
            backend: Arc::new(Backend::Pg {
                db: db.clone(),
                schema: None,
            }),
            sealer: Arc::new(sealer),
        })
    }

    /// The sealer of the app's secrets, for what the app gives a browser to keep for it.
    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.backend.read(f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.backend.write(f, |_| {})
    }

    /// The `clientState` every subscription carries: made on the first call (once, when
    /// copies start together: each keeps the one stored first), sealed at rest.
    pub fn client_state(&self) -> Result<Zeroizing<String>, StoreError> {
        let fresh = random_token();
        let sealed = self.sealer.seal(CLIENT_STATE_PURPOSE, fresh.as_bytes());
        self.write(|tx| {
            tx.execute(
                "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT(name) DO NOTHING",
                args![CLIENT_STATE_PURPOSE, sealed.clone()],
            )?;
            let stored = tx
                .row(
                    "SELECT value FROM secrets WHERE name = $1",
                    args![CLIENT_STATE_PURPOSE],
                )?
                .map(|r| r.opt_blob(0))
                .transpose()?
                .flatten();
            if let Some(plain) = stored
                .and_then(|s| self.sealer.open(CLIENT_STATE_PURPOSE, &s))
                .and_then(|p| String::from_utf8(p.to_vec()).ok())
            {
                return Ok(Zeroizing::new(plain));
            }
            // Sealed under another key: replaced.
            tx.execute(
                "UPDATE secrets SET value = $2 WHERE name = $1",
                args![CLIENT_STATE_PURPOSE, sealed],
            )?;
            Ok(fresh)
        })
    }

    /// Records that a login cookie (its hash) was brought to the callback: `false` when it was
    /// before, on any copy, within `lifetime` (older records are dropped).
    pub(crate) fn spend_login(&self, hash: &[u8], lifetime: Duration) -> Result<bool, StoreError> {
        let now = unix(SystemTime::now());
        let oldest = now.saturating_sub(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
        self.write(|tx| {
            tx.execute("DELETE FROM spent_logins WHERE at < $1", args![oldest])?;
            let added = tx.execute(
                "INSERT INTO spent_logins (hash, at) VALUES ($1, $2) ON CONFLICT(hash) DO NOTHING",
                args![hash.to_vec(), now],
            )?;
            Ok(added == 1)
        })
    }

    /// Starts a session for `user_id` with a fresh random id.
    pub fn start_session(&self, user_id: &str) -> Result<NewSession, StoreError> {
        let cookie = random_token();
        let expires = unix(SystemTime::now() + SESSION_LIFETIME);
        self.write(|tx| {
            tx.execute(
                "DELETE FROM sessions WHERE expires <= $1",
                args![unix(SystemTime::now())],
            )?;
            tx.execute(
                "INSERT INTO sessions (hash, user_id, expires) VALUES ($1, $2, $3)",
                args![hash(&cookie), user_id, expires],
            )
        })?;
        Ok(NewSession { cookie })
    }

    /// The person a session cookie is for, while it lasts.
    pub fn session_user(&self, cookie: &str) -> Result<Option<String>, StoreError> {
        self.read(|tx| {
            tx.row(
                "SELECT user_id FROM sessions WHERE hash = $1 AND expires > $2",
                args![hash(cookie), unix(SystemTime::now())],
            )?
            .map(|r| r.text(0))
            .transpose()
        })
    }

    /// Ends one session.
    pub fn end_session(&self, cookie: &str) -> Result<(), StoreError> {
        self.write(|tx| tx.execute("DELETE FROM sessions WHERE hash = $1", args![hash(cookie)]))?;
        Ok(())
    }

    /// Ends every session of `user_id`; how many there were.
    pub fn end_sessions_of(&self, user_id: &str) -> Result<usize, StoreError> {
        let ended =
            self.write(|tx| tx.execute("DELETE FROM sessions WHERE user_id = $1", args![user_id]))?;
        Ok(usize::try_from(ended).unwrap_or(usize::MAX))
    }

    /// Records a person and their refresh token (sealed), replacing what was kept.
    pub fn save_person(
        &self,
        user_id: &str,
        display_name: &str,
        refresh_token: Option<&str>,
    ) -> Result<(), StoreError> {
        let sealed = refresh_token.map(|t| self.sealer.seal(REFRESH_PURPOSE, t.as_bytes()));
        self.write(|tx| {
            tx.execute(
                "INSERT INTO people (user_id, display_name, refresh) VALUES ($1, $2, $3) \
                 ON CONFLICT(user_id) DO UPDATE SET display_name = excluded.display_name, \
                 refresh = excluded.refresh",
                args![user_id, display_name, sealed],
            )
        })?;
        Ok(())
    }

    /// Replaces a person's refresh token (it rotates at each use).
    pub fn save_refresh_token(&self, user_id: &str, refresh_token: &str) -> Result<(), StoreError> {
        let sealed = self.sealer.seal(REFRESH_PURPOSE, refresh_token.as_bytes());
        self.write(|tx| {
            tx.execute(
                "UPDATE people SET refresh = $2 WHERE user_id = $1",
                args![user_id, sealed],
            )
        })?;
        Ok(())
    }

    /// Forgets a person's refresh token and their sessions (revoked, or signed out for good).
    pub fn forget_person(&self, user_id: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM sessions WHERE user_id = $1", args![user_id])?;
            tx.execute("DELETE FROM people WHERE user_id = $1", args![user_id])
        })?;
        Ok(())
    }

    /// Everyone the app runs the Graph side of, refresh tokens unsealed (a token that no longer
    /// opens, under another key, is `None`).
    pub fn people(&self) -> Result<Vec<Person>, StoreError> {
        let rows = self.read(|tx| {
            tx.query(
                "SELECT user_id, display_name, refresh FROM people ORDER BY user_id",
                args![],
            )?
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, r.opt_blob(2)?)))
            .collect::<Result<Vec<_>, StoreError>>()
        })?;
        let mut people = Vec::new();
        for row in rows {
            let (user_id, display_name, sealed) = row;
            let refresh_token = sealed
                .and_then(|s| self.sealer.open(REFRESH_PURPOSE, &s))
                .and_then(|p| String::from_utf8(p.to_vec()).ok())
                .map(Zeroizing::new);
            people.push(Person {
                user_id,
                display_name,
                refresh_token,
            });
        }
        Ok(people)
    }

    /// A person's name, if the app knows them.
    pub fn display_name(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        self.read(|tx| {
            tx.row(
                "SELECT display_name FROM people WHERE user_id = $1",
                args![user_id],
            )?
            .map(|r| r.text(0))
            .transpose()
        })
    }
}
