//! Where the cache and the app's records live: SQLite (a file per person and `app.sqlite`, the
//! embedded default) or PostgreSQL (one database every copy of the app shares, `--database`).
//!
//! The store and the records are written once, against [`Tx`]: statements with `$1`-style
//! parameters, which both engines accept (SQLite binds them by name here, so a parameter may
//! appear in any order), values as [`Value`] and rows as [`Row`]. What the engines spell
//! differently (the tables' types, a few maintenance statements) is written twice, beside each
//! other, where it is used.
//!
//! PostgreSQL runs on `tokio-postgres`, driven by a small runtime the [`Database`] owns: a call
//! on the store or the records hands each statement to that runtime and waits for its answer
//! on the calling thread (one of tokio's blocking threads, a webhook worker, a test), never on
//! an async thread, and never with `block_on` inside a runtime.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use graph_chat_webhook::{connect_postgres, PgConnectError};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, Config, Statement};

/// Why the cache (or the app's records) could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed (the file, the disk, a lock).
    #[error("cache: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed, or could not be reached: the server's message and SQLSTATE, or the
    /// connection's error (never a statement's values).
    #[error("database: {0}")]
    Postgres(String),
    /// A resource that is not the JSON object it should be (nothing of its content is kept in
    /// the message).
    #[error("cache: {what} is not a valid {kind}")]
    Invalid {
        /// Which resource (its id, or where it came from).
        what: String,
        /// What it should have been.
        kind: &'static str,
    },
    /// The cache's file could not be created or made private.
    #[error("cache: {0}")]
    File(std::io::Error),
    /// The task that ran a call on the store ended without an answer (it panicked, or the
    /// runtime is shutting down).
    #[error("cache: the call did not complete")]
    Unavailable,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's message and code only: its `DETAIL` may quote a row's values.
        StoreError::Postgres(match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        })
    }
}

/// A statement's parameter or a row's column, as both engines hold it (booleans as integers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}
impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Int(n.into())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Int(b.into())
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Blob(b)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A statement's parameters: `args![a, b]` is `&[Value::from(a), Value::from(b)]`.
macro_rules! args {
    ($($x:expr),* $(,)?) => { &[$($crate::store::db::Value::from($x)),*][..] };
}
pub(crate) use args;

/// A table definition written once for both engines, for `postgres` or SQLite: `{key}` is text
/// compared bytewise (SQLite's `TEXT`; `text COLLATE "C"`, whatever the database's collation),
/// `{serial}` an id from the table's sequence (`INTEGER PRIMARY KEY AUTOINCREMENT`; `bigserial
/// PRIMARY KEY`), `{int}` a 64-bit integer, `{blob}` bytes. `TEXT` and `INTEGER` (32 bits on
/// PostgreSQL) are the same on both.
pub(crate) fn ddl(template: &str, postgres: bool) -> String {
    let types = [
        ("{key}", "TEXT", "text COLLATE \"C\""),
        (
            "{serial}",
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "bigserial PRIMARY KEY",
        ),
        ("{int}", "INTEGER", "bigint"),
        ("{blob}", "BLOB", "bytea"),
    ];
    types
        .iter()
        .fold(template.to_owned(), |text, (name, sqlite, pg)| {
            text.replace(name, if postgres { pg } else { sqlite })
        })
}

fn bad_column(kind: &'static str) -> StoreError {
    StoreError::Invalid {
        what: "a stored column".into(),
        kind,
    }
}

/// One row of an answer.
#[derive(Debug)]
pub(crate) struct Row(Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> &Value {
        self.0.get(i).unwrap_or(&Value::Null)
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.at(i) {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            _ => Err(bad_column("text")),
        }
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?.ok_or_else(|| bad_column("text"))
    }

    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.at(i) {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(*n)),
            _ => Err(bad_column("integer")),
        }
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?.ok_or_else(|| bad_column("integer"))
    }

    pub(crate) fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.int(i)? != 0)
    }

    pub(crate) fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.at(i) {
            Value::Null => Ok(None),
            Value::Blob(b) => Ok(Some(b.clone())),
            _ => Err(bad_column("bytes")),
        }
    }
}

/// A transaction (or, on SQLite's reads, the locked connection): the one way the store and
/// the records reach either engine.
pub(crate) trait Tx {
    /// The rows `sql` answers.
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// Runs `sql`; how many rows it changed.
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError>;
    /// Whether this is PostgreSQL (for the few statements spelled twice).
    fn postgres(&self) -> bool;

    /// The first row `sql` answers, if any.
    fn row(&mut self, sql: &str, args: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The row `sql` always answers.
    fn one(&mut self, sql: &str, args: &[Value]) -> Result<Row, StoreError> {
        self.row(sql, args)?.ok_or_else(|| bad_column("row"))
    }
}

// --- SQLite -----------------------------------------------------------------------------------

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(*n),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// A SQLite connection (in a transaction or under the store's lock) as a [`Tx`].
pub(crate) struct SqliteTx<'a>(pub(crate) &'a Connection);

/// Binds `$n` to `args[n - 1]`, by name: SQLite numbers named parameters in the order they
/// first appear, which need not be `$1`, `$2`, ...
fn bind(stmt: &mut rusqlite::CachedStatement<'_>, args: &[Value]) -> Result<(), StoreError> {
    for i in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(i);
        let value = args
            .get(n.wrapping_sub(1))
            .ok_or(rusqlite::Error::InvalidParameterCount(n, args.len()))?;
        stmt.raw_bind_parameter(i, value)?;
    }
    Ok(())
}

impl Tx for SqliteTx<'_> {
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        bind(&mut stmt, args)?;
        let columns = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Real(_) => return Err(bad_column("integer")),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        bind(&mut stmt, args)?;
        Ok(stmt.raw_execute()? as u64)
    }

    fn postgres(&self) -> bool {
        false
    }
}

// --- PostgreSQL -------------------------------------------------------------------------------

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT8 => n.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                _ => Err(format!("an integer where the database expects {ty}").into()),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, against the type the server inferred.
        true
    }

    to_sql_checked!();
}

fn pg_row(row: &tokio_postgres::Row) -> Result<Row, tokio_postgres::Error> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(Value::from),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|n| Value::Int(n.into())),
            Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(Value::from),
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            // Text, names and anything else the server can give as text.
            _ => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

/// How long one statement (or a connection) may take before the call fails.
const STATEMENT_LIMIT: Duration = Duration::from_secs(30);
/// Idle connections kept for the next call at most.
const IDLE_CONNECTIONS: usize = 16;
/// Statements prepared per connection at most (the store has a few dozen).
const PREPARED: usize = 256;
/// The channel every commit that logged events notifies, and every copy listens on.
pub(crate) const EVENTS_CHANNEL: &str = "graph_chat_app_events";
/// Advisory lock classes (the two-key form, apart from the one-key locks other parts of the
/// project take): migrations, and one person's writes.
const MIGRATION_LOCK: i32 = 0x4743_4101;
const WRITE_LOCK: i32 = 0x4743_4102;

/// A connection and the statements prepared on it.
struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// What a person's store does when another copy (or this one) committed events for them:
/// reads the log past what it published and publishes that.
pub(crate) trait Feed: Send + Sync {
    /// Publishes the events committed since the last it published.
    fn catch_up(&self);
}

/// A PostgreSQL database several copies of the app share (`--database postgres://...`): the
/// app's records in the schema the connection string's `search_path` names (`public` by
/// default), each person's cache and event log in a schema of their own beside it. Cheap to
/// clone; every clone is the same connections, runtime and listener.
///
/// One connection per copy `LISTEN`s for the commits of every copy (their person and last
/// event id, never content) and has the person's store here publish from the log; a lost
/// listening connection reconnects and every store catches up from the log.
///
/// The connection string is libpq's (URL or `key=value`); `sslmode=require` connects with TLS,
/// verifying the server as the webhook's PostgreSQL inbox does
/// ([`connect_postgres`](graph_chat_webhook::connect_postgres)).
#[derive(Clone)]
pub struct Database {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    handle: tokio::runtime::Handle,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    idle: Mutex<Vec<PgConn>>,
    /// The schema of the app's records (the connection's `current_schema()`).
    base: String,
    feeds: Mutex<HashMap<String, Vec<Weak<dyn Feed>>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Never waits (the last handle may go on an async thread).
        if let Some(runtime) = lock(&self.runtime).take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database's name only: never the user, the password or the hosts' options.
        f.debug_struct("Database")
            .field("dbname", &self.shared.config.get_dbname())
            .field("schema", &self.shared.base)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `name` quoted as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Database {
    /// Connects to the database at `url` (blocking: call it off the async threads) and starts
    /// listening for every copy's commits.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let config = Config::from_str(url)
            .map_err(|e| StoreError::Postgres(format!("the database URL: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("graph-chat-app-db")
            .enable_all()
            .build()
            .map_err(StoreError::File)?;
        let handle = runtime.handle().clone();
        let mut db = Shared {
            config,
            handle,
            runtime: Mutex::new(Some(runtime)),
            idle: Mutex::new(Vec::new()),
            base: String::new(),
            feeds: Mutex::new(HashMap::new()),
        };
        let mut conn = Some(db.connect()?);
        let base = db
            .query(&mut conn, "SELECT current_schema()", &[])?
            .into_iter()
            .next()
            .map(|r| r.opt_text(0))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                StoreError::Postgres("the connection's search_path names no existing schema".into())
            })?;
        db.base = base;
        db.give_back(conn);
        let shared = Arc::new(db);
        let listener = Arc::downgrade(&shared);
        shared.handle.spawn(listen(shared.config.clone(), listener));
        Ok(Self { shared })
    }

    /// The schema of a person's cache: the records' schema and a digest of their id (at most
    /// 63 bytes, PostgreSQL's limit).
    pub(crate) fn person_schema(&self, user_id: &str) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, user_id.as_bytes());
        let hex: String = digest.as_ref()[..10]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut base = self.shared.base.clone();
        while base.len() > 63 - 1 - hex.len() {
            base.pop();
        }
        format!("{base}_{hex}")
    }

    /// Runs `ddl` (several statements) once, under an advisory lock, so that copies starting
    /// together migrate one at a time; in `schema` (made if missing), else in the records'.
    pub(crate) fn migrate(&self, schema: Option<&str>, ddl: &str) -> Result<(), StoreError> {
        let mut batch = format!("BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK}, 0); ");
        if let Some(schema) = schema {
            let schema = ident(schema);
            batch.push_str(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; SET LOCAL search_path TO {schema}; "
            ));
        }
        batch.push_str(ddl);
        batch.push_str("; COMMIT;");
        let mut conn = Some(self.shared.connect_or_idle()?);
        self.shared.batch(&mut conn, batch)?;
        self.shared.give_back(conn);
        Ok(())
    }

    /// Drops `schema` and everything in it, under the migration lock.
    pub(crate) fn drop_schema(&self, schema: &str) -> Result<(), StoreError> {
        let batch = format!(
            "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK}, 0); \
             DROP SCHEMA IF EXISTS {} CASCADE; COMMIT;",
            ident(schema)
        );
        let mut conn = Some(self.shared.connect_or_idle()?);
        self.shared.batch(&mut conn, batch)?;
        self.shared.give_back(conn);
        Ok(())
    }

    /// Runs `f` in a transaction in `schema` (the records' when `None`). A write takes the
    /// schema's write lock first, so that one person's writes (and the event ids they take)
    /// commit in the order they took them; a read sees one snapshot.
    pub(crate) fn transaction<T>(
        &self,
        schema: Option<&str>,
        write: bool,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let shared = &*self.shared;
        let mut tx = PgTx {
            shared,
            conn: Some(shared.connect_or_idle()?),
        };
        let mut begin = String::from(if write {
            "BEGIN"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        });
        if let Some(schema) = schema {
            begin.push_str(&format!("; SET LOCAL search_path TO {}", ident(schema)));
        }
        shared.batch(&mut tx.conn, begin)?;
        if let (true, Some(schema)) = (write, schema) {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                args![WRITE_LOCK, schema],
            )?;
        }
        let value = f(&mut tx)?;
        shared.batch(&mut tx.conn, "COMMIT".into())?;
        shared.give_back(tx.conn.take());
        Ok(value)
    }

    /// Has `feed` catch up whenever a commit in `schema` is notified (by any copy), and once
    /// after each reconnection of the listener.
    pub(crate) fn register(&self, schema: &str, feed: Weak<dyn Feed>) {
        let mut feeds = lock(&self.shared.feeds);
        let list = feeds.entry(schema.to_owned()).or_default();
        list.retain(|f| f.strong_count() > 0);
        list.push(feed);
    }
}

/// A transaction on one PostgreSQL connection. Dropped without its `COMMIT` (an error), the
/// connection is closed and the server rolls back.
struct PgTx<'a> {
    shared: &'a Shared,
    conn: Option<PgConn>,
}

impl Tx for PgTx<'_> {
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        self.shared.query(&mut self.conn, sql, args)
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        let (sql, args) = (sql.to_owned(), args.to_vec());
        self.shared
            .with(&mut self.conn, move |mut conn| async move {
                let changed = pg_execute(&mut conn, &sql, &args).await;
                (conn, changed)
            })
    }

    fn postgres(&self) -> bool {
        true
    }
}

async fn pg_execute(
    conn: &mut PgConn,
    sql: &str,
    args: &[Value],
) -> Result<u64, tokio_postgres::Error> {
    let stmt = prepared(conn, sql).await?;
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    conn.client.execute(&stmt, &refs).await
}

async fn pg_query(
    conn: &mut PgConn,
    sql: &str,
    args: &[Value],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let stmt = prepared(conn, sql).await?;
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    let rows = conn.client.query(&stmt, &refs).await?;
    rows.iter().map(pg_row).collect()
}

async fn prepared(conn: &mut PgConn, sql: &str) -> Result<Statement, tokio_postgres::Error> {
    if let Some(stmt) = conn.statements.get(sql) {
        return Ok(stmt.clone());
    }
    let stmt = conn.client.prepare(sql).await?;
    if conn.statements.len() >= PREPARED {
        conn.statements.clear();
    }
    conn.statements.insert(sql.to_owned(), stmt.clone());
    Ok(stmt)
}

impl Shared {
    /// Runs `fut` on the database's runtime and waits for it on this thread.
    fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| StoreError::Unavailable)
    }

    fn connect(&self) -> Result<PgConn, StoreError> {
        let config = self.config.clone();
        self.run(async move {
            tokio::time::timeout(STATEMENT_LIMIT, async move {
                let (client, _driver) = connect_postgres(&config, None).await?;
                Ok::<_, PgConnectError>(PgConn {
                    client,
                    statements: HashMap::new(),
                })
            })
            .await
        })?
        .map_err(|_| StoreError::Postgres("no connection within 30 s".into()))?
        .map_err(|e| match e {
            PgConnectError::Db(e) => StoreError::from(e),
            tls => StoreError::Postgres(tls.to_string()),
        })
    }

    fn connect_or_idle(&self) -> Result<PgConn, StoreError> {
        let pooled = {
            let mut idle = lock(&self.idle);
            idle.retain(|c| !c.client.is_closed());
            idle.pop()
        };
        match pooled {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Option<PgConn>) {
        if let Some(conn) = conn {
            let mut idle = lock(&self.idle);
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(conn);
            }
        }
    }

    /// Runs `op` on the connection in `slot` (it hands the connection back with its answer),
    /// which goes back there only on success.
    fn with<T, F>(
        &self,
        slot: &mut Option<PgConn>,
        op: impl FnOnce(PgConn) -> F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = (PgConn, Result<T, tokio_postgres::Error>)>
            + Send
            + 'static,
    {
        let Some(conn) = slot.take() else {
            return Err(StoreError::Unavailable);
        };
        let work = op(conn);
        match self.run(async move { tokio::time::timeout(STATEMENT_LIMIT, work).await })? {
            Ok((conn, Ok(value))) => {
                *slot = Some(conn);
                Ok(value)
            }
            Ok((_, Err(e))) => Err(e.into()),
            Err(_) => Err(StoreError::Postgres("no answer within 30 s".into())),
        }
    }

    fn query(
        &self,
        slot: &mut Option<PgConn>,
        sql: &str,
        args: &[Value],
    ) -> Result<Vec<Row>, StoreError> {
        let (sql, args) = (sql.to_owned(), args.to_vec());
        self.with(slot, move |mut conn| async move {
            let rows = pg_query(&mut conn, &sql, &args).await;
            (conn, rows)
        })
    }

    /// Several statements without parameters, in one round trip.
    fn batch(&self, slot: &mut Option<PgConn>, sql: String) -> Result<(), StoreError> {
        self.with(slot, move |conn| async move {
            let done = conn.client.batch_execute(&sql).await;
            (conn, done)
        })
    }
}

/// The listening connection, for as long as the database is open: each notification has the
/// stores of its schema catch up (on the runtime's blocking threads); after each (re)connection
/// every store catches up, for what it missed while the connection was down.
async fn listen(config: Config, shared: Weak<Shared>) {
    loop {
        let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
        if let Ok((client, driver)) = connect_postgres(&config, Some(sender)).await {
            if client
                .batch_execute(&format!("LISTEN {EVENTS_CHANNEL}"))
                .await
                .is_ok()
            {
                feed(&shared, None);
                while let Some(notification) = received.recv().await {
                    // `<schema> <event id>`.
                    let payload = notification.payload();
                    let schema = payload.split(' ').next().unwrap_or_default();
                    if !feed(&shared, Some(schema)) {
                        return;
                    }
                }
            }
            driver.abort();
        }
        if shared.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Has the stores of `schema` (every store when `None`) catch up. `false` once the database
/// is gone.
fn feed(shared: &Weak<Shared>, schema: Option<&str>) -> bool {
    let Some(shared) = shared.upgrade() else {
        return false;
    };
    let feeds: Vec<Arc<dyn Feed>> = {
        let feeds = lock(&shared.feeds);
        match schema {
            Some(schema) => feeds
                .get(schema)
                .map(|l| l.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default(),
            None => feeds.values().flatten().filter_map(Weak::upgrade).collect(),
        }
    };
    drop(shared);
    for f in feeds {
        tokio::task::spawn_blocking(move || f.catch_up());
    }
    true
}

/// The engine a store or the records run on.
pub(crate) enum Backend {
    /// A SQLite file, under a lock.
    Sqlite(Mutex<Connection>),
    /// A schema of a shared PostgreSQL database (the records' when `None`).
    Pg {
        db: Database,
        schema: Option<String>,
    },
}

impl Backend {
    /// The SQLite connection, locked (`None` on PostgreSQL).
    pub(crate) fn sqlite(&self) -> Option<MutexGuard<'_, Connection>> {
        match self {
            // A panic while holding the lock leaves SQLite consistent (transactions roll back).
            Backend::Sqlite(conn) => Some(lock(conn)),
            Backend::Pg { .. } => None,
        }
    }

    /// Runs `f` on a consistent view: SQLite under its lock, PostgreSQL in a snapshot.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Backend::Sqlite(conn) => f(&mut SqliteTx(&lock(conn))),
            Backend::Pg { db, schema } => db.transaction(schema.as_deref(), false, f),
        }
    }

    /// Runs `f` in a transaction; on SQLite `committed` runs after the commit with the lock
    /// still held, on PostgreSQL after the commit.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
        committed: impl FnOnce(&T),
    ) -> Result<T, StoreError> {
        match self {
            Backend::Sqlite(conn) => {
                let mut conn = lock(conn);
                let tx = conn.transaction()?;
                let value = f(&mut SqliteTx(&tx))?;
                tx.commit()?;
                committed(&value);
                Ok(value)
            }
            Backend::Pg { db, schema } => {
                let value = db.transaction(schema.as_deref(), true, f)?;
                committed(&value);
                Ok(value)
            }
        }
    }
}
