//! The production webhook, as a program: a thin layer of options over [`graph_chat_webhook`],
//! which holds the server (admission before the 2xx, the durable inbox, bounded bodies and
//! connections, the JWKS refresh, the workers).
//!
//! ```text
//! webhook --listen ADDR --key CERT_ID=KEY_FILE... --client-state S... --inbox PATH|URL
//!         [--jwks FILE|URL --app-id ID... --tenant-id ID...] [--jwks-min-interval SECONDS]
//!         [--insecure-no-tokens] [--event-grid]
//! ```
//!
//! * `POST /notifications?validationToken=T` and `POST /lifecycle?validationToken=T`: 200
//!   `text/plain` with `T` decoded, at once.
//! * `POST /notifications` and `POST /lifecycle` with a batch: admitted (size, JSON, every
//!   validation token, each notification's tenant and `clientState`; no RSA private-key
//!   operation), committed to the SQLite inbox at `--inbox` (WAL, full sync), and only then
//!   answered 202 (`--inbox postgres://...`: the PostgreSQL inbox that several copies share,
//!   when built with `--features postgres`). A forged or
//!   malformed body is answered 202 and stored nowhere (a line on stderr); a notification
//!   refused alone prints its `ok: false` line at once and is not stored. A token naming a
//!   signing key not yet known: 503 until the JWKS refresh (at most once per
//!   `--jwks-min-interval`, default 300 s) decides. 503 when the inbox cannot commit or is full;
//!   413 past the body limit; 408 for a body slower than the minimum rate.
//! * Workers on every core open each stored batch with the time it was received, print one JSON
//!   line per notification on stdout exactly as the `decrypt` example does, then mark it done
//!   (at least once: a crash in between prints it again after a restart).
//! * `--event-grid` turns on `OPTIONS /eventgrid` (the CloudEvents abuse-protection handshake)
//!   and `POST /eventgrid` (CloudEvents from a Graph partner topic, through the same inbox).
//!   Each delivery's Microsoft Entra bearer token must be issued for an `--app-id` by a
//!   `--tenant-id` to Event Grid, and each notification's tenant must be a `--tenant-id`.
//! * SIGTERM or Ctrl-C: stop accepting, let requests in hand finish (5 s at most), let workers
//!   finish the batch in hand, exit 0.
//!
//! It prints `listening on ADDR` on stderr once it accepts connections (`--listen 127.0.0.1:0`
//! picks a free port). The library's log lines (`tracing` events: JWKS refreshes that failed,
//! batches kept for later) go to stderr too, at the level `RUST_LOG` sets (default `info`, without
//! the refusal events, which this program prints as its own `webhook: ...` lines); stdout carries
//! only the JSON lines.

#[path = "../../examples/common/mod.rs"]
mod common;
#[path = "../../examples/common/log.rs"]
mod log;
#[path = "../../examples/common/signal.rs"]
mod signal;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use graph_chat_webhook::notifications::crypto::DecryptBuffer;
use graph_chat_webhook::notifications::inbound::{Batch, Delivery};
use graph_chat_webhook::notifications::tokens::{TokenValidator, EVENT_GRID_APP_ID};
use graph_chat_webhook::{
    BatchContext, EventGrid, HandlerError, Inbox, JwksSource, Refusal, SqliteInbox, Webhook,
};

const USAGE: &str = "usage: webhook --listen ADDR --key CERT_ID=KEY_FILE... --client-state S... \
--inbox PATH|URL [--jwks FILE|URL --app-id ID... --tenant-id ID...] [--jwks-min-interval SECONDS] \
[--insecure-no-tokens] [--event-grid]";

/// Each batch's lines, decrypted outside any lock, then written to stdout at once.
fn print_batch(
    _: &BatchContext,
    batch: &Batch<'_, '_>,
    buf: &mut DecryptBuffer,
) -> Result<(), HandlerError> {
    let mut lines = Vec::new();
    common::write_batch_lines(&mut lines, batch, buf, false)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&lines)?;
    out.flush()?;
    Ok(())
}

/// A line on stderr for every refusal; a notification refused at admission also prints its
/// `ok: false` line, as the `decrypt` example would.
fn report(refusal: &Refusal) {
    if let Refusal::Notification { error, .. } = refusal {
        let mut line = Vec::new();
        if common::write_failed_line(&mut line, error).is_ok() {
            let _ = std::io::stdout().lock().write_all(&line);
        }
    }
    eprintln!("webhook: {refusal}");
}

/// `--inbox`: a SQLite file, or a PostgreSQL URL (libpq's) that several copies of the webhook
/// share. The URL is never printed back: it may hold a password.
fn open_inbox(spec: &str) -> Result<Arc<dyn Inbox>, String> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return graph_chat_webhook::PgInbox::open(spec)
            .map(|inbox| Arc::new(inbox) as Arc<dyn Inbox>)
            .map_err(|e| format!("--inbox (PostgreSQL): {e}"));
        #[cfg(not(feature = "postgres"))]
        return Err(
            "--inbox postgres://...: this build has no PostgreSQL inbox (build with --features postgres)"
                .into(),
        );
    }
    let inbox = SqliteInbox::open(spec).map_err(|e| format!("--inbox {spec}: {e}"))?;
    Ok(Arc::new(inbox))
}

fn configure() -> Result<(String, Webhook), String> {
    let options = common::Options::parse(
        std::env::args().skip(1),
        &[
            "--listen",
            "--key",
            "--client-state",
            "--inbox",
            "--jwks",
            "--app-id",
            "--tenant-id",
            "--jwks-min-interval",
        ],
        &["--insecure-no-tokens", "--event-grid"],
    )?;
    let listen = options.one("--listen")?.ok_or("--listen is required")?;
    let inbox = options.one("--inbox")?.ok_or("--inbox is required")?;
    if options.all("--client-state").is_empty() {
        return Err("--client-state is required".into());
    }
    if options.all("--key").is_empty() {
        return Err("at least one --key is required".into());
    }
    if !options.positional.is_empty() {
        return Err("unexpected arguments".into());
    }
    let min_interval = match options.one("--jwks-min-interval")? {
        None => graph_chat_webhook::JWKS_MIN_INTERVAL,
        Some(s) => Duration::from_secs(
            s.parse()
                .map_err(|_| format!("--jwks-min-interval takes whole seconds, got {s:?}"))?,
        ),
    };
    let validator = common::validator_from(&options)?;
    match (&validator, options.flag("--insecure-no-tokens")) {
        (Some(_), false) => {}
        (None, true) => {
            eprintln!("webhook: WARNING: validation tokens are not checked (--insecure-no-tokens)")
        }
        (Some(_), true) => return Err("--insecure-no-tokens contradicts --jwks".into()),
        (None, false) => {
            return Err(
                "--jwks is required to check validation tokens (or --insecure-no-tokens)".into(),
            )
        }
    }
    let tenants = options.all("--tenant-id");
    let event_grid = if options.flag("--event-grid") {
        let receiver = common::receiver_from(&options, None, Delivery::EventGrid, &tenants)?;
        Some(match &validator {
            Some(v) => {
                let bearer = TokenValidator::new(v.app_ids().to_vec(), v.tenant_ids().to_vec())
                    .publisher(EVENT_GRID_APP_ID);
                EventGrid::new(receiver, bearer)
            }
            None => {
                eprintln!("webhook: WARNING: Event Grid bearer tokens are not checked (--insecure-no-tokens)");
                EventGrid::dangerous_without_bearer(receiver)
            }
        }
        .map_err(|e| format!("--event-grid: {e}"))?)
    } else {
        None
    };
    let receiver = common::receiver_from(&options, validator, Delivery::Webhook, &[])?;
    let inbox = open_inbox(&inbox)?;
    let mut builder = Webhook::builder(receiver)
        .shared_inbox(inbox)
        .jwks_min_interval(min_interval)
        .on_refusal(report);
    if let Some(source) = options.one("--jwks")? {
        builder = builder.jwks(JwksSource::parse(&source));
    }
    if let Some(event_grid) = event_grid {
        builder = builder.event_grid(event_grid);
    }
    let webhook = builder.build().map_err(|e| match e {
        graph_chat_webhook::BuildError::Jwks(reason) => format!("--jwks: {reason}"),
        other => other.to_string(),
    })?;
    Ok((listen, webhook))
}

fn main() -> ExitCode {
    // Refusals are this program's own `webhook: ...` lines (on_refusal): not logged twice.
    log::install("webhook", "info,graph_chat_webhook::refusal=off");
    let (listen, webhook) = match configure() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("webhook: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let workers = webhook.start_workers(print_batch);
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
    let served = runtime.block_on(async {
        let stop = signal::shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("listening on {addr}");
        webhook
            .serve(listener, stop)
            .await
            .map_err(|e| e.to_string())
    });
    // The server is gone and its commits are done; workers finish the batch in hand. The rest
    // stays in the inbox for the next start.
    runtime.shutdown_timeout(Duration::from_secs(5));
    workers.shutdown();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webhook: {e}");
            ExitCode::from(1)
        }
    }
}
