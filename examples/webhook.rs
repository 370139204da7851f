//! A production-shaped webhook on axum and tokio: the crate does the checking and decrypting,
//! off the async threads; the server only moves bytes.
//!
//! ```text
//! webhook --listen ADDR --key CERT_ID=KEY_FILE... --client-state S [--jwks FILE --app-id ID --tenant-id ID]
//! ```
//!
//! * `POST /notifications?validationToken=T` and `POST /lifecycle?validationToken=T`: 200
//!   `text/plain` with `T` decoded (Graph's validation handshake).
//! * `POST /notifications` and `POST /lifecycle` with a batch: 202 at once, whatever the batch
//!   holds (Graph's advice: reply first, validate after, so a sender learns nothing); 413 past
//!   the body limit (16 MiB); 503 if the work queue is full, so Graph retries later. Each batch is
//!   then checked and decrypted on a worker thread, which prints one JSON line per notification
//!   on stdout, exactly as the `decrypt` example does, or one line on stderr for a batch refused
//!   as a whole.
//! * SIGTERM or Ctrl-C: stop accepting, finish the queued batches, exit 0.
//!
//! It prints `listening on ADDR` on stderr once it accepts connections (`--listen 127.0.0.1:0`
//! picks a free port).

mod common;

use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc::{sync_channel, Receiver as Queue, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use graph_chat_notifications::crypto::DecryptBuffer;
use graph_chat_notifications::webhook::{handshake, Receiver};

const USAGE: &str = "usage: webhook --listen ADDR --key CERT_ID=KEY_FILE... --client-state S \
[--jwks FILE --app-id ID --tenant-id ID]";

/// Batches waiting for a worker. Past this, the server answers 503 and Graph retries.
const QUEUE: usize = 4096;

#[derive(Clone)]
struct App {
    queue: SyncSender<Bytes>,
}

async fn notify(State(app): State<App>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    if let Some(reply) = handshake(query.as_deref().unwrap_or("")) {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, reply.content_type())],
            reply.into_body(),
        )
            .into_response();
    }
    match app.queue.try_send(body) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(TrySendError::Full(_)) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Err(TrySendError::Disconnected(_)) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Checks and decrypts batches until the queue closes; prints each batch's lines together.
fn worker(receiver: Arc<Receiver>, queue: Arc<Mutex<Queue<Bytes>>>) {
    let mut buf = DecryptBuffer::new();
    loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(body) = next else { return };
        match receiver.receive(&body, std::time::SystemTime::now()) {
            Ok(batch) => {
                let mut out = std::io::stdout().lock();
                let _ = common::write_batch_lines(&mut out, &batch, &mut buf, false);
                let _ = out.flush();
            }
            Err(e) => eprintln!("webhook: batch refused: {e}"),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal sent right after `listening on` is never missed.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn main() -> ExitCode {
    let options = match common::Options::parse(
        std::env::args().skip(1),
        &[
            "--listen",
            "--key",
            "--client-state",
            "--jwks",
            "--app-id",
            "--tenant-id",
        ],
        &[],
    ) {
        Ok(o) => o,
        Err(e) => return usage(&e),
    };
    let listen = match options.one("--listen") {
        Ok(Some(l)) => l,
        Ok(None) => return usage("--listen is required"),
        Err(e) => return usage(&e),
    };
    if options.all("--client-state").is_empty() {
        return usage("--client-state is required");
    }
    if options.all("--key").is_empty() {
        return usage("at least one --key is required");
    }
    if !options.positional.is_empty() {
        return usage("unexpected arguments");
    }
    let receiver = match common::receiver_from(&options) {
        Ok(r) => Arc::new(r),
        Err(e) => return usage(&e),
    };
    let body_limit = receiver.limits().get_max_body_bytes();

    let (tx, rx) = sync_channel::<Bytes>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..thread::available_parallelism().map_or(2, |n| n.get()))
        .map(|_| {
            let (receiver, rx) = (Arc::clone(&receiver), Arc::clone(&rx));
            thread::spawn(move || worker(receiver, rx))
        })
        .collect();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("webhook: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let served = runtime.block_on(async move {
        let stop = shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("listening on {addr}");
        let app = Router::new()
            .route("/notifications", post(notify))
            .route("/lifecycle", post(notify))
            .layer(DefaultBodyLimit::max(body_limit))
            .with_state(App { queue: tx });
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .map_err(|e| e.to_string())
    });
    // The server (and with it the queue's sender) is gone: workers drain the queue and stop.
    runtime.shutdown_background();
    for w in workers {
        let _ = w.join();
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webhook: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("webhook: {message}\n{USAGE}");
    ExitCode::from(2)
}
