//! The server component's Graph side: the subscriptions (created, renewed and reauthorized
//! through the [`Keeper`], recreated when Graph lost them), and the reads that make the cache
//! complete whatever the notifications did.
//!
//! Reads happen on evidence or on a person's action only, never on a short timer (Microsoft's
//! Teams API overview calls a GET loop polling, and forbids it): every chat from its watermark
//! at start ([`GraphSync::resync_all`]), the gap of a subscription found gone, a chat a
//! notification names that the cache does not know, a page load ([`GraphSync::page_loaded`]:
//! one list of the person's chats, then only the chats whose newest message the cache lacks), a
//! chat opened ([`GraphSync::chat_opened`]), and one reconcile per `--resync-every`. Graph says
//! nothing when a Teams notification is lost (no `missed` event for chat messages): the contract
//! is in `docs/contracts.md#the-chat-app`.
//!
//! Every read is paced under Graph's Teams limits ([`READ_GAP`]), and one Graph still throttles
//! waits its `Retry-After` and goes on from the page it stopped at. What a person asked for
//! ([`GraphSync::write`]) is sent once at once; throttled, it waits and is retried in the
//! background until Graph takes it or refuses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use graph_chat_webhook::notifications::keeper::{Keeper, KeeperConfig, Outcome, TaskKind};
use graph_chat_webhook::notifications::model::{
    ChangeType, ChatMessage, EnumValue, LifecycleEvent,
};
use graph_chat_webhook::notifications::outbound::{
    self, ChatsRequest, HttpRequest, MessagesRequest, Resource, Subscription, SubscriptionRequest,
};
use graph_chat_webhook::{ClientError, GraphClient, GraphResponse, RetryPolicy};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::jobs::Job;
use crate::store::{Origin, Store, StoreError};

mod keeping;
mod pending;
mod visits;
mod write;

pub use write::{Write, Written};

/// How long each subscription lives: the guide's hour, renewed half-way by the keeper.
pub const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(3600);

/// The shortest time between renewals `--renew-every` may ask for: a renewal's round trip
/// must fit well inside it.
pub const MIN_RENEW_EVERY: Duration = Duration::from_secs(5);

/// A read that found messages moves the watermark to the newest change it saw, less this much:
/// a change Graph committed a little late is read again rather than missed.
const WATERMARK_OVERLAP: Duration = Duration::from_secs(60);

/// The most pages one read follows (50 messages each): a runaway `nextLink` stops here.
const MAX_PAGES: usize = 10_000;

/// The pages the first read of a chat (no watermark yet) follows: its newest 100 messages.
/// Older ones are history a person pages back to, not something to copy up front.
pub const FIRST_READ_PAGES: usize = 2;

/// A page load lists the person's chats at most this often.
pub const PAGE_LOAD_EVERY: Duration = Duration::from_secs(60);

/// Opening a chat reads it at most this often.
pub const OPEN_CHAT_EVERY: Duration = Duration::from_secs(300);

/// The least time between two of a person's reads: Graph's Teams limit for reading chats is
/// about 5 requests a second per user.
pub const READ_GAP: Duration = Duration::from_millis(200);

/// How often a read Graph keeps throttling (after the client's own retries) waits and tries the
/// same page again before the read gives up; the next trigger goes on from the watermark.
const THROTTLED_ROUNDS: u32 = 20;

/// The longest a throttled call waits before it is tried again, whatever `Retry-After` says.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(60);

/// How far before a send a message found after its answer was lost may have been made (the
/// clocks of the app and Graph differ a little).
const SEND_CHECK_SLACK: Duration = Duration::from_secs(120);

/// How long a write a person asked for is retried while Graph throttles it.
pub const WRITE_PATIENCE: Duration = Duration::from_secs(3600);

/// The least time between two of the app's reads of one chat, and between two of its writes
/// to one chat: Graph's Teams limit is about one request a second per app per tenant on one
/// chat (and one message a second per user for sends). Other chats are not held up by it.
pub const CHAT_GAP: Duration = Duration::from_secs(1);

/// Which of a chat's two paces a call waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Gate {
    /// The app's reads of the chat.
    Read,
    /// The writes people asked for.
    Write,
}

/// The chat a call's URL is about (the segment after `chats/`), if it is about one.
fn chat_of(url: &str) -> Option<&str> {
    let mut segments = path_of(url).split('/');
    while let Some(segment) = segments.next() {
        if segment == "chats" {
            return segments
                .next()
                .filter(|id| !id.is_empty() && *id != "getAllMessages");
        }
    }
    None
}

/// Why a call to Graph did not do what it should.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// No answer.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Graph answered with an error.
    #[error("{what}: Graph answered {status}")]
    Status {
        /// The call.
        what: String,
        /// The status.
        status: u16,
    },
    /// A request value could not be built (a bad id).
    #[error("{0}")]
    Request(#[from] outbound::RequestError),
    /// Graph's answer was not what the call returns.
    #[error("{what}: {reason}")]
    Answer {
        /// The call.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// The cache failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The app's two subscriptions, as the guide recommends: the user's messages across chats, and
/// the user's chats with their user-specific properties (the viewpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/users/{id}/chats/getAllMessages`.
    Messages,
    /// `/users/{id}/chats?notifyOnUserSpecificProperties=true` (beta).
    Chats,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Messages, Kind::Chats];

    fn name(self) -> &'static str {
        match self {
            Kind::Messages => "messages",
            Kind::Chats => "chats",
        }
    }
}

/// Why the app reads everything again ([`GraphSync::resync_all`]): said in its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResyncReason {
    /// The app started (or restarted on its cache).
    Start,
    /// The periodic reconcile (`--resync-every`).
    Periodic,
    /// A lifecycle event said notifications may have been lost (`missed`, a removal).
    Lifecycle,
    /// A subscription was created again: what was sent while it was gone is only found by
    /// reading.
    Recreated,
    /// The offline demo wrote its first messages through Graph.
    Seeded,
    /// A page load found chats the cache is behind on: notifications were lost.
    PageLoad,
    /// This copy took the person's job (another copy that held it stopped, or died): their
    /// subscriptions are checked, then their chats read.
    JobTaken,
    /// The webhook could not take deliveries (it answered Graph 429 or 5xx, or a batch could
    /// not be kept) and takes them again.
    DeliveriesRefused,
}

impl ResyncReason {
    /// The reason as it appears in the log (`reason=...`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Periodic => "periodic",
            Self::Lifecycle => "lifecycle event",
            Self::Recreated => "subscription recreated",
            Self::Seeded => "demo seeded",
            Self::PageLoad => "page load",
            Self::JobTaken => "job taken over",
            Self::DeliveriesRefused => "deliveries refused",
        }
    }
}

impl std::fmt::Display for ResyncReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The path of a request's URL, without its query (which may hold a paging token): what a log
/// line names a call by.
fn path_of(url: &str) -> &str {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    match without_query.find("://") {
        Some(scheme) => {
            let rest = &without_query[scheme + 3..];
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        None => without_query,
    }
}

/// One Graph call, sent on this thread, and its log line: a warning for a call that got no
/// answer, was throttled (429, 503, with `Retry-After`) or failed (other 4xx and 5xx but 404,
/// which each caller reads as it means); a debug line for the rest. Method, path and status
/// only: never a body, a header or the query.
fn call(graph: &GraphClient, request: &HttpRequest) -> Result<GraphResponse, ClientError> {
    let method = request.method.as_str();
    let path = path_of(&request.url);
    let result = graph.send(request);
    match &result {
        Err(e) => {
            // The error names the URL: only its path goes in the line.
            let error = e.to_string().replace(&request.url, path);
            tracing::warn!(%method, %path, %error, "Graph call got no answer")
        }
        Ok(answer) => {
            let status = answer.status;
            let retry_after = answer.retry_after.as_deref();
            match status {
                429 | 503 => {
                    tracing::warn!(%method, %path, status, retry_after, "Graph throttled a call")
                }
                404 => tracing::debug!(%method, %path, status, "Graph call: not found"),
                400.. => tracing::warn!(%method, %path, status, retry_after, "Graph call failed"),
                _ => tracing::debug!(%method, %path, status, "Graph call"),
            }
        }
    }
    result
}

/// What the server component needs to subscribe.
#[derive(Clone)]
pub struct Subscriber {
    /// Where Graph POSTs notifications (the webhook's `/notifications`).
    pub notification_url: String,
    /// Where Graph POSTs lifecycle events (the webhook's `/lifecycle`).
    pub lifecycle_url: String,
    /// The certificate resource data is encrypted for (DER).
    pub certificate_der: Vec<u8>,
    /// The id the key store knows that certificate's key by.
    pub certificate_id: String,
    /// The secret echoed in every notification.
    pub client_state: String,
    /// Whether `http://` loopback URLs are allowed (a local Graph only).
    pub loopback_http: bool,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("notification_url", &self.notification_url)
            .field("lifecycle_url", &self.lifecycle_url)
            .field("certificate_id", &self.certificate_id)
            .finish_non_exhaustive()
    }
}

/// The server component's Graph side. Shared (`Arc`) by the web handlers, the workers and the
/// keeper's loop.
pub struct GraphSync {
    graph: GraphClient,
    /// The same client without its retries: a person's write is tried once while they wait,
    /// then retried in the background ([`GraphSync::write`]).
    once: GraphClient,
    store: Store,
    user_id: String,
    tenant_id: String,
    subscriber: Subscriber,
    keeper: Mutex<Keeper>,
    /// The keeper's settings (a new keeper is made with them when the job is lost).
    keeper_config: KeeperConfig,
    /// `--renew-every`, when given: a subscription found at start or on a takeover is renewed
    /// at once, so that the keeper's next renewal comes this long after.
    renew_every: Option<Duration>,
    /// Whether this copy does the person's subscriptions, renewals and reconciles
    /// ([`crate::jobs`]).
    job: Job,
    wake: Notify,
    resync: tokio::sync::Mutex<()>,
    /// When the next read may go (reads are paced, [`READ_GAP`] apart).
    next_read: tokio::sync::Mutex<tokio::time::Instant>,
    /// When a page load last listed the chats.
    page_loaded: Mutex<Option<Instant>>,
    /// When each chat was last read because it was opened.
    opened: Mutex<HashMap<String, Instant>>,
    /// When each chat's next read and next write may go ([`CHAT_GAP`] apart).
    chat_slots: Mutex<HashMap<(Gate, String), tokio::time::Instant>>,
    /// Wakes [`GraphSync::run_writes`]: a write waits.
    writes_wake: Notify,
}

impl std::fmt::Debug for GraphSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSync")
            .field("graph", &self.graph)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn expect_success(what: &str, response: &GraphResponse) -> Result<(), SyncError> {
    if response.is_success() {
        Ok(())
    } else {
        Err(SyncError::Status {
            what: what.to_owned(),
            status: response.status,
        })
    }
}

/// What the cache keeps of a subscription the keeper got back.
fn summary(subscription: &Subscription) -> Value {
    serde_json::json!({
        "id": subscription.id,
        "resource": subscription.resource,
        "expirationDateTime": subscription.expiration_date_time,
    })
}

fn to_system_time(t: OffsetDateTime) -> SystemTime {
    let nanos = t.unix_timestamp_nanos();
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    } else {
        SystemTime::UNIX_EPOCH
    }
}

/// One page of a Graph listing: its items, untouched until each is applied, and the link to the
/// next page.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow, default)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// The id of an item of a listing.
#[derive(Deserialize)]
struct Listed {
    id: Option<String>,
}

/// `GET /users/{id}/chats/{chatId}?$expand=members`: the chat for the user, with its members
/// (the page names a chat without a topic after them, as Teams does).
fn user_chat_with_members(user_id: &str, chat_id: &str) -> Result<HttpRequest, SyncError> {
    let mut request = outbound::get_user_chat(user_id, chat_id)?;
    request.url.push_str("?$expand=members");
    Ok(request)
}

/// A chat read back: kept, or forgotten when Graph no longer has it for the user.
fn apply_read_chat(store: &Store, chat_id: &str, answer: &GraphResponse) -> Result<(), SyncError> {
    if answer.status == 404 {
        store.remove_chat(chat_id)?;
        return Ok(());
    }
    expect_success("GET chat", answer)?;
    let chat = std::str::from_utf8(&answer.body).map_err(|_| SyncError::Answer {
        what: "GET chat".into(),
        reason: "not UTF-8".into(),
    })?;
    store.apply_chat(chat)?;
    Ok(())
}

impl GraphSync {
    /// The Graph side for `user_id` of `tenant_id`.
    pub fn new(
        graph: GraphClient,
        store: Store,
        user_id: String,
        tenant_id: String,
        subscriber: Subscriber,
    ) -> Self {
        Self {
            once: graph.clone().with_retry(RetryPolicy::none()),
            graph,
            store,
            user_id,
            tenant_id,
            subscriber,
            keeper: Mutex::new(Keeper::new(KeeperConfig::default())),
            keeper_config: KeeperConfig::default(),
            renew_every: None,
            job: Job::always(),
            wake: Notify::new(),
            resync: tokio::sync::Mutex::new(()),
            next_read: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            page_loaded: Mutex::new(None),
            opened: Mutex::new(HashMap::new()),
            chat_slots: Mutex::new(HashMap::new()),
            writes_wake: Notify::new(),
        }
    }

    /// Renewals every `every` (`--renew-every`) rather than half-way through a subscription's
    /// life: held to at least [`MIN_RENEW_EVERY`] and at most half of
    /// [`SUBSCRIPTION_LIFETIME`] (a subscription must not lapse between two renewals).
    pub fn with_renew_every(mut self, every: Duration) -> Self {
        let every = every.clamp(MIN_RENEW_EVERY, SUBSCRIPTION_LIFETIME / 2);
        // The keeper renews half-way, and never later than its margin before the expiry: a
        // margin of the lifetime less `every` renews `every` after each renewal.
        let mut config = KeeperConfig::default();
        config.renew_margin = SUBSCRIPTION_LIFETIME - every;
        self.keeper_config = config;
        self.keeper = Mutex::new(Keeper::new(self.keeper_config));
        self.renew_every = Some(every);
        self
    }

    /// Does the person's subscriptions, renewals, reauthorizations and reconciles only while
    /// `job` is held ([`crate::jobs`]); without it, always.
    pub fn with_job(mut self, job: Job) -> Self {
        self.job = job;
        self
    }

    /// Whether this copy does the person's subscriptions, renewals and reconciles now.
    pub fn holds_job(&self) -> bool {
        self.job.is_held()
    }

    /// The cache.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The signed-in user.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The user's tenant.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// Sends a request off the async threads (a `GET` paced [`READ_GAP`] after the person's
    /// last one, and [`CHAT_GAP`] after the last read of the chat it reads), with the client's
    /// retries of throttled calls.
    pub async fn send(&self, request: HttpRequest) -> Result<GraphResponse, SyncError> {
        if request.method.as_str() == "GET" {
            self.pace().await;
            if let Some(chat) = chat_of(&request.url) {
                self.pace_chat(Gate::Read, chat).await;
            }
        }
        Self::send_with(self.graph.clone(), request).await
    }

    /// Waits for the chat's next slot of `gate` ([`CHAT_GAP`] after the one before); the
    /// other chats' slots are their own.
    async fn pace_chat(&self, gate: Gate, chat_id: &str) {
        let slot = {
            let mut slots = self.chat_slots.lock().unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            // A slot in the past holds nothing back: forgotten.
            slots.retain(|_, next| *next > now);
            let key = (gate, chat_id.to_owned());
            let slot = slots.get(&key).copied().unwrap_or(now).max(now);
            slots.insert(key, slot + CHAT_GAP);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Waits for the person's next read slot.
    async fn pace(&self) {
        let mut next = self.next_read.lock().await;
        tokio::time::sleep_until(*next).await;
        *next = tokio::time::Instant::now() + READ_GAP;
    }

    async fn send_with(
        graph: GraphClient,
        request: HttpRequest,
    ) -> Result<GraphResponse, SyncError> {
        tokio::task::spawn_blocking(move || call(&graph, &request))
            .await
            .map_err(|e| SyncError::Answer {
                what: "a call to Graph".into(),
                reason: e.to_string(),
            })?
            .map_err(SyncError::from)
    }

    fn keeper(&self) -> std::sync::MutexGuard<'_, Keeper> {
        self.keeper.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn resource(&self, kind: Kind) -> Resource {
        match kind {
            Kind::Messages => Resource::user_chat_messages(self.user_id.clone()),
            Kind::Chats => Resource::user_chats(self.user_id.clone()),
        }
    }

    fn template(&self, kind: Kind) -> SubscriptionRequest {
        let s = &self.subscriber;
        let mut request =
            SubscriptionRequest::builder(self.resource(kind), s.notification_url.clone())
                .change_types([
                    ChangeType::Created,
                    ChangeType::Updated,
                    ChangeType::Deleted,
                ])
                .lifecycle_url(s.lifecycle_url.clone())
                .include_resource_data(s.certificate_der.clone(), s.certificate_id.clone())
                .client_state(s.client_state.clone());
        if s.loopback_http {
            request = request.allow_loopback_http();
        }
        if kind == Kind::Chats {
            request = request.user_specific_properties();
        }
        request
    }

    /// Which of the app's subscriptions a resource Graph returned is (its path, without the
    /// query options).
    fn kind_of(&self, resource: &str) -> Option<Kind> {
        let path = resource.split('?').next().unwrap_or(resource);
        Kind::ALL
            .into_iter()
            .find(|k| self.resource(*k).path().eq_ignore_ascii_case(path))
    }

    /// Whether `subscription_id` is one of this person's subscriptions (the keeper's, or the
    /// cache's record). Blocking: for the webhook's workers.
    pub fn owns_subscription(&self, subscription_id: &str) -> bool {
        if self
            .keeper()
            .subscriptions()
            .any(|s| s.id == subscription_id)
        {
            return true;
        }
        Kind::ALL.into_iter().any(|kind| {
            self.store
                .subscription_id(kind.name())
                .ok()
                .flatten()
                .is_some_and(|id| id == subscription_id)
        })
    }

    /// Reconciles the subscriptions (at start, per reconcile and on a page load's evidence),
    /// then reads every chat and every chat's messages changed since its watermark, to the last
    /// page (a chat read for the first time: its newest [`FIRST_READ_PAGES`]). One at a time; a
    /// page Graph throttles is waited for and read again, not skipped. Logs its start and end with its
    /// `reason` (a warning when it failed).
    ///
    /// The periodic reconcile is the job's: on a copy that does not hold the person's job, it
    /// does nothing (and no resync checks the subscriptions there).
    pub async fn resync_all(&self, reason: ResyncReason) -> Result<(), SyncError> {
        if reason == ResyncReason::Periodic && !self.job.is_held() {
            tracing::debug!(
                reason = reason.as_str(),
                "resync left to the copy that holds the job"
            );
            return Ok(());
        }
        let _one = self.resync.lock().await;
        tracing::info!(reason = reason.as_str(), "resync started");
        // The subscriptions are checked with a GET at start (they may have expired while the
        // app was down), once per reconcile, and when a page load found notifications lost;
        // otherwise their renewals and lifecycle events keep them.
        let check = matches!(
            reason,
            ResyncReason::Start
                | ResyncReason::Periodic
                | ResyncReason::PageLoad
                | ResyncReason::JobTaken
        );
        let result = self.resync_locked(check).await;
        match &result {
            Ok(chats) => tracing::info!(reason = reason.as_str(), chats, "resync done"),
            Err(e) => tracing::warn!(reason = reason.as_str(), error = %e, "resync failed"),
        }
        result.map(|_| ())
    }

    /// The resync's work, under its lock; the number of chats it read.
    async fn resync_locked(&self, check_subscriptions: bool) -> Result<usize, SyncError> {
        if check_subscriptions {
            self.ensure_subscriptions().await?;
        }
        self.read_chats().await?;
        let mut first_error = None;
        let chat_ids = self.store.call(|store| store.chat_ids()).await?;
        let chats = chat_ids.len();
        for chat_id in chat_ids {
            if let Err(e) = self.read_messages(&chat_id).await {
                tracing::warn!(chat = %chat_id, error = %e, "reading a chat's messages failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(chats), Err)
    }

    /// A read (or one of the app's own subscription calls): sent (a `GET` paced, with the
    /// client's retries), and while Graph still answers 429 or 503 (the call was not carried
    /// out), its `Retry-After` (or a back-off) waited and the same request sent again, up to
    /// [`THROTTLED_ROUNDS`] times: a resync that meets throttling goes on where it stopped.
    async fn read(&self, request: &HttpRequest) -> Result<GraphResponse, SyncError> {
        let mut round = 0;
        loop {
            let answer = self.send(request.clone()).await?;
            if !matches!(answer.status, 429 | 503) || round >= THROTTLED_ROUNDS {
                return Ok(answer);
            }
            round += 1;
            let wait = throttle_wait(answer.retry_after.as_deref(), round);
            tracing::info!(
                path = %path_of(&request.url),
                round,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "a throttled read waits, then goes on where it stopped"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends `request` and every next page after it (to the last one, `max_pages`, or
    /// [`MAX_PAGES`]),
    /// handing each item of `value` to `apply` with the store, off the async threads; returns
    /// what `apply` returned for the items.
    async fn read_pages<T: Send + 'static>(
        &self,
        what: &'static str,
        mut request: HttpRequest,
        max_pages: usize,
        apply: impl Fn(&Store, &RawValue) -> T + Send + std::marker::Sync + 'static,
    ) -> Result<Vec<T>, SyncError> {
        let apply = Arc::new(apply);
        let mut out = Vec::new();
        for _ in 0..max_pages.min(MAX_PAGES) {
            let answer = self.read(&request).await?;
            expect_success(what, &answer)?;
            let apply = Arc::clone(&apply);
            let (items, next) = self
                .store
                .call(move |store| {
                    let page: Page<'_> =
                        serde_json::from_slice(&answer.body).map_err(|_| SyncError::Answer {
                            what: what.to_owned(),
                            reason: "not a page of items".into(),
                        })?;
                    let items: Vec<T> = page.value.iter().map(|item| apply(store, item)).collect();
                    Ok::<_, SyncError>((items, page.next_link))
                })
                .await?;
            out.extend(items);
            match next {
                Some(link) => request = outbound::follow_link(&link, self.graph.base())?,
                None => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Reads the user's chats (with their viewpoints) into the cache.
    pub async fn read_chats(&self) -> Result<(), SyncError> {
        let request = ChatsRequest::user(self.user_id.clone())
            .top(50)
            .expand_members()
            .build()?;
        let listed: std::collections::HashSet<String> = self
            .read_pages("GET chats", request, MAX_PAGES, |store, chat| {
                let kept = store.apply_chat(chat.get());
                if let Err(e) = &kept {
                    tracing::warn!(error = %e, "a chat Graph listed was not kept");
                }
                serde_json::from_str::<Listed>(chat.get())
                    .ok()
                    .and_then(|c| c.id)
            })
            .await?
            .into_iter()
            .flatten()
            .collect();
        // A chat the cache knows and the list left out: read it; a 404 forgets it.
        for id in self.store.call(|store| store.chat_ids()).await? {
            if !listed.contains(&id) {
                if let Err(e) = self.read_chat(&id).await {
                    tracing::warn!(chat = %id, error = %e, "cannot read a chat the list left out");
                }
            }
        }
        Ok(())
    }

    /// Reads one chat for the user (its viewpoint included) into the cache.
    pub async fn read_chat(&self, chat_id: &str) -> Result<(), SyncError> {
        let answer = self
            .read(&user_chat_with_members(&self.user_id, chat_id)?)
            .await?;
        let chat_id = chat_id.to_owned();
        self.store
            .call(move |store| apply_read_chat(store, &chat_id, &answer))
            .await
    }

    /// The same, blocking, for the workers.
    pub fn read_chat_blocking(&self, chat_id: &str) -> Result<(), SyncError> {
        let answer = call(
            &self.graph,
            &user_chat_with_members(&self.user_id, chat_id)?,
        )?;
        apply_read_chat(&self.store, chat_id, &answer)
    }

    /// Reads one message (blocking, for the workers) into the cache; one Graph no longer has is
    /// left as it is.
    pub fn read_message_blocking(&self, chat_id: &str, message_id: &str) -> Result<(), SyncError> {
        let answer = call(&self.graph, &outbound::get_message(chat_id, message_id)?)?;
        if answer.status == 404 {
            return Ok(());
        }
        expect_success("GET message", &answer)?;
        let message: ChatMessage<'_> =
            serde_json::from_slice(&answer.body).map_err(|_| SyncError::Answer {
                what: "GET message".into(),
                reason: "not a chatMessage".into(),
            })?;
        self.store.apply(chat_id, &message, Origin::Read)?;
        Ok(())
    }

    /// Reads a chat's messages changed since its watermark, every page, then moves the
    /// watermark to the newest change read (less an overlap). Without a watermark (the chat's
    /// first read) only its newest [`FIRST_READ_PAGES`]: whatever changes later is newer than
    /// them, and what is older is history, read when a person pages back.
    pub async fn read_messages(&self, chat_id: &str) -> Result<(), SyncError> {
        let chat = chat_id.to_owned();
        let watermark = self.store.call(move |store| store.watermark(&chat)).await?;
        // The first read (no watermark): the newest pages only, newest change first.
        let pages = if watermark.is_some() {
            MAX_PAGES
        } else {
            FIRST_READ_PAGES
        };
        let since = watermark.map_or(SystemTime::UNIX_EPOCH, to_system_time);
        let request = MessagesRequest::user_chat(self.user_id.clone(), chat_id.to_owned())
            .changed_since(since)
            .build()?;
        let chat = chat_id.to_owned();
        let modified = self
            .read_pages("GET messages", request, pages, move |store, json| {
                let message = match serde_json::from_str::<ChatMessage<'_>>(json.get()) {
                    Ok(m) => m,
                    Err(_) => {
                        tracing::warn!(chat = %chat, "a message Graph listed is not a chatMessage");
                        return None;
                    }
                };
                if let Err(e) = store.apply(&chat, &message, Origin::Read) {
                    tracing::warn!(chat = %chat, error = %e, "a message Graph listed was not kept");
                }
                message.last_modified_date_time.get().map(|t| t.at())
            })
            .await?;
        if let Some(newest) = modified.into_iter().flatten().max() {
            let chat = chat_id.to_owned();
            self.store
                .call(move |store| store.advance_watermark(&chat, newest - WATERMARK_OVERLAP))
                .await?;
        }
        Ok(())
    }
}

/// How long to wait before trying a throttled call again: its `Retry-After` (seconds) when
/// Graph gave one, else an exponential back-off from 1 s; jittered (up to a quarter more) so
/// that calls throttled together do not come back together; at most [`MAX_THROTTLE_WAIT`].
fn throttle_wait(retry_after: Option<&str>, round: u32) -> Duration {
    let base = retry_after
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_else(|| Duration::from_secs(1u64 << round.min(6).saturating_sub(1)));
    let base = base.min(MAX_THROTTLE_WAIT);
    let mut byte = [0u8; 1];
    // Jitter needs no secrecy; a generator that fails only loses the spread.
    let _ = rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut byte);
    let jitter = base / 4 * u32::from(byte[0]) / 255;
    (base + jitter).min(MAX_THROTTLE_WAIT)
}

#[cfg(test)]
mod tests {
    use super::{path_of, throttle_wait, Write};
    use std::time::Duration;

    #[test]
    fn a_writes_debug_leaves_its_content_out() {
        let write = Write::Send {
            chat_id: "19:a@thread.v2".into(),
            content: "the figures are 31337".into(),
            body: br#"{"body":{"content":"the figures are 31337"}}"#.to_vec(),
        };
        let shown = format!("{write:?}");
        assert!(shown.contains("19:a@thread.v2"));
        assert!(!shown.contains("31337"));
    }

    #[test]
    fn a_call_names_the_chat_it_is_about() {
        use super::chat_of;
        assert_eq!(
            chat_of("http://h/v1.0/users/u/chats/19:a@thread.v2/messages?$top=50"),
            Some("19:a@thread.v2")
        );
        assert_eq!(
            chat_of("http://h/v1.0/chats/c1/messages/2/setReaction"),
            Some("c1")
        );
        assert_eq!(chat_of("http://h/v1.0/users/u/chats?$top=50"), None);
        assert_eq!(chat_of("http://h/v1.0/users/u/chats/getAllMessages"), None);
        assert_eq!(chat_of("http://h/v1.0/subscriptions/1"), None);
    }

    #[test]
    fn a_throttled_call_waits_its_retry_after_with_some_jitter_and_at_most_a_minute() {
        for _ in 0..20 {
            let wait = throttle_wait(Some("2"), 1);
            assert!(wait >= Duration::from_secs(2) && wait <= Duration::from_millis(2500));
            let wait = throttle_wait(None, 3);
            assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(5));
            assert!(throttle_wait(Some("3600"), 1) <= Duration::from_secs(60));
            assert!(throttle_wait(None, 30) <= Duration::from_secs(60));
        }
    }

    #[test]
    fn a_call_is_named_by_its_path_without_host_query_or_fragment() {
        assert_eq!(
            path_of(
                "https://graph.microsoft.com/v1.0/chats/19:a@thread.v2/messages?$skiptoken=s3cr3t"
            ),
            "/v1.0/chats/19:a@thread.v2/messages"
        );
        assert_eq!(
            path_of("http://127.0.0.1:8081/beta/subscriptions/1#x"),
            "/beta/subscriptions/1"
        );
        assert_eq!(path_of("http://127.0.0.1:8081?a=b"), "/");
        assert_eq!(path_of("/v1.0/me?x=1"), "/v1.0/me");
    }
}
