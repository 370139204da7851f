//! The Teams-embedding guide's app: a chat page, live, over a server that subscribes, receives,
//! decrypts and caches ([`graph_chat_app`]).
//!
//! ```text
//! chat [--listen ADDR] [--data DIR] [--colleague-every SECONDS] [--resync-every SECONDS]
//!      [--renew-every SECONDS] [--database URL] [--public-url URL [--trust-proxy]] [--frame-ancestors SOURCES] [--keep-events-for SECONDS]
//!      [--graph URL --tenant-id T --app-id A [--client-id ID] [--client-secret-file FILE]
//!       [--authority URL] [--jwks URL] [--key PEM]] [--help]
//! ```
//!
//! People sign in on the page (`/auth/login`, the authorization code flow with PKCE); each sees
//! their own chats.
//!
//! * No `--graph`: everything offline. Graph and its identity platform are a `graph-sim` in
//!   this process on its own loopback port (its state under `--data` too), demo chats are
//!   created on a fresh `--data`, the page's sign-in lists the simulator's users (one click
//!   signs in), and a colleague writes, edits or deletes every `--colleague-every` seconds
//!   (default 5; 0 = never): [`graph_chat_app::demo`].
//! * `--graph URL`: a Graph at URL: a `graph-sim` started on its own (same `--tenant-id` and
//!   `--app-id`; the JWKS and the identity platform default to its own), or Microsoft Graph
//!   (`https://graph.microsoft.com`, with the app registration's `--client-id` and
//!   `--client-secret-file`, the `--public-url` Graph and browsers reach this app at, and the
//!   `--key` PEM, private key and certificate, that notifications are encrypted for; the JWKS
//!   and the identity platform default to the cloud's). `--user-id` is accepted and no longer
//!   needed.
//! * `--listen` defaults to `127.0.0.1:8080`, `--data` to `./chat-data`, `--resync-every` to
//!   86400 (one reconcile a day; reads otherwise come on evidence or a person's action),
//!   `--renew-every` to half a subscription's hour.
//! * `--database postgres://...`: copies of the app sharing that PostgreSQL database do each
//!   person's subscriptions, renewals and reconciles once, by the copy that holds the person's
//!   job ([`graph_chat_app::jobs`]).
//!
//! Once it serves, with its chats listed and its subscriptions in place, it prints
//! `app: http://HOST:PORT/` and, with the embedded simulator, `graph: http://HOST:PORT/`, then
//! serves until SIGTERM or Ctrl-C (exit 0). Those lines are all it writes to stdout; its log
//! lines go to stderr, at the level `RUST_LOG` sets (default `info`: each failed or throttled
//! Graph call, each resync and its reason, each subscription renewed, recreated, reauthorized or
//! found gone; never a token, a `clientState`, a session or message content). Bad arguments: exit 2; anything else that stops
//! it: exit 1.

#[path = "../../examples/common/log.rs"]
mod log;
#[path = "../../examples/common/signal.rs"]
mod signal;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use graph_chat_app::options::{Options, HELP, USAGE};
use graph_chat_app::{demo, App};

async fn run(options: Options) -> Result<(), String> {
    let stop = signal::shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
    std::fs::create_dir_all(&options.data)
        .map_err(|e| format!("--data {}: {e}", options.data.display()))?;
    // A Graph of the user's choosing, or the simulator in this process.
    let (sim, config) = match options.graph_config().map_err(|e| e.to_string())? {
        Some(config) => (None, config),
        None => {
            // Behind a public URL, browsers come back from the sign-in there.
            let sim = demo::start_simulator_for(&options.data, options.public_url.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let resync_every = Duration::from_secs(options.resync_every);
            let config = options.page_settings(demo::config(
                &sim,
                options.listen,
                &options.data,
                resync_every,
            ));
            demo::seed(&sim, &config).await.map_err(|e| e.to_string())?;
            (Some(Arc::new(sim)), config)
        }
    };
    let app = App::start(config).await.map_err(|e| e.to_string())?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "app: {}", app.url());
        if let Some(sim) = &sim {
            let _ = writeln!(out, "graph: {}", sim.base_url());
        }
        let _ = out.flush();
    }
    let colleague = match (&sim, options.colleague_every()) {
        (Some(sim), Some(every)) => Some(tokio::spawn(demo::colleague(Arc::clone(sim), every))),
        _ => None,
    };
    stop.await;
    if let Some(task) = colleague {
        task.abort();
    }
    app.shutdown().await;
    if let Some(sim) = sim.and_then(|sim| Arc::try_unwrap(sim).ok()) {
        sim.shutdown().await;
    }
    Ok(())
}

fn main() -> ExitCode {
    log::install("chat", "info");
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) if e.is_help() => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chat: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(options));
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::from(1)
        }
    }
}
