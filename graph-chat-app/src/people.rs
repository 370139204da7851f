//! The people signed in to the app, each with a Graph side of their own: their cache (a SQLite
//! file of theirs under `--data`, so one person's chats, messages and events are never
//! another's), their two subscriptions made and renewed with their own token, their keeper and
//! their reads, and their token, refreshed before it expires (the rotated refresh token sealed
//! at rest by [`Accounts`]).
//!
//! A person whose refresh token is refused (`invalid_grant`: revoked, or expired) is signed
//! out: their sessions end, their record goes, and the app calls Graph for them no more. A
//! watch per person asks for their token every [`TOKEN_WATCH`], so that happens within one
//! token lifetime (and that interval) of the revocation even when nothing else calls Graph.
//!
//! Copies of the app sharing a database each run every person signed in
//! ([`People::take_up_others`]): every [`TAKE_UP_EVERY`] each copy lists the people recorded,
//! starts those signed in on another copy (from their stored refresh token, which a use does not
//! revoke) and stops those whose record is gone (signed out or revoked on another copy, which
//! removed their cache, once). So the copy that holds a person's job may be any copy, a
//! takeover covers them, and any copy answers their page and handles their notifications. A
//! periodic list rather than a `NOTIFY`: a notice sent while a copy is reconnecting, or before
//! it started, is lost, and the list is what such a copy needs anyway; it costs one small query
//! every few seconds, and no call to Graph.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use graph_chat_webhook::tokens::{
    OAuthClient, PersonTokens, RefreshToken, TokenError, TokenSet, TokenSource,
};
use graph_chat_webhook::GraphClient;

use crate::accounts::{Accounts, Person};
use crate::files;
use crate::jobs::Jobs;
use crate::store::{Database, Store, StoreError};
use crate::sync::{GraphSync, ResyncReason, Subscriber, SyncError};
use crate::view::Viewer;

/// How often each person's token is asked for, which refreshes it when it is near its expiry:
/// a revoked person is signed out at most this long after their last token expired.
pub const TOKEN_WATCH: Duration = Duration::from_secs(5);

/// Why a person's Graph side did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeopleError {
    /// The sign-in's tokens say nothing of who signed in (no id token).
    #[error("the sign-in returned no id token")]
    NoIdentity,
    /// The person belongs to another tenant than the app's.
    #[error("the person is not of this app's tenant")]
    OtherTenant,
    /// The identity platform refused or could not be reached.
    #[error("token: {0}")]
    Token(#[from] TokenError),
    /// Their cache or the app's records.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Their Graph side.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// What every person's Graph side shares.
#[derive(Clone)]
pub struct Setup {
    /// The Graph to call (`https://graph.microsoft.com`, or a simulator's base URL).
    pub graph: String,
    /// The app's tenant: only its people sign in.
    pub tenant_id: String,
    /// Where each person's cache is kept.
    pub data: PathBuf,
    /// Where Graph delivers, and what it encrypts for.
    pub subscriber: Subscriber,
    /// How often each person's subscriptions are checked and chats read (the reconcile).
    pub resync_every: Duration,
    /// How long each person's event log keeps an event for pages that resume.
    pub event_retention: Duration,
    /// How often each person's subscriptions are renewed (`--renew-every`); `None`: half-way
    /// through their life.
    pub renew_every: Option<Duration>,
    /// Which copy of the app does each person's subscriptions, renewals and reconciles.
    pub jobs: Jobs,
    /// The PostgreSQL database each person's cache is kept in, shared with the other copies of
    /// the app; `None`: a SQLite file per person under `data`.
    pub database: Option<Database>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("graph", &self.graph)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

/// A person whose Graph side runs.
struct Running {
    sync: Arc<GraphSync>,
    source: Arc<PersonTokens>,
    display_name: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// When it started: a list of the records read before then may not name them yet.
    started: Instant,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Inner {
    setup: Setup,
    oauth: Arc<OAuthClient>,
    accounts: Accounts,
    running: Mutex<HashMap<String, Running>>,
    /// Held while a person signed in on another copy is taken up here: one start each.
    joining: tokio::sync::Mutex<()>,
    /// Set when the app stops: no one is started any more.
    stopped: std::sync::atomic::AtomicBool,
}

/// How often a copy sharing a database looks for people signed in on another copy, and starts
/// their Graph side here too (so that a notification for them that this copy receives has a
/// place to go; what it dropped before is read when their Graph side starts here), and for
/// people signed out or revoked on another copy, whose Graph side stops here too.
pub const TAKE_UP_EVERY: Duration = Duration::from_secs(5);

/// Everyone signed in. Cheap to clone; every clone is the same.
#[derive(Clone)]
pub struct People {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for People {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("People")
            .field("signed_in", &self.running().len())
            .finish_non_exhaustive()
    }
}

/// The cache file of `user_id` under `data`: `cache-{id}.sqlite` for ids of letters, digits and
/// dashes (Entra's are GUIDs), else named by the id's SHA-256.
pub fn cache_file(data: &Path, user_id: &str) -> PathBuf {
    let plain = !user_id.is_empty()
        && user_id.len() <= 64
        && user_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    let name = if plain {
        user_id.to_owned()
    } else {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, user_id.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    data.join(format!("cache-{name}.sqlite"))
}

impl People {
    /// No one yet.
    pub fn new(setup: Setup, oauth: Arc<OAuthClient>, accounts: Accounts) -> Self {
        Self {
            inner: Arc::new(Inner {
                setup,
                oauth,
                accounts,
                running: Mutex::new(HashMap::new()),
                joining: tokio::sync::Mutex::new(()),
                stopped: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Graph side of a signed-in person.
    pub fn get(&self, user_id: &str) -> Option<Arc<GraphSync>> {
        self.running().get(user_id).map(|r| Arc::clone(&r.sync))
    }

    /// A signed-in person's name.
    pub fn display_name(&self, user_id: &str) -> Option<String> {
        self.running().get(user_id).map(|r| r.display_name.clone())
    }

    /// The ids of everyone whose Graph side runs.
    pub fn user_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.running().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The person one of whose subscriptions `subscription_id` is.
    pub fn by_subscription(&self, subscription_id: &str) -> Option<Arc<GraphSync>> {
        let all: Vec<Arc<GraphSync>> = self
            .running()
            .values()
            .map(|r| Arc::clone(&r.sync))
            .collect();
        all.into_iter()
            .find(|sync| sync.owns_subscription(subscription_id))
    }

    /// A person signed in with `tokens` (from a redeemed code): recorded with their refresh
    /// token, their Graph side started and their chats read. Their user id. A person whose
    /// Graph side runs already (signed in elsewhere) keeps it, with its event streams, but with
    /// this sign-in's tokens (the refresh token it held may have been revoked since, unnoticed
    /// yet); one whose token was refused gets a new one.
    pub async fn sign_in(&self, tokens: TokenSet) -> Result<String, PeopleError> {
        let claims = tokens.id_claims.as_ref().ok_or(PeopleError::NoIdentity)?;
        if let Some(tid) = claims.tid.as_deref() {
            if !tid.eq_ignore_ascii_case(&self.inner.setup.tenant_id) {
                return Err(PeopleError::OtherTenant);
            }
        }
        let user_id = claims.oid.clone();
        if user_id.is_empty() {
            return Err(PeopleError::NoIdentity);
        }
        let name = claims
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| user_id.clone());
        let running = self
            .running()
            .get(&user_id)
            .filter(|r| !r.source.is_revoked())
            .map(|r| Arc::clone(&r.source));
        if let Some(source) = running {
            // Its rotation hook keeps the new refresh token, sealed.
            tokio::task::spawn_blocking(move || source.replace(tokens))
                .await
                .map_err(|_| StoreError::Unavailable)?;
            return Ok(user_id);
        }
        let accounts = self.inner.accounts.clone();
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|t| zeroize::Zeroizing::new(t.secret().to_owned()));
        let (id, n) = (user_id.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            accounts.save_person(&id, &n, refresh.as_ref().map(|r| r.as_str()))
        })
        .await
        .map_err(|_| StoreError::Unavailable)??;
        self.start(user_id.clone(), name, tokens).await?;
        Ok(user_id)
    }

    /// Starts the Graph side of everyone the app's records hold (on the app's start): each
    /// refresh token redeemed for a fresh access token; one refused signs its person out.
    pub async fn resume(&self) -> Result<(), PeopleError> {
        let accounts = self.inner.accounts.clone();
        let people = tokio::task::spawn_blocking(move || accounts.people())
            .await
            .map_err(|_| StoreError::Unavailable)??;
        for person in people {
            self.resume_one(person).await?;
        }
        Ok(())
    }

    /// The Graph side of a person signed in on another copy of the app (sharing its database):
    /// started here from their records, as on a restart, the first time one of their sessions
    /// comes to this copy. `None` when they are not (or no longer) signed in, or it cannot
    /// start.
    pub async fn join(&self, user_id: &str) -> Option<Arc<GraphSync>> {
        // One copy alone (SQLite) started everyone signed in: a person it does not run has no
        // Graph side to take up (their token could not be refreshed; the next start retries).
        self.inner.setup.database.as_ref()?;
        let _one = self.inner.joining.lock().await;
        if self.inner.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        if let Some(sync) = self.get(user_id) {
            return Some(sync);
        }
        let accounts = self.inner.accounts.clone();
        let people = tokio::task::spawn_blocking(move || accounts.people())
            .await
            .ok()?
            .ok()?;
        let person = people.into_iter().find(|p| p.user_id == user_id)?;
        if let Err(e) = self.resume_one(person).await {
            tracing::warn!(user = %user_id, error = %e, "cannot take up a person signed in elsewhere");
        }
        self.get(user_id)
    }

    /// With a shared database: every [`TAKE_UP_EVERY`], starts here the Graph side of everyone
    /// signed in on another copy, and stops that of everyone whose record is gone (signed out or
    /// revoked on another copy, which removed their cache), until the app stops. Nothing with
    /// SQLite (one copy).
    pub fn take_up_others(&self) {
        if self.inner.setup.database.is_none() {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TAKE_UP_EVERY).await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let people = People { inner };
                if people
                    .inner
                    .stopped
                    .load(std::sync::atomic::Ordering::SeqCst)
                {
                    return;
                }
                let listed_at = Instant::now();
                let accounts = people.inner.accounts.clone();
                let Ok(Ok(everyone)) = tokio::task::spawn_blocking(move || accounts.people()).await
                else {
                    continue;
                };
                people.stop_unlisted(&everyone, listed_at).await;
                for person in everyone {
                    if people.get(&person.user_id).is_none() {
                        people.join(&person.user_id).await;
                    }
                }
            }
        });
    }

    /// Stops here the Graph side of the people running here whom `listed` (the records, read
    /// at `listed_at`) no longer names: signed out or revoked on another copy, which removed
    /// their cache. One started since the list was read (signed in here just now) is kept.
    async fn stop_unlisted(&self, listed: &[Person], listed_at: Instant) {
        let _one = self.inner.joining.lock().await;
        let gone: Vec<(String, Running)> = {
            let mut running = self.running();
            let ids: Vec<String> = running
                .iter()
                .filter(|(id, r)| {
                    r.started < listed_at && !listed.iter().any(|p| &p.user_id == *id)
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| running.remove(&id).map(|r| (id, r)))
                .collect()
        };
        for (user_id, running) in gone {
            tracing::info!(user = %user_id, "signed out on another copy: stopped here too");
            drop(running);
        }
    }

    /// [`People::restart_from_records`], on a task of its own (the Graph side it stops is the
    /// one whose token watch asks for it).
    fn spawn_restart(&self, user_id: String) {
        let people = self.clone();
        tokio::spawn(async move { people.restart_from_records(&user_id).await });
    }

    /// Stops a person's Graph side here and starts it again from their records (their refresh
    /// token as the database holds it now), as on a restart; not at all when they are no longer
    /// signed in.
    async fn restart_from_records(&self, user_id: &str) {
        let _one = self.inner.joining.lock().await;
        let gone = self.running().remove(user_id);
        drop(gone);
        if self.inner.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let accounts = self.inner.accounts.clone();
        let Ok(Ok(people)) = tokio::task::spawn_blocking(move || accounts.people()).await else {
            return;
        };
        if let Some(person) = people.into_iter().find(|p| p.user_id == user_id) {
            if let Err(e) = self.resume_one(person).await {
                tracing::warn!(user = %user_id, error = %e, "cannot start a person's Graph side again");
            }
        }
    }

    /// Resumes one person's Graph side from their records (see [`People::resume`]).
    async fn resume_one(&self, person: Person) -> Result<(), PeopleError> {
        {
            let Some(refresh) = person.refresh_token else {
                self.sign_out(&person.user_id, "no refresh token kept")
                    .await;
                return Ok(());
            };
            let oauth = Arc::clone(&self.inner.oauth);
            let refreshed = tokio::task::spawn_blocking(move || {
                oauth.refresh(&RefreshToken::new(refresh.to_string()))
            })
            .await;
            match refreshed {
                Ok(Ok(tokens)) => {
                    if let Some(rotated) = &tokens.refresh_token {
                        let accounts = self.inner.accounts.clone();
                        let (id, secret) = (
                            person.user_id.clone(),
                            zeroize::Zeroizing::new(rotated.secret().to_owned()),
                        );
                        let kept = tokio::task::spawn_blocking(move || {
                            accounts.save_refresh_token(&id, &secret)
                        })
                        .await;
                        if let Ok(Err(e)) = kept {
                            tracing::warn!(error = %e, "cannot keep a rotated refresh token");
                        }
                    }
                    if let Err(e) = self
                        .start(person.user_id.clone(), person.display_name, tokens)
                        .await
                    {
                        tracing::warn!(user = %person.user_id, error = %e, "a person's Graph side did not start");
                    }
                }
                Ok(Err(TokenError::InvalidGrant)) => {
                    self.sign_out(&person.user_id, "refresh token refused")
                        .await;
                }
                Ok(Err(e)) => {
                    // Kept: the next start tries again; their sessions get 401 meanwhile.
                    tracing::warn!(user = %person.user_id, error = %e, "cannot refresh a person's token");
                }
                Err(_) => return Err(StoreError::Unavailable.into()),
            }
        }
        Ok(())
    }

    /// The Graph side of one person: their cache, their token source, their subscriptions and
    /// reads (the first awaited), their keeper, the retries of their kept writes, periodic
    /// resync and token watch.
    async fn start(
        &self,
        user_id: String,
        display_name: String,
        tokens: TokenSet,
    ) -> Result<(), PeopleError> {
        let setup = &self.inner.setup;
        let viewer = Viewer {
            user_id: user_id.clone(),
            graph_base: setup.graph.trim_end_matches('/').to_owned(),
        };
        let path = cache_file(&setup.data, &user_id);
        let retention = setup.event_retention;
        let database = setup.database.clone();
        let store = tokio::task::spawn_blocking(move || {
            if let Some(db) = database {
                let store = Store::open_postgres(&db, viewer)?;
                store.set_event_retention(retention);
                return Ok(store);
            }
            // Readable by the app's user only, its `-wal` and `-shm` too.
            files::create_private_file(&path).map_err(|e| {
                tracing::error!(error = %e, "cannot create a person's cache");
                StoreError::Unavailable
            })?;
            let store = Store::open(&path, viewer)?;
            store.set_event_retention(retention);
            // The writes a process that ended was trying are tried again (a send among them
            // only once it is known not to have been made).
            let now_ms = i64::try_from(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis(),
            )
            .unwrap_or(i64::MAX);
            let waiting = store.resume_writes(now_ms)?;
            if waiting > 0 {
                tracing::info!(
                    writes = waiting,
                    "a person's writes kept in the cache are resumed"
                );
            }
            Ok::<_, StoreError>(store)
        })
        .await
        .map_err(|_| StoreError::Unavailable)??;
        let accounts = self.inner.accounts.clone();
        let owner = user_id.clone();
        // Refreshed half-way through its life: a subscription's `reauthorizationRequired` (at
        // three quarters of the token it was made with, at the latest) is answered with a token
        // Graph does not ask about again at once.
        let margin = tokens
            .expires_at
            .duration_since(SystemTime::now())
            .map_or(Duration::ZERO, |left| left / 2);
        let source = Arc::new(
            PersonTokens::new(Arc::clone(&self.inner.oauth), tokens)
                .with_margin(margin)
                .on_rotate(move |rotated: &RefreshToken| {
                    if let Err(e) = accounts.save_refresh_token(&owner, rotated.secret()) {
                        tracing::warn!(error = %e, "cannot keep a rotated refresh token");
                    }
                }),
        );
        let graph = GraphClient::with_token_source(
            &setup.graph,
            Arc::clone(&source) as Arc<dyn TokenSource>,
        );
        // Held by one copy of the app at a time (always this one, without a database).
        let job = setup.jobs.job(&format!("person:{user_id}")).await;
        let mut sync = GraphSync::new(
            graph,
            store,
            user_id.clone(),
            setup.tenant_id.clone(),
            setup.subscriber.clone(),
        )
        .with_job(job);
        if let Some(every) = setup.renew_every {
            sync = sync.with_renew_every(every);
        }
        let sync = Arc::new(sync);
        let mut tasks = vec![
            tokio::spawn(Arc::clone(&sync).keep()),
            tokio::spawn(Arc::clone(&sync).run_writes()),
        ];
        let every = setup.resync_every.max(Duration::from_secs(1));
        let periodic = Arc::clone(&sync);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let _ = periodic.resync_all(ResyncReason::Periodic).await;
            }
        }));
        tasks.push(tokio::spawn(watch(
            self.clone(),
            user_id.clone(),
            Arc::clone(&sync),
            Arc::clone(&source),
        )));
        // Signed in again: the Graph side before goes (its tasks end when it is dropped). The
        // new one is found by its subscriptions from the moment they exist.
        let before = self.running().insert(
            user_id,
            Running {
                sync: Arc::clone(&sync),
                source: Arc::clone(&source),
                display_name,
                tasks,
                started: Instant::now(),
            },
        );
        drop(before);
        // Subscribe first, then read: what changes in between arrives as a notification. A
        // failure is logged by the resync; the periodic one tries again.
        let _ = sync.resync_all(ResyncReason::Start).await;
        Ok(())
    }

    /// Signs a person out for good: their sessions and record go, their Graph side stops, and
    /// their cache is removed.
    async fn sign_out(&self, user_id: &str, why: &'static str) {
        tracing::warn!(user = %user_id, reason = why, "a person is signed out");
        let accounts = self.inner.accounts.clone();
        let id = user_id.to_owned();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || accounts.forget_person(&id)).await {
            tracing::error!(error = %e, "cannot end a revoked person's sessions");
        }
        let gone = self.running().remove(user_id);
        drop(gone);
        // Their cache goes too: with no token, no notification or read keeps it current, so a
        // message deleted or blocked from now on would stay in it. A new sign-in reads again.
        if let Some(db) = self.inner.setup.database.clone() {
            let id = user_id.to_owned();
            if let Ok(Err(e)) =
                tokio::task::spawn_blocking(move || Store::remove_postgres(&db, &id)).await
            {
                tracing::error!(error = %e, "cannot remove a signed-out person's cache");
            }
            return;
        }
        let cache = cache_file(&self.inner.setup.data, user_id);
        for suffix in ["", "-wal", "-shm"] {
            let mut file = cache.clone().into_os_string();
            file.push(suffix);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::error!(error = %e, "cannot remove a signed-out person's cache"),
            }
        }
    }

    /// Stops everyone's Graph side (the app stops).
    pub fn stop_all(&self) {
        self.inner
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let all: Vec<Running> = self.running().drain().map(|(_, r)| r).collect();
        drop(all);
    }
}

/// Asks for a person's token every [`TOKEN_WATCH`] (which refreshes it near its expiry); a
/// refused refresh signs them out.
async fn watch(people: People, user_id: String, sync: Arc<GraphSync>, source: Arc<PersonTokens>) {
    loop {
        tokio::time::sleep(TOKEN_WATCH).await;
        let asked = Arc::clone(&source);
        let answer = tokio::task::spawn_blocking(move || asked.token()).await;
        let refused = source.is_revoked() || matches!(answer, Ok(Err(TokenError::InvalidGrant)));
        // A sign-in of theirs since may have given the source new tokens: asked again, it
        // answers (with nothing new, it refuses at once, without calling the platform).
        let revoked = refused && {
            let asked = Arc::clone(&source);
            !matches!(
                tokio::task::spawn_blocking(move || asked.token()).await,
                Ok(Ok(_))
            )
        };
        if revoked {
            // Only if this is still the person's Graph side (not one started again since).
            let current = people.get(&user_id).is_some_and(|s| Arc::ptr_eq(&s, &sync));
            if current && people.inner.setup.database.is_some() {
                // The records may hold a newer refresh token than this copy's (the person
                // signed in again on another copy; or an identity platform that spends a
                // refresh token when it is used, which Entra does not): the one the records
                // hold is tried, and refused too, signs the person out.
                people.spawn_restart(user_id);
            } else if current {
                people.sign_out(&user_id, "refresh token refused").await;
            }
            return;
        }
    }
}
