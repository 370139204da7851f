//! Outbound HTTP: validation handshakes, and change and lifecycle notifications delivered at
//! least once with retries, back-off and the seeded faults.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use crate::graph::Graph;
use crate::util::{guid, ApiError, ApiResult};
use crate::types::{Deliveries, Faults};

/// Graph waits this long for a notification's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// Graph retries a failing notification for this long, then drops it.
const RETRY_FOR: Duration = Duration::from_secs(4 * 60 * 60);
/// No single back-off wait is longer than this.
const LONGEST_WAIT: Duration = Duration::from_secs(30 * 60);
/// `reorder` holds a delivery back up to this much more.
const REORDER_MS: u64 = 500;
/// How much of an answer is read (handshakes echo a short token).
const ANSWER_LIMIT: usize = 64 * 1024;

pub(crate) type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

pub(crate) fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http()
}

#[derive(Default)]
pub(crate) struct Counters {
    attempted: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    retried: AtomicU64,
    rejected: AtomicU64,
    pending: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> Deliveries {
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

/// Sends `o` at once (or after its faults' delay), in a task of its own.
pub(crate) fn dispatch(graph: Arc<Graph>, o: Outgoing) {
    inc(&graph.counters.pending);
    let handle = graph.handle.clone();
    handle.spawn(async move {
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
            inc(&graph.counters.dropped);
            dec(&graph.counters.pending);
            return;
        }
        let o = Arc::new(o);
        if duplicate {
            inc(&graph.counters.duplicated);
            inc(&graph.counters.pending);
            let (s, o2) = (graph.clone(), o.clone());
            let d = delays[1];
            tokio::spawn(async move { attempts(s, o2, d, jitter_seed ^ 1).await });
        }
        attempts(graph, o, delays[0], jitter_seed).await;
    });
}

async fn attempts(graph: Arc<Graph>, o: Arc<Outgoing>, delay_ms: u64, jitter_seed: u64) {
    let mut stop = graph.stop_tx.subscribe();
    let counters = &graph.counters;
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
            if !graph.sub_alive(id) {
                // Expired, deleted or removed: nothing more, silently.
                dec(&counters.pending);
                return;
            }
        }
        inc(&counters.attempted);
        if retry > 0 {
            inc(&counters.retried);
        }
        let failed_on_purpose = graph
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let answer = if failed_on_purpose {
            Answer::Retry
        } else {
            post(&graph, &o.url, &o.body).await
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
        let wait = graph
            .config
            .retry_base
            .saturating_mul(factor)
            .min(LONGEST_WAIT);
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
async fn post(graph: &Graph, url: &str, body: &[u8]) -> Answer {
    let request = match request(url, "application/json; charset=utf-8", body.to_vec()) {
        Some(r) => r,
        None => return Answer::Final,
    };
    let sent = tokio::time::timeout(ANSWER_WITHIN, async {
        let response = graph.client.request(request).await.ok()?;
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
pub(crate) async fn handshake(graph: &Graph, url: &str) -> ApiResult<()> {
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
            format!("{} ({url}: {why})", crate::graph::VALIDATION_FAILED),
        )
    };
    if url.starts_with("https://") {
        return Err(fail(
            "graph-sim cannot deliver over https; give it an http:// URL".into(),
        ));
    }
    let request = request(&target, "text/plain; charset=utf-8", Vec::new())
        .ok_or_else(|| fail("not a URL the simulator can call".into()))?;
    let answer = tokio::time::timeout(graph.config.handshake_timeout, async {
        let response = graph
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
                graph.config.handshake_timeout.as_millis()
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
