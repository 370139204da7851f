//! Outbound HTTP: validation handshakes, and change and lifecycle notifications delivered at
//! least once with retries, back-off and the seeded faults.
//!
//! A leaf below the simulated Graph: the Graph hands each [`Outgoing`] to its [`Courier`] and
//! answers, through [`Subscriptions`], whether a subscription is still live.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use crate::types::{Deliveries, Faults};
use crate::util::{guid, ApiError, ApiResult};

/// Graph waits this long for a notification's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// Graph retries a failing notification for this long, then drops it.
const RETRY_FOR: Duration = Duration::from_secs(4 * 60 * 60);
/// No single back-off wait is longer than this.
const LONGEST_WAIT: Duration = Duration::from_secs(30 * 60);
/// `reorder` holds a delivery back up to this much more.
const REORDER_MS: u64 = 500;
/// A held delivery looks again this often whether its subscription may deliver.
const HELD_POLL: Duration = Duration::from_millis(200);
/// How much of an answer is read (handshakes echo a short token).
const ANSWER_LIMIT: usize = 64 * 1024;
/// What Graph answers when a handshake fails.
const VALIDATION_FAILED: &str = "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.";

type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// What a delivery asks of the Graph it delivers for.
pub(crate) trait Subscriptions: Send + Sync + 'static {
    /// Whether the subscription is live: not expired, deleted or removed. A change notification
    /// for one that is not is never (re)tried.
    fn is_live(&self, id: &str) -> bool;
    /// Whether the subscription's deliveries are held (a delegated subscription past its
    /// creator's token expiry, not reauthorized): not sent, not lost, until it is.
    fn is_paused(&self, id: &str) -> bool;
}

/// The outbound side of the Graph: one HTTP client, the delivery counts, the `failFirst` budget,
/// the retry and handshake timings, and the stop signal every delivery watches.
pub(crate) struct Courier {
    client: Client,
    counters: Counters,
    fail_first: AtomicU64,
    retry_base: Duration,
    handshake_timeout: Duration,
    /// Deliveries are tasks on the runtime the simulator started on, whichever thread a change
    /// comes from.
    runtime: tokio::runtime::Handle,
    stop: watch::Receiver<bool>,
    /// Rung when a subscription is reauthorized or renewed: held deliveries look again.
    resume: tokio::sync::Notify,
}

#[derive(Default)]
struct Counters {
    attempted: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    retried: AtomicU64,
    rejected: AtomicU64,
    pending: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Deliveries {
        let get = |c: &AtomicU64| c.load(Ordering::SeqCst);
        Deliveries {
            attempted: get(&self.attempted),
            delivered: get(&self.delivered),
            dropped: get(&self.dropped),
            duplicated: get(&self.duplicated),
            retried: get(&self.retried),
            rejected: get(&self.rejected),
            pending: get(&self.pending),
        }
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::SeqCst);
}

fn dec(c: &AtomicU64) {
    let _ = c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1));
}

/// One notification POST to make.
pub(crate) struct Outgoing {
    /// The change notification's subscription (checked before each attempt: a subscription that
    /// is gone delivers nothing); `None` for lifecycle notifications.
    pub sub_id: Option<String>,
    pub url: String,
    pub body: Vec<u8>,
    /// The per-delivery sequence number its fault decisions derive from.
    pub seq: u64,
    pub seed: u64,
    pub faults: Faults,
}

/// What an attempt came to.
enum Answer {
    Ok,
    Final,
    Retry,
}

impl Courier {
    /// Delivers on the current tokio runtime until `stop` turns true.
    pub fn new(
        retry_base: Duration,
        handshake_timeout: Duration,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            client: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build_http(),
            counters: Counters::default(),
            fail_first: AtomicU64::new(0),
            retry_base,
            handshake_timeout,
            runtime: tokio::runtime::Handle::current(),
            stop,
            resume: tokio::sync::Notify::new(),
        }
    }

    /// Delivery counts since start.
    pub fn deliveries(&self) -> Deliveries {
        self.counters.snapshot()
    }

    /// The next `n` attempts fail as a network failure would (the `failFirst` fault).
    pub fn fail_next(&self, n: u64) {
        self.fail_first.store(n, Ordering::SeqCst);
    }

    /// Held deliveries look again whether their subscription may deliver.
    pub fn wake(&self) {
        self.resume.notify_waiters();
    }

    /// The stop signal, its current value seen (as a fresh subscription to it would be).
    fn stop_signal(&self) -> watch::Receiver<bool> {
        let mut stop = self.stop.clone();
        stop.borrow_and_update();
        stop
    }

    /// Sends `o` at once (or after its faults' delay), in a task of its own; `subs` says whether
    /// its subscription is still live before each attempt.
    pub fn dispatch(self: &Arc<Self>, subs: Arc<dyn Subscriptions>, o: Outgoing) {
        let courier = self.clone();
        inc(&courier.counters.pending);
        self.runtime.spawn(async move {
            // Every decision comes from one ChaCha stream per (seed, sequence number), drawn in a
            // fixed order, so the same writes under the same seed decide the same way.
            let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
            rng.set_stream(o.seq);
            let f = &o.faults;
            let drop = rng.gen::<f64>() < f.drop;
            let duplicate = rng.gen::<f64>() < f.duplicate;
            let mut delays = Vec::new();
            for _ in 0..2 {
                let base = match f.delay_ms {
                    Some([lo, hi]) => rng.gen_range(lo..=hi),
                    None => 0,
                };
                let reorder = rng.gen::<f64>() < f.reorder;
                let extra = rng.gen_range(0..=REORDER_MS);
                delays.push(base + if reorder { extra } else { 0 });
            }
            let jitter_seed: u64 = rng.gen();
            if drop {
                inc(&courier.counters.dropped);
                dec(&courier.counters.pending);
                return;
            }
            let o = Arc::new(o);
            if duplicate {
                inc(&courier.counters.duplicated);
                inc(&courier.counters.pending);
                let (c, s, o2) = (courier.clone(), subs.clone(), o.clone());
                let d = delays[1];
                tokio::spawn(async move { attempts(c, s, o2, d, jitter_seed ^ 1).await });
            }
            attempts(courier, subs, o, delays[0], jitter_seed).await;
        });
    }
}

async fn attempts(
    courier: Arc<Courier>,
    subs: Arc<dyn Subscriptions>,
    o: Arc<Outgoing>,
    delay_ms: u64,
    jitter_seed: u64,
) {
    let mut stop = courier.stop_signal();
    let counters = &courier.counters;
    let started = Instant::now();
    let mut jitter = ChaCha8Rng::seed_from_u64(jitter_seed);
    if delay_ms > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
            _ = stop.changed() => return,
        }
    }
    let mut retry: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        if let Some(id) = &o.sub_id {
            if !subs.is_live(id) {
                // Expired, deleted or removed: nothing more, silently.
                dec(&counters.pending);
                return;
            }
            if subs.is_paused(id) {
                // Held until reauthorized or renewed (or gone): looked at again when woken, and
                // every HELD_POLL in any case.
                tokio::select! {
                    _ = courier.resume.notified() => {}
                    _ = tokio::time::sleep(HELD_POLL) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
        }
        inc(&counters.attempted);
        if retry > 0 {
            inc(&counters.retried);
        }
        let failed_on_purpose = courier
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let answer = if failed_on_purpose {
            Answer::Retry
        } else {
            post(&courier, &o.url, &o.body).await
        };
        match answer {
            Answer::Ok => {
                inc(&counters.delivered);
                dec(&counters.pending);
                return;
            }
            Answer::Final => {
                inc(&counters.rejected);
                dec(&counters.pending);
                return;
            }
            Answer::Retry => {}
        }
        retry += 1;
        // The n-th retry waits base x 2^(n-1), plus up to 20 % jitter.
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(20));
        let wait = courier.retry_base.saturating_mul(factor).min(LONGEST_WAIT);
        let wait = wait.mul_f64(1.0 + jitter.gen_range(0.0..=0.2));
        if started.elapsed() + wait > RETRY_FOR {
            inc(&counters.dropped);
            dec(&counters.pending);
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One notification POST: 2xx delivered; 5xx, 408, 429, timeouts and connection errors retried;
/// any other status final.
async fn post(courier: &Courier, url: &str, body: &[u8]) -> Answer {
    let request = match request(url, "application/json; charset=utf-8", body.to_vec()) {
        Some(r) => r,
        None => return Answer::Final,
    };
    let sent = tokio::time::timeout(ANSWER_WITHIN, async {
        let response = courier.client.request(request).await.ok()?;
        let status = response.status().as_u16();
        // Read (and discard) a bounded answer so the connection can be reused.
        let _ = Limited::new(response.into_body(), ANSWER_LIMIT)
            .collect()
            .await;
        Some(status)
    })
    .await;
    match sent {
        Ok(Some(s)) if (200..300).contains(&s) => Answer::Ok,
        Ok(Some(s)) if s >= 500 || s == 408 || s == 429 => Answer::Retry,
        Ok(Some(_)) => Answer::Final,
        _ => Answer::Retry,
    }
}

fn request(url: &str, content_type: &str, body: Vec<u8>) -> Option<hyper::Request<Full<Bytes>>> {
    let len = body.len();
    hyper::Request::post(url)
        .header("Content-Type", content_type)
        .header("Content-Length", len.to_string())
        .header("User-Agent", "graph-sim")
        .body(Full::new(Bytes::from(body)))
        .ok()
}

/// The validation handshake: POST `{url}?validationToken=...` and expect 200 text/plain with the
/// decoded token, within the handshake timeout. Never subject to faults.
pub(crate) async fn handshake(courier: &Courier, url: &str) -> ApiResult<()> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        guid()
    );
    let encoded = percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC);
    let sep = if url.contains('?') { '&' } else { '?' };
    let target = format!("{url}{sep}validationToken={encoded}");
    let fail = |why: String| {
        ApiError::new(
            400,
            "ValidationError",
            format!("{} ({url}: {why})", VALIDATION_FAILED),
        )
    };
    if url.starts_with("https://") {
        return Err(fail(
            "graph-sim cannot deliver over https; give it an http:// URL".into(),
        ));
    }
    let request = request(&target, "text/plain; charset=utf-8", Vec::new())
        .ok_or_else(|| fail("not a URL the simulator can call".into()))?;
    let answer = tokio::time::timeout(courier.handshake_timeout, async {
        let response = courier
            .client
            .request(request)
            .await
            .map_err(|e| format!("could not connect: {e}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = Limited::new(response.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map_err(|_| "the answer was too long or broken".to_string())?
            .to_bytes();
        Ok::<_, String>((status, content_type, body))
    })
    .await;
    let (status, content_type, body) = match answer {
        Err(_) => {
            return Err(fail(format!(
                "no answer within {} ms",
                courier.handshake_timeout.as_millis()
            )))
        }
        Ok(Err(why)) => return Err(fail(why)),
        Ok(Ok(a)) => a,
    };
    if status != 200 {
        return Err(fail(format!("answered {status}, not 200")));
    }
    if !content_type.to_ascii_lowercase().starts_with("text/plain") {
        return Err(fail(format!(
            "answered Content-Type '{content_type}', not text/plain"
        )));
    }
    if body.as_ref() != token.as_bytes() {
        return Err(fail(
            "the body is not the decoded validationToken".to_string(),
        ));
    }
    Ok(())
}
