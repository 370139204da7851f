//! [`JwksRefresh`]: when to fetch the identity platform's JWKS, decided without I/O.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::bounded::{evict_least, truncated};

/// When to fetch the identity platform's JWKS, decided without I/O: at most one fetch at a time,
/// at most once per interval (default 5 minutes) whatever the traffic, and a memory of the `kid`s
/// that a fetch has already failed to find.
///
/// Anyone can POST a token naming any `kid`, so an unknown `kid` is not by itself a reason to
/// fetch. Ask [`on_unknown_key`](Self::on_unknown_key) instead; it answers:
/// * [`JwksDecision::Fetch`]: fetch now, hand the bytes to
///   [`TokenValidator::update_jwks`](super::TokenValidator::update_jwks), and report with
///   [`JwksFetch::succeeded`] (dropping the ticket reports a failure). Keep the batch meanwhile
///   (a webhook answers 503, so Graph retries).
/// * [`JwksDecision::Wait`]: a fetch is under way, or the interval has not passed. Keep the batch
///   (503) and try again later; it is never a reason to drop it.
/// * [`JwksDecision::Unknown`]: a fetch that started after this `kid` was first seen did not list
///   it. The token is not the identity platform's: refuse the batch.
///
/// `Send + Sync`: share one between all threads, beside the [`TokenValidator`](super::TokenValidator).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use graph_chat_notifications::tokens::{JwksDecision, JwksRefresh};
/// let policy = JwksRefresh::new().min_interval(Duration::from_secs(300));
/// let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// // Start-up: fetch once.
/// let fetch = policy.start(t0).expect("nothing fetched yet");
/// // ... GET the JWKS, validator.update_jwks(&bytes, t0)? ...
/// fetch.succeeded();
/// // A storm of unknown kids one second later fetches nothing.
/// for i in 0..1000 {
///     let kid = format!("forged-{i}");
///     assert!(matches!(policy.on_unknown_key(&kid, t0 + Duration::from_secs(1)), JwksDecision::Wait { .. }));
/// }
/// // Once the interval has passed, the next unknown kid may fetch; the ones the fetch did not
/// // list are then known to be forged.
/// let later = t0 + Duration::from_secs(301);
/// let JwksDecision::Fetch(fetch) = policy.on_unknown_key("forged-1000", later) else { panic!() };
/// fetch.succeeded();
/// assert!(matches!(policy.on_unknown_key("forged-1000", later), JwksDecision::Unknown));
/// ```
pub struct JwksRefresh {
    min_interval: Duration,
    remember: usize,
    state: Mutex<RefreshState>,
}

#[derive(Default)]
struct RefreshState {
    /// When the last fetch started.
    last_started: Option<SystemTime>,
    in_flight: bool,
    /// `kid`s seen unknown: when first seen, and when a fetch that began after that listed
    /// nothing for them.
    unknown: HashMap<String, UnknownKid>,
}

struct UnknownKid {
    first_seen: SystemTime,
    absent_from_fetch_at: Option<SystemTime>,
}

impl fmt::Debug for JwksRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("JwksRefresh")
            .field("min_interval", &self.min_interval)
            .field("in_flight", &state.in_flight)
            .field("last_started", &state.last_started)
            .field("remembered_kids", &state.unknown.len())
            .finish()
    }
}

impl Default for JwksRefresh {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`JwksRefresh::on_unknown_key`] advises.
#[derive(Debug)]
#[must_use]
pub enum JwksDecision<'p> {
    /// Fetch the JWKS now; report the outcome on the ticket.
    Fetch(JwksFetch<'p>),
    /// Do not fetch now; keep the batch and try again after `retry_after`.
    Wait {
        /// How long until a fetch may be allowed (zero while one is under way).
        retry_after: Duration,
    },
    /// A fetch begun after this `kid` was first seen did not list it: the token is forged.
    Unknown,
}

/// Permission to fetch the JWKS once. Report success with [`succeeded`](Self::succeeded) after
/// [`TokenValidator::update_jwks`](super::TokenValidator::update_jwks) took the bytes; dropping it reports a failure (the next fetch
/// still waits for the interval, so a failing endpoint is not hammered).
#[derive(Debug)]
#[must_use = "a fetch ticket reports its outcome; dropping it reports a failure"]
pub struct JwksFetch<'p> {
    policy: &'p JwksRefresh,
    started: SystemTime,
}

impl JwksFetch<'_> {
    /// When the fetch was allowed to start.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// The fetched JWKS was applied: `kid`s first seen before this fetch started, and still
    /// asked about, are now known to be absent.
    pub fn succeeded(self) {
        let mut state = self.policy.lock();
        for kid in state.unknown.values_mut() {
            if kid.first_seen <= self.started && kid.absent_from_fetch_at.is_none() {
                kid.absent_from_fetch_at = Some(self.started);
            }
        }
        // `Drop` ends the fetch.
    }
}

impl Drop for JwksFetch<'_> {
    fn drop(&mut self) {
        self.policy.lock().in_flight = false;
    }
}

impl JwksRefresh {
    /// A policy with the defaults: at most one fetch per 5 minutes, 1,024 unknown `kid`s
    /// remembered.
    pub fn new() -> Self {
        Self {
            min_interval: Duration::from_secs(300),
            remember: 1024,
            state: Mutex::new(RefreshState::default()),
        }
    }

    /// The least time between the starts of two fetches (default 5 minutes).
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// How many unknown `kid`s are remembered (default 1,024); past it the oldest is forgotten,
    /// which costs at most one more fetch, within the interval.
    pub fn remember_unknown_kids(mut self, count: usize) -> Self {
        self.remember = count.max(1);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RefreshState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fetch, if one may start now (none under way, and the interval passed since the last
    /// one): at start-up, or on a timer.
    pub fn start(&self, now: SystemTime) -> Option<JwksFetch<'_>> {
        let mut state = self.lock();
        self.try_start(&mut state, now).ok()
    }

    fn try_start(
        &self,
        state: &mut RefreshState,
        now: SystemTime,
    ) -> Result<JwksFetch<'_>, Duration> {
        if state.in_flight {
            return Err(Duration::ZERO);
        }
        if let Some(last) = state.last_started {
            let next = last + self.min_interval;
            if let Ok(wait) = next.duration_since(now) {
                if !wait.is_zero() {
                    return Err(wait);
                }
            }
        }
        state.in_flight = true;
        state.last_started = Some(now);
        Ok(JwksFetch {
            policy: self,
            started: now,
        })
    }

    /// What to do about a token whose `kid` the validator does not hold (pass `""` when the
    /// validator holds no JWKS at all), at time `now`.
    pub fn on_unknown_key(&self, kid: &str, now: SystemTime) -> JwksDecision<'_> {
        let kid = truncated(kid);
        let mut state = self.lock();
        let remembered = state.unknown.get_mut(&kid);
        match remembered {
            Some(known) => {
                if let Some(absent_at) = known.absent_from_fetch_at {
                    // Forged, until a fetch may start again; then it is looked for once more.
                    if now < absent_at + self.min_interval {
                        return JwksDecision::Unknown;
                    }
                    known.first_seen = now;
                    known.absent_from_fetch_at = None;
                }
            }
            None => {
                evict_least(&mut state.unknown, self.remember - 1, |k| k.first_seen);
                state.unknown.insert(
                    kid,
                    UnknownKid {
                        first_seen: now,
                        absent_from_fetch_at: None,
                    },
                );
            }
        }
        match self.try_start(&mut state, now) {
            Ok(fetch) => JwksDecision::Fetch(fetch),
            Err(retry_after) => JwksDecision::Wait { retry_after },
        }
    }
}
