//! Keeping many subscriptions alive without I/O: what to renew, reauthorize, recreate or resync,
//! and when, spread under a write budget so that thousands of subscriptions stay clear of
//! Graph's throttling.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::model::{EnumValue, LifecycleEvent};
use crate::outbound::SubscriptionRequest;
use crate::outbound::{
    delete, reauthorize, renew, renew_at, HttpRequest, RequestError, Subscription,
};

/// How a [`Keeper`] paces its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeeperConfig {
    /// Subscription writes (renew, reauthorize, recreate) per second at most, with a burst of
    /// one second's worth (default 5). Graph throttles subscription writes per app and tenant;
    /// this is the keeper's own pace, kept well under it, and a 429 pauses all writes for its
    /// `Retry-After`.
    pub writes_per_second: u32,
    /// A renewal is due half-way through a subscription's life, and never later than this
    /// before it expires (default 10 minutes). A 60-minute subscription renews every 30
    /// minutes, as the Teams-embedding guide advises.
    pub renew_margin: Duration,
    /// The first wait after a failed write (5xx, no answer); it doubles each time, up to
    /// 10 minutes (default 30 s). A renewal's retry that would fall at or after the expiry
    /// comes half-way to it instead.
    pub retry_after_failure: Duration,
    /// The wait after Graph refused a recreation as over quota (403; default 1 hour).
    pub over_quota_wait: Duration,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        Self {
            writes_per_second: 5,
            renew_margin: Duration::from_secs(600),
            retry_after_failure: Duration::from_secs(30),
            over_quota_wait: Duration::from_secs(3600),
        }
    }
}

/// Names a task handed out by [`Keeper::poll`], to report its outcome with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

/// What a task asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskKind {
    /// `PATCH /subscriptions/{id}` with a new `expirationDateTime`.
    Renew,
    /// `POST /subscriptions/{id}/reauthorize`, after `reauthorizationRequired`.
    Reauthorize,
    /// `POST /subscriptions` again: the subscription was removed or expired, or what it must be
    /// changed in cannot be PATCHed (its `model`, or a lifecycle URL to add).
    Recreate,
    /// `DELETE /subscriptions/{id}`: the subscription a recreation replaced.
    Delete,
    /// Read what may have been missed on `resource` since `since`, then report
    /// [`Outcome::Done`]: for messages,
    /// [`MessagesRequest::changed_since`](crate::outbound::MessagesRequest::changed_since)
    /// (`lastModifiedDateTime` for both the filter and the order, which Graph honours; a
    /// `createdDateTime` order would make it ignore the filter), every page to the end; for a
    /// chat, a GET of it. Not a subscription write: it does not count against the budget.
    Resync {
        /// The subscription's resource, as sent.
        resource: String,
        /// From when: the last time the subscription was known to deliver.
        since: SystemTime,
    },
}

/// One thing to do now.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Task {
    /// Report the outcome under this id ([`Keeper::complete`]).
    pub id: TaskId,
    /// The subscription it is about (for a recreation, the old id).
    pub subscription_id: String,
    /// What to do.
    pub kind: TaskKind,
    /// The request to send (`None` for a resync, whose reads the caller chooses).
    pub request: Option<HttpRequest>,
}

/// How a task went.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
// One short-lived value per task: boxing the subscription would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// 200, 201 or 204: done. For a renewal or recreation, the subscription Graph returned.
    Done(Option<Subscription>),
    /// 404: the subscription is gone; it is recreated.
    NotFound,
    /// 403: over the subscription quota (or not allowed); tried again after
    /// [`KeeperConfig::over_quota_wait`].
    Forbidden,
    /// 429: throttled. No write goes out before `retry_after` (from `Retry-After`).
    Throttled {
        /// How long Graph asked to wait.
        retry_after: Duration,
    },
    /// Any other failure (5xx, no answer): tried again with a growing wait.
    Failed,
}

impl Outcome {
    /// The wait a 429 means when its `Retry-After` is missing or not a number of seconds.
    pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

    /// How a task went, from Graph's response: its status, its `Retry-After` header if any
    /// (seconds, as Graph sends it) and its body. A 2xx whose body is not a subscription is a
    /// failure (tried again), since the keeper would not learn the new expiry; a 2xx without a
    /// body (204) is done.
    ///
    /// ```
    /// use std::time::Duration;
    /// use graph_chat_notifications::keeper::Outcome;
    /// assert_eq!(Outcome::from_response(204, None, b""), Outcome::Done(None));
    /// assert_eq!(Outcome::from_response(404, None, b"{}"), Outcome::NotFound);
    /// assert_eq!(
    ///     Outcome::from_response(429, Some("7"), b""),
    ///     Outcome::Throttled { retry_after: Duration::from_secs(7) }
    /// );
    /// assert_eq!(Outcome::from_response(503, None, b""), Outcome::Failed);
    /// ```
    pub fn from_response(status: u16, retry_after: Option<&str>, body: &[u8]) -> Self {
        match status {
            200..=299 if body.iter().all(u8::is_ascii_whitespace) => Self::Done(None),
            200..=299 => match Subscription::from_json(body) {
                Ok(s) => Self::Done(Some(s)),
                Err(_) => Self::Failed,
            },
            404 => Self::NotFound,
            403 => Self::Forbidden,
            429 => Self::Throttled {
                retry_after: retry_after
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Self::DEFAULT_RETRY_AFTER, Duration::from_secs),
            },
            _ => Self::Failed,
        }
    }

    /// [`from_response`](Self::from_response) for an `http` crate response (feature `http`).
    #[cfg(feature = "http")]
    pub fn from_http_response<B: AsRef<[u8]>>(response: &http::Response<B>) -> Self {
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        Self::from_response(
            response.status().as_u16(),
            retry_after,
            response.body().as_ref(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Renew,
    Reauthorize,
    Recreate,
    Resync,
    Delete,
}

#[derive(Clone)]
struct Entry {
    subscription: Subscription,
    template: SubscriptionRequest,
    lifetime: Duration,
    expires_at: SystemTime,
    due: Due,
    at: SystemTime,
    /// The last time the subscription was known to deliver: where a resync starts.
    healthy_since: SystemTime,
    failures: u32,
    in_flight: Option<TaskId>,
    /// Recreated to change it (not because it was lost): delete this one once the new one
    /// exists.
    replace: bool,
}

/// Keeps the subscriptions an app holds alive, sans-IO: give it the subscriptions as Graph
/// returned them (with the request that made each, to recreate it), the lifecycle events
/// received and the time; it says what to send, and the caller reports how each went.
///
/// * Renewals come half-way through a subscription's life (every 30 minutes for 60-minute
///   subscriptions) and never later than a margin before expiry.
/// * `reauthorizationRequired` schedules a reauthorize; `subscriptionRemoved`, a 404 or an
///   expiry schedule a recreation and then a resync from the last time the subscription was
///   known to deliver; `missed` schedules a resync.
/// * A new template that changes what cannot be PATCHed (`model` and the other query options,
///   or a lifecycle URL to add) schedules a recreation, then the old subscription's deletion
///   ([`update_template`](Self::update_template)).
/// * Writes are spread under [`KeeperConfig::writes_per_second`]; a 429 pauses all writes for
///   its `Retry-After`; failures back off.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use graph_chat_notifications::keeper::{Keeper, Outcome, TaskKind};
/// use graph_chat_notifications::model::ChangeType;
/// use graph_chat_notifications::outbound::{Resource, Subscription, SubscriptionRequest};
/// let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// let request = SubscriptionRequest::builder(Resource::chat_messages("19:a@thread.v2"), "https://example.com/n")
///     .change_types([ChangeType::Created])
///     .client_state("secret")
///     .expires_in(t0, Duration::from_secs(3600));
/// // What Graph answered to the POST:
/// let created = Subscription::from_json(br#"{"id": "s1", "resource": "/chats/19:a@thread.v2/messages",
///     "expirationDateTime": "2027-01-15T09:00:00Z"}"#)?;
/// let mut keeper = Keeper::new(Default::default());
/// keeper.track(created, request, t0)?;
/// assert!(keeper.poll(t0).is_empty()); // nothing due yet
/// let renew_time = keeper.next_wake().unwrap();
/// let tasks = keeper.poll(renew_time);
/// assert!(matches!(tasks[0].kind, TaskKind::Renew));
/// // Send tasks[0].request, then report what Graph said:
/// keeper.complete(tasks[0].id, Outcome::Done(None), renew_time);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Keeper {
    config: KeeperConfig,
    entries: BTreeMap<String, Entry>,
    tasks: HashMap<TaskId, (String, Due)>,
    next_task: u64,
    tokens: f64,
    refilled_at: Option<SystemTime>,
    paused_until: Option<SystemTime>,
}

impl fmt::Debug for Keeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keeper")
            .field("config", &self.config)
            .field("subscriptions", &self.entries.len())
            .field("in_flight", &self.tasks.len())
            .field("paused_until", &self.paused_until)
            .finish()
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(600);

impl Keeper {
    /// A keeper with nothing to keep yet.
    pub fn new(config: KeeperConfig) -> Self {
        Self {
            config,
            entries: BTreeMap::new(),
            tasks: HashMap::new(),
            next_task: 0,
            tokens: f64::from(config.writes_per_second.max(1)),
            refilled_at: None,
            paused_until: None,
        }
    }

    /// Starts keeping `subscription` (as Graph returned it, at `now`), which `template` created:
    /// the keeper recreates it from `template` when needed, with the same lifetime. Fails if the
    /// template no longer builds.
    pub fn track(
        &mut self,
        subscription: Subscription,
        template: SubscriptionRequest,
        now: SystemTime,
    ) -> Result<(), RequestError> {
        let expires_at = subscription.expires_at().unwrap_or(now);
        let lifetime = expires_at
            .duration_since(now)
            .unwrap_or_default()
            .max(Duration::from_secs(60));
        template.clone().expires_in(now, lifetime).build()?;
        let at = renew_at(now, expires_at, self.config.renew_margin);
        self.entries.insert(
            subscription.id.clone(),
            Entry {
                subscription,
                template,
                lifetime,
                expires_at,
                due: Due::Renew,
                at,
                healthy_since: now,
                failures: 0,
                in_flight: None,
                replace: false,
            },
        );
        Ok(())
    }

    /// Gives a kept subscription a new template. When what changed cannot be PATCHed onto the
    /// live subscription (the resource with its query options, such as `model`, or a
    /// lifecycle URL to add), a recreation is scheduled, and the old subscription is deleted
    /// once the new one exists. Returns whether a recreation was scheduled.
    pub fn update_template(
        &mut self,
        subscription_id: &str,
        template: SubscriptionRequest,
        now: SystemTime,
    ) -> Result<bool, RequestError> {
        let Some(entry) = self.entries.get_mut(subscription_id) else {
            return Ok(false);
        };
        let built = template.clone().expires_in(now, entry.lifetime).build()?;
        let body: serde_json::Value =
            serde_json::from_slice(built.body.as_deref().unwrap_or(b"{}")).unwrap_or_default();
        let field = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let live = &entry.subscription;
        let must_recreate = field("resource") != live.resource
            || (field("lifecycleNotificationUrl").is_some()
                && field("lifecycleNotificationUrl") != live.lifecycle_notification_url);
        entry.template = template;
        if must_recreate {
            entry.due = Due::Recreate;
            entry.at = now;
            entry.replace = true;
        }
        Ok(must_recreate)
    }

    /// Stops keeping a subscription (after you deleted it, say).
    pub fn untrack(&mut self, subscription_id: &str) -> Option<Subscription> {
        self.entries.remove(subscription_id).map(|e| e.subscription)
    }

    /// The subscriptions kept, by id.
    pub fn subscriptions(&self) -> impl Iterator<Item = &Subscription> {
        self.entries.values().map(|e| &e.subscription)
    }

    /// A lifecycle notification for `subscription_id` arrived at `now`.
    pub fn on_lifecycle(
        &mut self,
        subscription_id: &str,
        event: &EnumValue<'_, LifecycleEvent>,
        now: SystemTime,
    ) {
        let Some(entry) = self.entries.get_mut(subscription_id) else {
            return;
        };
        let (due, at) = match event.known() {
            Some(LifecycleEvent::ReauthorizationRequired) => (Due::Reauthorize, now),
            Some(LifecycleEvent::SubscriptionRemoved) => (Due::Recreate, now),
            Some(LifecycleEvent::Missed) => (Due::Resync, now),
            // Unknown events are kept and ignored.
            _ => return,
        };
        // A recreation outranks anything else pending.
        if entry.due != Due::Recreate || due == Due::Recreate {
            entry.due = due;
            entry.at = at;
            entry.failures = 0;
        }
    }

    /// When [`poll`](Self::poll) next has something to hand out: the earliest due task, or
    /// for a write, no earlier than the budget has a write to spare and a 429's pause is over.
    pub fn next_wake(&self) -> Option<SystemTime> {
        let rate = f64::from(self.config.writes_per_second.max(1));
        let write_ready = match self.refilled_at {
            Some(at) if self.tokens < 1.0 => {
                at + Duration::from_secs_f64((1.0 - self.tokens) / rate)
            }
            _ => SystemTime::UNIX_EPOCH,
        };
        let write_ready = self
            .paused_until
            .map_or(write_ready, |p| p.max(write_ready));
        self.entries
            .values()
            .filter(|e| e.in_flight.is_none())
            .map(|e| {
                let at = e.at.min(e.expires_at);
                if e.due == Due::Resync {
                    at
                } else {
                    at.max(write_ready)
                }
            })
            .min()
    }

    fn refill(&mut self, now: SystemTime) {
        let rate = f64::from(self.config.writes_per_second.max(1));
        if let Some(then) = self.refilled_at {
            let elapsed = now.duration_since(then).unwrap_or_default().as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(rate);
        }
        self.refilled_at = Some(now);
    }

    /// The tasks due at `now`, oldest first: every resync, and as many writes as the budget
    /// allows. Each must be reported with [`complete`](Self::complete).
    pub fn poll(&mut self, now: SystemTime) -> Vec<Task> {
        self.refill(now);
        // An expired subscription is gone: recreate it (or, if it was being retired, forget it).
        self.entries
            .retain(|_, e| !(e.due == Due::Delete && e.in_flight.is_none() && now >= e.expires_at));
        for entry in self.entries.values_mut() {
            if entry.in_flight.is_none() && now >= entry.expires_at && entry.due != Due::Recreate {
                entry.due = Due::Recreate;
                entry.at = now;
            }
        }
        let mut due: Vec<(SystemTime, String)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.in_flight.is_none() && e.at <= now)
            .map(|(id, e)| (e.at, id.clone()))
            .collect();
        due.sort();
        let writes_paused = self.paused_until.is_some_and(|p| now < p);
        let mut tasks = Vec::new();
        for (_, id) in due {
            let entry = &self.entries[&id];
            let write = entry.due != Due::Resync;
            if write && (writes_paused || self.tokens < 1.0) {
                continue;
            }
            let (kind, request) = match entry.due {
                Due::Renew => (TaskKind::Renew, renew(&id, now, entry.lifetime).ok()),
                Due::Reauthorize => (TaskKind::Reauthorize, reauthorize(&id).ok()),
                Due::Recreate => (
                    TaskKind::Recreate,
                    entry
                        .template
                        .clone()
                        .expires_in(now, entry.lifetime)
                        .build()
                        .ok(),
                ),
                Due::Delete => (TaskKind::Delete, delete(&id).ok()),
                Due::Resync => (
                    TaskKind::Resync {
                        resource: entry.subscription.resource.clone().unwrap_or_default(),
                        since: entry.healthy_since,
                    },
                    None,
                ),
            };
            if write && request.is_none() {
                // The request cannot be built (an id Graph would refuse): nothing to send.
                continue;
            }
            if write {
                self.tokens -= 1.0;
            }
            let task_id = TaskId(self.next_task);
            self.next_task += 1;
            let due_kind = entry.due;
            self.tasks.insert(task_id, (id.clone(), due_kind));
            if let Some(e) = self.entries.get_mut(&id) {
                e.in_flight = Some(task_id);
            }
            tasks.push(Task {
                id: task_id,
                subscription_id: id,
                kind,
                request,
            });
        }
        tasks
    }

    /// Reports how a task went, at `now`.
    pub fn complete(&mut self, task: TaskId, outcome: Outcome, now: SystemTime) {
        let Some((id, due)) = self.tasks.remove(&task) else {
            return;
        };
        let Some(mut entry) = self.entries.remove(&id) else {
            return;
        };
        entry.in_flight = None;
        let config = self.config;
        let backoff = |failures: u32| {
            config
                .retry_after_failure
                .saturating_mul(1 << failures.min(16))
                .min(MAX_BACKOFF)
        };
        let mut key = id;
        match outcome {
            Outcome::Done(returned) => {
                entry.failures = 0;
                match due {
                    Due::Renew | Due::Reauthorize => {
                        if let Some(s) = returned {
                            entry.expires_at = s.expires_at().unwrap_or(entry.expires_at);
                            entry.subscription = s;
                        } else if due == Due::Renew {
                            entry.expires_at = now + entry.lifetime;
                        }
                        entry.healthy_since = now;
                        entry.due = Due::Renew;
                        entry.at = renew_at(now, entry.expires_at, config.renew_margin);
                    }
                    Due::Recreate => {
                        if entry.replace {
                            // The old subscription still delivers until it is deleted.
                            let mut old = entry.clone();
                            old.due = Due::Delete;
                            old.at = now;
                            old.replace = false;
                            if let Some(s) = &returned {
                                if s.id != key {
                                    self.entries.insert(key.clone(), old);
                                }
                            }
                            entry.replace = false;
                        }
                        if let Some(s) = returned {
                            entry.expires_at = s.expires_at().unwrap_or(now + entry.lifetime);
                            key = s.id.clone();
                            entry.subscription = s;
                        } else {
                            entry.expires_at = now + entry.lifetime;
                        }
                        // What was sent while it was gone: read it.
                        entry.due = Due::Resync;
                        entry.at = now;
                    }
                    Due::Delete => return,
                    Due::Resync => {
                        entry.healthy_since = now;
                        entry.due = Due::Renew;
                        entry.at = renew_at(now, entry.expires_at, config.renew_margin).max(now);
                    }
                }
            }
            // A deletion that finds nothing is done too.
            Outcome::NotFound if due == Due::Delete => return,
            Outcome::NotFound => {
                entry.due = Due::Recreate;
                entry.at = now;
            }
            Outcome::Forbidden => {
                entry.at = now + config.over_quota_wait;
            }
            Outcome::Throttled { retry_after } => {
                let until = now + retry_after;
                self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
                entry.at = until;
            }
            Outcome::Failed => {
                entry.at = now + backoff(entry.failures);
                entry.failures += 1;
                // A renewal must still land before expiry: when the backoff would carry the next
                // try to the expiry or past it, try half-way there instead (at the expiry itself
                // the subscription is gone, and only a recreation is left). Within the last two
                // seconds, give up.
                if due == Due::Renew && entry.at >= entry.expires_at {
                    let left = entry.expires_at.duration_since(now).unwrap_or_default();
                    entry.at = if left > Duration::from_secs(2) {
                        now + left / 2
                    } else {
                        entry.expires_at.max(now)
                    };
                }
            }
        }
        self.entries.insert(key, entry);
    }
}
