//! A PostgreSQL schema of a test's own, for the tests that run the app on PostgreSQL.
//!
//! They run against the database `GCW_POSTGRES_URL` (or `DATABASE_URL`) names (as the
//! webhook's PostgreSQL inbox tests do); without one they print that they were skipped, and
//! fail when `CI` is set (`.ci/run` starts a throwaway cluster).

use std::sync::atomic::{AtomicUsize, Ordering};

/// A schema of the test's own (the app's records) and the person schemas beside it, dropped
/// when the test ends.
pub struct PgSchema {
    admin: String,
    name: String,
    url: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl PgSchema {
    /// `None` (after a line saying so) when no database is given, outside CI.
    pub fn new(test: &str) -> Option<Self> {
        let admin =
            match std::env::var("GCW_POSTGRES_URL").or_else(|_| std::env::var("DATABASE_URL")) {
                Ok(url) if !url.is_empty() => url,
                _ => {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "GCW_POSTGRES_URL (or DATABASE_URL) is unset: in CI the app's PostgreSQL \
                     tests must run against a database (.ci/run starts one)"
                    );
                    eprintln!(
                        "SKIPPED {test}: set GCW_POSTGRES_URL=postgres://USER@HOST:PORT/DB to run \
                     the app's PostgreSQL tests"
                    );
                    return None;
                }
            };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut short: String = test.chars().filter(char::is_ascii_alphanumeric).collect();
        short.truncate(12);
        let name = format!("gca_{}_{n}_{short}", std::process::id()).to_ascii_lowercase();
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

    /// The connection string, its `search_path` the test's schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `statements` in the test's schema.
    pub fn sql(&self, statements: &str) {
        sql(&self.url, statements);
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let drop_all = format!(
            "DO $$ DECLARE s text; BEGIN \
             FOR s IN SELECT nspname FROM pg_namespace WHERE nspname = '{name}' \
               OR starts_with(nspname, '{name}_') LOOP \
               EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s); \
             END LOOP; END $$",
            name = self.name
        );
        sql(&self.admin, &drop_all);
    }
}

/// Runs `statements` on the database at `url`.
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
