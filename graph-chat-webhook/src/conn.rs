//! The HTTP/1 server under [`Webhook::serve`](crate::Webhook::serve): connection caps, head and
//! idle deadlines, and a shutdown that ends within its deadline whatever a stranger holds open.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::inbox::Route;
use crate::pool::{ConnState, NotTaken, Pool, Slot, Turned};
use crate::refusal::{Refusal, IDLE_CLOSURE};
use crate::source::Source;
use crate::state::Shared;

/// How often a connection looks at its idle deadline.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// After `accept` fails (out of file descriptors, say), wait this long before the next: the
/// deadlines free descriptors meanwhile.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Refusals that can come by the thousand, reported at most once a second per reason.
struct Throttled {
    reason: &'static str,
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Throttled {
    const fn new(reason: &'static str) -> Self {
        Self {
            reason,
            count: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    fn hit(&self, shared: &Shared, peer: IpAddr) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        let count = self.count.swap(0, Ordering::Relaxed);
        shared.refuse(Refusal::Connections {
            count,
            peer: Some(peer),
            reason: self.reason,
        });
    }
}

struct Closures {
    over_address_cap: Throttled,
    over_total_cap: Throttled,
    shed: Throttled,
    head_or_error: Throttled,
    idle: Throttled,
}

pub(crate) async fn serve<F>(
    shared: Arc<Shared>,
    router: Router,
    listener: TcpListener,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let pool = Pool::new(&shared.limits);
    let closures = Arc::new(Closures {
        over_address_cap: Throttled::new("over the per-address connection cap"),
        over_total_cap: Throttled::new("over the total connection cap"),
        shed: Throttled::new(
            "shed at the connection cap for a new connection (no request in hand, or its body incomplete)",
        ),
        head_or_error: Throttled::new(
            "request head not complete within the deadline, or a malformed request",
        ),
        idle: Throttled::new(IDLE_CLOSURE),
    });
    let (closing, close) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(target: "graph_chat_webhook", error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let source = Source::of(peer.ip());
                match pool.admit(source) {
                    Ok(admitted) => {
                        if let Some(shed) = admitted.shed {
                            closures.shed.hit(&shared, shed.0);
                        }
                        connections.spawn(connection(
                            Arc::clone(&shared),
                            Arc::clone(&closures),
                            router.clone(),
                            stream,
                            close.clone(),
                            admitted.slot,
                        ));
                    }
                    // Closed at once: its descriptor is free again.
                    Err(turned) => {
                        drop(stream);
                        let throttled = match turned {
                            Turned::SourceCap => &closures.over_address_cap,
                            Turned::TotalCap => &closures.over_total_cap,
                        };
                        throttled.hit(&shared, source.0);
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let grace = shared.limits.shutdown_grace();
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(target: "graph_chat_webhook", open = connections.len(), "closing connections past the shutdown grace");
        connections.shutdown().await;
    }
    Ok(())
}

async fn connection(
    shared: Arc<Shared>,
    closures: Arc<Closures>,
    router: Router,
    stream: TcpStream,
    mut close: watch::Receiver<bool>,
    slot: Slot,
) {
    let slot = Arc::new(slot);
    let ip = slot.source().0;
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
        epoch,
    });
    // Each request carries its source (for the body budget's shares) and its connection's
    // handle (for `StreamSlot`), and holds the connection in hand while it is answered; its
    // body tells the pool when it has all arrived.
    let service = {
        let slot = Arc::clone(&slot);
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            use hyper::body::Body as _;
            let webhook = is_webhook_route(request.uri().path());
            let taken = slot.request(webhook, request.body().is_end_stream());
            let router = router.clone();
            let source = slot.source();
            let handle = slot.handle();
            let state = Arc::clone(slot.state());
            async move {
                let in_hand = match taken {
                    Ok(in_hand) => in_hand,
                    Err(not_taken) => return Ok(not_taken_response(not_taken)),
                };
                let (mut parts, body) = request.into_parts();
                parts.extensions.insert(source);
                parts.extensions.insert(handle);
                let body = axum::body::Body::new(Completing {
                    inner: body,
                    state: Arc::clone(&state),
                });
                let answered = router
                    .oneshot(hyper::Request::from_parts(parts, body))
                    .await;
                drop(in_hand);
                answered.map(|mut response| {
                    // A stream's place is held only while its response lasts.
                    if state.is_stream() {
                        response.headers_mut().insert(
                            axum::http::header::CONNECTION,
                            axum::http::HeaderValue::from_static("close"),
                        );
                    }
                    response
                })
            }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.head_deadline())
        .max_buf_size(crate::limits::MAX_HEAD_BYTES)
        .max_headers(crate::limits::MAX_HEADERS)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let idle_deadline = shared.limits.idle_deadline();
    let mut ticks = tokio::time::interval(IDLE_CHECK);
    let mut closing = *close.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    let state = Arc::clone(slot.state());
    let mut shed = std::pin::pin!(state.shed());
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if ended.is_err() {
                    closures.head_or_error.hit(&shared, ip);
                }
                return;
            }
            // Shed for a new connection (the pool reported it): closed now.
            () = &mut shed => return,
            changed = close.changed(), if !closing => {
                if changed.is_err() || *close.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = ticks.tick() => {
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if epoch.elapsed().saturating_sub(last) > idle_deadline {
                    closures.idle.hit(&shared, ip);
                    return;
                }
            }
        }
    }
}

/// The routes the webhook registers ([`Route`]'s paths), told apart by the path of a request
/// head: requests on them may hold the places
/// [`ServerLimits::reserved_for_webhook`](crate::ServerLimits::reserved_for_webhook) keeps; every
/// other request holds a place of the rest.
fn is_webhook_route(path: &str) -> bool {
    Route::from_stored(path).is_some()
}

/// The answer to a request head the pool did not take: 503, and the connection closed.
fn not_taken_response(not_taken: NotTaken) -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    let reason = match not_taken {
        NotTaken::Shed => "the connection was shed at the connection cap",
        NotTaken::GeneralFull => "the server holds its cap of requests on these routes",
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A request body that tells its connection's state when it has all arrived.
struct Completing {
    inner: hyper::body::Incoming,
    state: Arc<ConnState>,
}

impl hyper::body::Body for Completing {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.state.body_complete(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.state.body_complete(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A stream that notes when a byte last went either way.
struct Watched {
    inner: TcpStream,
    activity: Arc<AtomicU64>,
    epoch: Instant,
}

impl Watched {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
