//! The HTTP/1 server under [`Webhook::serve`](crate::Webhook::serve): connection caps, head and
//! idle deadlines, and a shutdown that ends within its deadline whatever a stranger holds open.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::refusal::Refusal;
use crate::state::Shared;

/// How often a connection looks at its idle deadline.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// After `accept` fails (out of file descriptors, say), wait this long before the next: the
/// deadlines free descriptors meanwhile.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Connections per address, and in all.
#[derive(Default)]
struct Counts {
    per_address: HashMap<IpAddr, usize>,
    total: usize,
}

/// One connection's place in [`Counts`], given back when the connection ends.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if let Some(n) = c.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_address.remove(&self.ip);
            }
        }
    }
}

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
    head_or_error: Throttled,
    idle: Throttled,
}

/// The source a connection counts against: an IPv4 address (IPv4-mapped IPv6 included), or an
/// IPv6 /64 (a host is given a whole /64, so counting single addresses would cap nothing).
fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(std::net::Ipv6Addr::from(segments))
            }
        },
        v4 => v4,
    }
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
    let counts = Arc::new(Mutex::new(Counts::default()));
    let closures = Arc::new(Closures {
        over_address_cap: Throttled::new("over the per-address connection cap"),
        over_total_cap: Throttled::new("over the total connection cap"),
        head_or_error: Throttled::new(
            "request head not complete within the deadline, or a malformed request",
        ),
        idle: Throttled::new("idle past the deadline"),
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
                let ip = normalize(peer.ip());
                let slot = {
                    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
                    let here = c.per_address.get(&ip).copied().unwrap_or(0);
                    if here >= shared.limits.connections_per_address() {
                        None.ok_or(&closures.over_address_cap)
                    } else if c.total >= shared.limits.max_connections() {
                        None.ok_or(&closures.over_total_cap)
                    } else {
                        *c.per_address.entry(ip).or_default() += 1;
                        c.total += 1;
                        Ok(Slot { counts: Arc::clone(&counts), ip })
                    }
                };
                match slot {
                    Ok(slot) => {
                        connections.spawn(connection(
                            Arc::clone(&shared),
                            Arc::clone(&closures),
                            router.clone(),
                            stream,
                            peer,
                            close.clone(),
                            slot,
                        ));
                    }
                    // Closed at once: its descriptor is free again.
                    Err(throttled) => {
                        drop(stream);
                        throttled.hit(&shared, ip);
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
    peer: SocketAddr,
    mut close: watch::Receiver<bool>,
    _slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
        epoch,
    });
    let service = TowerToHyperService::new(router);
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
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if ended.is_err() {
                    closures.head_or_error.hit(&shared, normalize(peer.ip()));
                }
                return;
            }
            changed = close.changed(), if !closing => {
                if changed.is_err() || *close.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = ticks.tick() => {
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if epoch.elapsed().saturating_sub(last) > idle_deadline {
                    closures.idle.hit(&shared, normalize(peer.ip()));
                    return;
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::normalize;
    use std::net::IpAddr;

    #[test]
    fn sources_count_by_ipv4_address_and_ipv6_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(normalize(ip("127.0.0.2")), ip("127.0.0.2"));
        assert_eq!(normalize(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(
            normalize(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            normalize(ip("2001:db8:1:2::1")),
            normalize(ip("2001:db8:1:2::2"))
        );
        assert_ne!(
            normalize(ip("2001:db8:1:2::1")),
            normalize(ip("2001:db8:1:3::1"))
        );
    }
}
