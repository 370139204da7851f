//! The server component's Graph side: the subscriptions (created, checked, renewed through the
//! [`Keeper`], recreated when Graph lost them), and the reads that make the cache complete
//! whatever the notifications did (every chat from its watermark).
//!
//! Graph says nothing when a Teams notification is lost or a subscription expires (no `missed`
//! event for chat messages), so only reads find a gap: a per-chat watermark, moved only by a read
//! that reached its last page, and a `GET` of each subscription.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use graph_chat_webhook::notifications::keeper::{Keeper, KeeperConfig, Outcome, TaskKind};
use graph_chat_webhook::notifications::model::{parse_time, ChangeType, EnumValue, LifecycleEvent};
use graph_chat_webhook::notifications::outbound::{
    self, ChatsRequest, HttpRequest, MessagesRequest, Resource, Subscription, SubscriptionRequest,
};
use graph_chat_webhook::{ClientError, GraphClient, GraphResponse};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::store::{Store, StoreError};

/// How long each subscription lives: the guide's hour, renewed half-way by the keeper.
pub const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(3600);

/// A read that found messages moves the watermark to the newest change it saw, less this much:
/// a change Graph committed a little late is read again rather than missed.
const WATERMARK_OVERLAP: Duration = Duration::from_secs(60);

/// The most pages one read follows (50 messages each): a runaway `nextLink` stops here.
const MAX_PAGES: usize = 10_000;

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
    Request(#[from] outbound::SubscriptionError),
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
pub struct Sync {
    graph: GraphClient,
    store: Store,
    user_id: String,
    tenant_id: String,
    subscriber: Subscriber,
    keeper: Mutex<Keeper>,
    wake: Notify,
    resync: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Sync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sync")
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

impl Sync {
    /// The Graph side for `user_id` of `tenant_id`.
    pub fn new(
        graph: GraphClient,
        store: Store,
        user_id: String,
        tenant_id: String,
        subscriber: Subscriber,
    ) -> Self {
        Self {
            graph,
            store,
            user_id,
            tenant_id,
            subscriber,
            keeper: Mutex::new(Keeper::new(KeeperConfig::default())),
            wake: Notify::new(),
            resync: tokio::sync::Mutex::new(()),
        }
    }

    /// The cache.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The client (blocking; call it from a worker thread or `spawn_blocking`).
    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }

    /// The signed-in user.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The user's tenant.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// Sends a request off the async threads.
    pub async fn send(&self, request: HttpRequest) -> Result<GraphResponse, SyncError> {
        let graph = self.graph.clone();
        tokio::task::spawn_blocking(move || graph.send(&request))
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

    /// Makes sure both subscriptions exist: each one known is checked with a `GET` (a 404 means
    /// Graph dropped it, silently: it is created again); a missing one is created. Returns
    /// whether any was (re)created, which means notifications may have been lost.
    pub async fn ensure_subscriptions(&self) -> Result<bool, SyncError> {
        let mut recreated = false;
        for kind in Kind::ALL {
            let known = self.store.subscription(kind.name())?;
            let id = known
                .as_ref()
                .and_then(|s| s.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(id) = id {
                let answer = self.send(outbound::get_subscription(&id)?).await?;
                if answer.status == 404 {
                    tracing::info!(subscription = %id, "subscription gone; creating it again");
                    self.keeper().untrack(&id);
                } else {
                    expect_success("GET subscription", &answer)?;
                    let subscription =
                        Subscription::from_json(&answer.body).map_err(|e| SyncError::Answer {
                            what: "GET subscription".into(),
                            reason: e.to_string(),
                        })?;
                    if self.delivers_here(&subscription) {
                        self.track(kind, subscription, &answer.body)?;
                        continue;
                    }
                    // It delivers to where the app was (another port, another public URL):
                    // replaced, or every notification would go to a dead address.
                    tracing::info!(subscription = %id, "subscription delivers elsewhere; replacing it");
                    self.keeper().untrack(&id);
                    let gone = self.send(outbound::delete(&id)?).await?;
                    if !gone.is_success() && gone.status != 404 {
                        tracing::warn!(subscription = %id, status = gone.status, "cannot delete the old subscription");
                    }
                }
            }
            self.create(kind).await?;
            recreated = true;
        }
        Ok(recreated)
    }

    /// Whether a subscription Graph holds sends to this app's URLs now.
    fn delivers_here(&self, subscription: &Subscription) -> bool {
        subscription.notification_url.as_deref() == Some(self.subscriber.notification_url.as_str())
            && subscription.lifecycle_notification_url.as_deref()
                == Some(self.subscriber.lifecycle_url.as_str())
    }

    async fn create(&self, kind: Kind) -> Result<(), SyncError> {
        let request = self
            .template(kind)
            .expires_in(now(), SUBSCRIPTION_LIFETIME)
            .build()?;
        let answer = self.send(request).await?;
        expect_success("POST subscription", &answer)?;
        let subscription =
            Subscription::from_json(&answer.body).map_err(|e| SyncError::Answer {
                what: "POST subscription".into(),
                reason: e.to_string(),
            })?;
        tracing::info!(subscription = %subscription.id, kind = kind.name(), "subscribed");
        self.track(kind, subscription, &answer.body)
    }

    fn track(&self, kind: Kind, subscription: Subscription, raw: &[u8]) -> Result<(), SyncError> {
        let json: Value = serde_json::from_slice(raw).unwrap_or_else(|_| summary(&subscription));
        self.store.set_subscription(kind.name(), &json)?;
        let mut keeper = self.keeper();
        let tracked = keeper.subscriptions().any(|s| s.id == subscription.id);
        if !tracked {
            keeper.track(subscription, self.template(kind), now())?;
        }
        drop(keeper);
        self.wake.notify_one();
        Ok(())
    }

    /// A lifecycle event for one of the app's subscriptions: the keeper decides (reauthorize,
    /// recreate, resync).
    pub fn on_lifecycle(&self, subscription_id: &str, event: &str) {
        let event: EnumValue<'_, LifecycleEvent> = EnumValue::new(event);
        self.keeper().on_lifecycle(subscription_id, &event, now());
        self.wake.notify_one();
    }

    /// Runs the keeper's tasks until the process ends.
    pub async fn keep(self: Arc<Self>) {
        loop {
            let tasks = self.keeper().poll(now());
            for task in tasks {
                let outcome = match &task.kind {
                    TaskKind::Resync { .. } => {
                        if let Err(e) = self.resync_all().await {
                            tracing::warn!(error = %e, "resync after a lifecycle event failed");
                        }
                        Outcome::Done(None)
                    }
                    _ => match &task.request {
                        Some(request) => match self.send(request.clone()).await {
                            Ok(answer) => answer.outcome(),
                            Err(e) => {
                                tracing::warn!(error = %e, "subscription write failed");
                                Outcome::Failed
                            }
                        },
                        None => Outcome::Failed,
                    },
                };
                let recreated = matches!(task.kind, TaskKind::Recreate)
                    && matches!(outcome, Outcome::Done(Some(_)));
                if let Outcome::Done(Some(subscription)) = &outcome {
                    if let Some(kind) = subscription
                        .resource
                        .as_deref()
                        .and_then(|r| self.kind_of(r))
                    {
                        if let Err(e) = self
                            .store
                            .set_subscription(kind.name(), &summary(subscription))
                        {
                            tracing::warn!(error = %e, "cannot record the subscription");
                        }
                    }
                }
                self.keeper().complete(task.id, outcome, now());
                if recreated {
                    // What was sent while it was gone is only found by reading.
                    if let Err(e) = self.resync_all().await {
                        tracing::warn!(error = %e, "resync after a recreation failed");
                    }
                }
            }
            let wait = self
                .keeper()
                .next_wake()
                .and_then(|at| at.duration_since(now()).ok())
                .unwrap_or(Duration::from_secs(30))
                .min(Duration::from_secs(30));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Reconciles the subscriptions, then reads every chat and every chat's messages changed
    /// since its watermark, to the last page. One at a time.
    pub async fn resync_all(&self) -> Result<(), SyncError> {
        let _one = self.resync.lock().await;
        self.ensure_subscriptions().await?;
        self.read_chats().await?;
        let mut first_error = None;
        for chat_id in self.store.chat_ids()? {
            if let Err(e) = self.read_messages(&chat_id).await {
                tracing::warn!(chat = %chat_id, error = %e, "reading a chat's messages failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Sends `request` and every next page after it (to the last one, or [`MAX_PAGES`]),
    /// handing each item of `value` to `each`.
    async fn read_pages(
        &self,
        what: &str,
        mut request: HttpRequest,
        mut each: impl FnMut(&Value),
    ) -> Result<(), SyncError> {
        for _ in 0..MAX_PAGES {
            let answer = self.send(request).await?;
            expect_success(what, &answer)?;
            let page: Value =
                serde_json::from_slice(&answer.body).map_err(|_| SyncError::Answer {
                    what: what.to_owned(),
                    reason: "not JSON".into(),
                })?;
            page.get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .for_each(&mut each);
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(link) => request = outbound::follow_link(link, self.graph.base())?,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    /// Reads the user's chats (with their viewpoints) into the cache.
    pub async fn read_chats(&self) -> Result<(), SyncError> {
        let request = ChatsRequest::user(self.user_id.clone()).top(50).build()?;
        let mut listed = std::collections::HashSet::new();
        self.read_pages("GET chats", request, |chat| {
            if let Some(id) = chat.get("id").and_then(Value::as_str) {
                listed.insert(id.to_owned());
            }
            if let Err(e) = self.store.apply_chat(chat) {
                tracing::warn!(error = %e, "a chat Graph listed was not kept");
            }
        })
        .await?;
        // A chat the cache knows and the list left out: read it; a 404 forgets it.
        for id in self.store.chat_ids()? {
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
            .send(outbound::get_user_chat(&self.user_id, chat_id)?)
            .await?;
        self.apply_read_chat(chat_id, &answer)
    }

    /// The same, blocking, for the workers.
    pub fn read_chat_blocking(&self, chat_id: &str) -> Result<(), SyncError> {
        let answer = self
            .graph
            .send(&outbound::get_user_chat(&self.user_id, chat_id)?)?;
        self.apply_read_chat(chat_id, &answer)
    }

    /// A chat read back: kept, or forgotten when Graph no longer has it for the user.
    fn apply_read_chat(&self, chat_id: &str, answer: &GraphResponse) -> Result<(), SyncError> {
        if answer.status == 404 {
            self.store.remove_chat(chat_id)?;
            return Ok(());
        }
        expect_success("GET chat", answer)?;
        let chat: Value = serde_json::from_slice(&answer.body).map_err(|_| SyncError::Answer {
            what: "GET chat".into(),
            reason: "not JSON".into(),
        })?;
        self.store.apply_chat(&chat)?;
        Ok(())
    }

    /// Reads one message (blocking, for the workers) into the cache; one Graph no longer has is
    /// left as it is.
    pub fn read_message_blocking(&self, chat_id: &str, message_id: &str) -> Result<(), SyncError> {
        let answer = self
            .graph
            .send(&outbound::get_message(chat_id, message_id)?)?;
        if answer.status == 404 {
            return Ok(());
        }
        expect_success("GET message", &answer)?;
        let text = String::from_utf8(answer.body).map_err(|_| SyncError::Answer {
            what: "GET message".into(),
            reason: "not UTF-8".into(),
        })?;
        self.store.apply_read(chat_id, &text)?;
        Ok(())
    }

    /// Reads a chat's messages changed since its watermark, every page, then moves the
    /// watermark to the newest change read (less an overlap).
    pub async fn read_messages(&self, chat_id: &str) -> Result<(), SyncError> {
        let since = self
            .store
            .watermark(chat_id)?
            .map_or(SystemTime::UNIX_EPOCH, to_system_time);
        let request = MessagesRequest::user_chat(self.user_id.clone(), chat_id.to_owned())
            .changed_since(since)
            .build()?;
        let mut newest: Option<OffsetDateTime> = None;
        self.read_pages("GET messages", request, |message| {
            let modified = message
                .get("lastModifiedDateTime")
                .and_then(Value::as_str)
                .and_then(parse_time);
            newest = newest.max(modified);
            if let Err(e) = self.store.apply_read(chat_id, &message.to_string()) {
                tracing::warn!(chat = %chat_id, error = %e, "a message Graph listed was not kept");
            }
        })
        .await?;
        if let Some(newest) = newest {
            self.store
                .advance_watermark(chat_id, newest - WATERMARK_OVERLAP)?;
        }
        Ok(())
    }
}
