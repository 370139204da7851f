//! The keeper's loop, while this copy holds the person's job ([`crate::jobs`]): renewals,
//! reauthorizations and recreations as the keeper schedules them, each logged; and the
//! subscription calls a copy makes when it takes a job (Graph's list of the app's
//! subscriptions, a renewal at once).

use super::*;

/// What the keeper's task was, for its log line.
fn task_name(kind: &TaskKind) -> &'static str {
    match kind {
        TaskKind::Renew => "renewal",
        TaskKind::Reauthorize => "reauthorization",
        TaskKind::Recreate => "recreation",
        TaskKind::Delete => "deletion",
        TaskKind::Resync { .. } => "resync",
        _ => "subscription task",
    }
}

/// How the keeper's task went, for its log line.
fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Done(_) => "done",
        Outcome::NotFound => "gone",
        Outcome::Forbidden => "forbidden",
        Outcome::Throttled { .. } => "throttled",
        Outcome::Failed => "failed",
        _ => "other",
    }
}

/// The log line of one of the keeper's tasks: info when done, a warning otherwise (a
/// subscription found gone is recreated by the keeper).
fn log_task(subscription: &str, kind: &TaskKind, outcome: &Outcome) {
    if matches!(kind, TaskKind::Resync { .. }) {
        return; // The resync logs itself, with its reason.
    }
    let task = task_name(kind);
    let result = outcome_name(outcome);
    match outcome {
        Outcome::Done(Some(new)) if matches!(kind, TaskKind::Recreate) => tracing::info!(
            subscription = %subscription,
            new_subscription = %new.id,
            expires = new.expiration_date_time.as_deref(),
            "subscription recreated"
        ),
        Outcome::Done(Some(new)) => tracing::info!(
            subscription = %subscription,
            task,
            expires = new.expiration_date_time.as_deref(),
            "subscription {task} done"
        ),
        Outcome::Done(None) => {
            tracing::info!(subscription = %subscription, task, "subscription {task} done")
        }
        Outcome::NotFound => {
            tracing::warn!(subscription = %subscription, task, "subscription found gone; the keeper creates it again")
        }
        Outcome::Throttled { retry_after } => tracing::warn!(
            subscription = %subscription,
            task,
            outcome = result,
            retry_after_secs = retry_after.as_secs(),
            "subscription {task} throttled"
        ),
        _ => {
            tracing::warn!(subscription = %subscription, task, outcome = result, "subscription {task} failed")
        }
    }
}

impl GraphSync {
    /// With `--renew-every`, a subscription found alive (at start, on a takeover) renewed to a
    /// whole lifetime at once: the keeper then renews it every `--renew-every` from now. A
    /// renewal Graph refuses leaves it as it was, for the keeper. Without it, as it was.
    pub(super) async fn renew_now(
        &self,
        subscription: Subscription,
    ) -> Result<Subscription, SyncError> {
        if self.renew_every.is_none() {
            return Ok(subscription);
        }
        let request = outbound::renew(&subscription.id, now(), SUBSCRIPTION_LIFETIME)?;
        let answer = self.read(&request).await?;
        if !answer.is_success() {
            return Ok(subscription);
        }
        match Subscription::from_json(&answer.body) {
            Ok(renewed) => {
                tracing::info!(subscription = %renewed.id, expires = renewed.expiration_date_time.as_deref(), "subscription renewal done");
                Ok(renewed)
            }
            Err(_) => Ok(subscription),
        }
    }

    /// The app's subscriptions Graph lists (the first page: the app holds two per person).
    pub(super) async fn list_subscriptions(&self) -> Result<Vec<Subscription>, SyncError> {
        let answer = self.read(&outbound::list_subscriptions()).await?;
        expect_success("GET subscriptions", &answer)?;
        let page: Page<'_> =
            serde_json::from_slice(&answer.body).map_err(|_| SyncError::Answer {
                what: "GET subscriptions".into(),
                reason: "not a page of subscriptions".into(),
            })?;
        Ok(page
            .value
            .iter()
            .filter_map(|item| Subscription::from_json(item.get().as_bytes()).ok())
            .collect())
    }

    /// Runs the keeper's tasks until the process ends, while this copy holds the person's job
    /// ([`crate::jobs`]). A job lost is let go at once (the keeper forgets what it kept: the
    /// copy that takes the job keeps it); a job taken checks the subscriptions and reads.
    pub async fn keep(self: Arc<Self>) {
        let mut held = self.job.watch();
        loop {
            if !*held.borrow_and_update() {
                *self.keeper() = Keeper::new(self.keeper_config);
                tracing::info!(user = %self.user_id, "another copy does this person's subscriptions and reconciles");
                if held.wait_for(|h| *h).await.is_err() {
                    return; // The jobs stopped: so does the app.
                }
                tracing::info!(user = %self.user_id, "this copy took this person's subscriptions and reconciles");
                // Logged by the resync.
                let _ = self.resync_all(ResyncReason::JobTaken).await;
                continue;
            }
            let tasks = self.keeper().poll(now());
            for task in tasks {
                if !self.job.is_held() {
                    // Lost mid-round: what is left is the new holder's.
                    break;
                }
                let outcome = match &task.kind {
                    TaskKind::Resync { .. } => {
                        // Its failure is logged by the resync; the next one reads it all.
                        let _ = self.resync_all(ResyncReason::Lifecycle).await;
                        Outcome::Done(None)
                    }
                    _ => match &task.request {
                        Some(request) => match self.send(request.clone()).await {
                            Ok(answer) => answer.outcome(),
                            // Logged by `call`.
                            Err(_) => Outcome::Failed,
                        },
                        None => Outcome::Failed,
                    },
                };
                let recreated = matches!(task.kind, TaskKind::Recreate)
                    && matches!(outcome, Outcome::Done(Some(_)));
                log_task(&task.subscription_id, &task.kind, &outcome);
                if let Outcome::Done(Some(subscription)) = &outcome {
                    if let Some(kind) = subscription
                        .resource
                        .as_deref()
                        .and_then(|r| self.kind_of(r))
                    {
                        let (id, json) = (subscription.id.clone(), summary(subscription));
                        let recorded = self
                            .store
                            .call(move |store| {
                                store.set_subscription(kind.name(), &id, &json.to_string())
                            })
                            .await;
                        if let Err(e) = recorded {
                            tracing::warn!(error = %e, "cannot record the subscription");
                        }
                    }
                }
                self.keeper().complete(task.id, outcome, now());
                if recreated {
                    // What was sent while it was gone is only found by reading. A failure is
                    // logged by the resync.
                    let _ = self.resync_all(ResyncReason::Recreated).await;
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
                _ = held.changed() => {}
                (subscription, event) = self.job.forwarded() => {
                    self.on_lifecycle(&subscription, &event);
                }
            }
        }
    }
}

/// The person's subscriptions: checked, created, tracked, and their lifecycle events.
impl GraphSync {
    /// Makes sure both subscriptions exist: each one known is checked with a `GET` (a 404 means
    /// Graph dropped it, silently: it is created again); a missing one is created. Returns
    /// whether any was (re)created, which means notifications may have been lost.
    ///
    /// Only by the copy that holds the person's job ([`crate::jobs`]); on another, nothing.
    pub async fn ensure_subscriptions(&self) -> Result<bool, SyncError> {
        if !self.job.is_held() {
            return Ok(false);
        }
        let mut recreated = false;
        let mut listed: Option<Vec<Subscription>> = None;
        for kind in Kind::ALL {
            let mut known = self
                .store
                .call(move |store| store.subscription_id(kind.name()))
                .await?
                .filter(|id| !id.is_empty());
            if known.is_none() && self.job.is_shared() {
                // Another copy may have made it (and died before this one knew): Graph's list
                // says, so that this copy keeps or replaces it rather than making a second.
                if listed.is_none() {
                    listed = Some(self.list_subscriptions().await?);
                }
                known = listed.iter().flatten().find_map(|s| {
                    let mine = s.resource.as_deref().and_then(|r| self.kind_of(r)) == Some(kind);
                    mine.then(|| s.id.clone())
                });
            }
            if let Some(id) = known.filter(|id| !id.is_empty()) {
                let answer = self.read(&outbound::get_subscription(&id)?).await?;
                if answer.status == 404 {
                    tracing::warn!(subscription = %id, kind = kind.name(), "subscription found gone; creating it again");
                    self.keeper().untrack(&id);
                } else {
                    expect_success("GET subscription", &answer)?;
                    let subscription =
                        Subscription::from_json(&answer.body).map_err(|e| SyncError::Answer {
                            what: "GET subscription".into(),
                            reason: e.to_string(),
                        })?;
                    if self.delivers_here(&subscription) {
                        let subscription = self.renew_now(subscription).await?;
                        self.track(kind, subscription).await?;
                        continue;
                    }
                    // It delivers to where the app was (another port, another public URL):
                    // replaced, or every notification would go to a dead address.
                    tracing::info!(subscription = %id, kind = kind.name(), "subscription delivers elsewhere; replacing it");
                    self.keeper().untrack(&id);
                    let gone = self.read(&outbound::delete(&id)?).await?;
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
        let answer = self.read(&request).await?;
        expect_success("POST subscription", &answer)?;
        let subscription =
            Subscription::from_json(&answer.body).map_err(|e| SyncError::Answer {
                what: "POST subscription".into(),
                reason: e.to_string(),
            })?;
        tracing::info!(subscription = %subscription.id, kind = kind.name(), "subscribed");
        self.track(kind, subscription).await
    }

    /// Records a subscription Graph returned (its id, resource and expiry) and hands it to the
    /// keeper.
    async fn track(&self, kind: Kind, subscription: Subscription) -> Result<(), SyncError> {
        // What the cache needs of it, never Graph's JSON whole: that echoes the clientState.
        let json = summary(&subscription).to_string();
        let id = subscription.id.clone();
        self.store
            .call(move |store| store.set_subscription(kind.name(), &id, &json))
            .await?;
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
    ///
    /// On a copy that does not hold the person's job, the event is handed to the copy that does
    /// ([`Job::forward`]).
    pub fn on_lifecycle(&self, subscription_id: &str, event: &str) {
        if !self.job.is_held() {
            tracing::info!(subscription = %subscription_id, event, "lifecycle event, handed to the copy that holds the job");
            self.job.forward(subscription_id, event);
            return;
        }
        tracing::info!(subscription = %subscription_id, event, "lifecycle event");
        let event: EnumValue<'_, LifecycleEvent> = EnumValue::new(event);
        self.keeper().on_lifecycle(subscription_id, &event, now());
        self.wake.notify_one();
    }
}
