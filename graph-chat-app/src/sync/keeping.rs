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
