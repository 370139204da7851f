//! When a [`GraphClient`](crate::GraphClient) sends a call again: Graph's throttling answers
//! (429, 503) after their `Retry-After`, else after an exponential back-off with full jitter;
//! connections that failed, within a bounded number of attempts and a budget of waiting.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

/// How often, and how long, a call is tried again.
///
/// ```
/// use std::time::Duration;
/// use graph_chat_webhook::RetryPolicy;
/// let default = RetryPolicy::default();
/// assert_eq!(default.max_attempts, 4);
/// // A caller that queues its own retries (a person's sends, say) asks for none.
/// assert_eq!(RetryPolicy::none().max_attempts, 1);
/// let mut patient = RetryPolicy::default();
/// patient.max_attempts = 8;
/// patient.budget = Duration::from_secs(300);
/// # let _ = patient;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Sends of one call in all, the first included (1: never again).
    pub max_attempts: u32,
    /// The longest single wait. A `Retry-After` longer than this is not waited for: the
    /// throttled answer goes back to the caller, who can schedule the call for then.
    pub max_wait: Duration,
    /// The most time spent waiting over all of one call's attempts; past it the last answer
    /// (or error) goes back to the caller.
    pub budget: Duration,
    /// The first back-off's ceiling, when Graph gave no `Retry-After` (doubled at each
    /// attempt, up to `max_wait`; the wait is drawn uniformly below it: full jitter).
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts, waits of at most 60 s, 120 s of waiting in all, back-off from 1 s.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            max_wait: Duration::from_secs(60),
            budget: Duration::from_secs(120),
            base_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// One attempt, never repeated: for callers that queue their own retries. (A 401 still
    /// gets its one retry with a new token: that is not a repetition of the same call.)
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// How long to wait before attempt `attempt + 1`, after `attempt` attempts and `waited`
    /// time spent waiting; `None` when the call should not be tried again.
    pub(crate) fn wait(
        &self,
        attempt: u32,
        waited: Duration,
        retry_after: Option<&str>,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let wait = match retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())) {
            Some(asked) if asked > self.max_wait => return None,
            Some(asked) => asked,
            None => full_jitter(self.backoff_ceiling(attempt)),
        };
        (waited + wait <= self.budget).then_some(wait)
    }

    /// The back-off's ceiling after `attempt` attempts: `base_delay * 2^(attempt - 1)`, at
    /// most `max_wait`.
    fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_wait)
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (RFC 9110), as a wait from `now`
/// (zero for a date in the past). `None` for anything else.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or_default())
}

/// A wait drawn uniformly from zero to `ceiling` (not a secret: std's per-process random keys
/// are enough to keep clients from retrying in step).
fn full_jitter(ceiling: Duration) -> Duration {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(hasher.finish() % nanos.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for junk in ["", "-1", "1.5", "soon", "99999999999999999999999x"] {
            assert_eq!(parse_retry_after(junk, now), None, "{junk}");
        }
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn waits_are_bounded_by_attempts_cap_and_budget() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.wait(1, Duration::ZERO, Some("3")),
            Some(Duration::from_secs(3))
        );
        // Longer than the cap: not waited for.
        assert_eq!(policy.wait(1, Duration::ZERO, Some("61")), None);
        // Past the budget.
        assert_eq!(policy.wait(2, Duration::from_secs(100), Some("30")), None);
        // Out of attempts.
        assert_eq!(policy.wait(4, Duration::ZERO, Some("1")), None);
        assert_eq!(RetryPolicy::none().wait(1, Duration::ZERO, Some("1")), None);
        // Back-off: below a ceiling that doubles, up to the cap.
        for attempt in 1..4 {
            let ceiling = Duration::from_secs(1 << (attempt - 1));
            for _ in 0..50 {
                let wait = policy.wait(attempt, Duration::ZERO, None).unwrap();
                assert!(wait <= ceiling, "{wait:?} > {ceiling:?}");
            }
        }
        assert_eq!(policy.backoff_ceiling(30), policy.max_wait);
    }
}
