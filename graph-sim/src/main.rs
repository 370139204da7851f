//! `graph-sim`: Microsoft Graph on loopback, for tests and offline demos.
//!
//! ```text
//! graph-sim [--listen ADDR] [--tenant-id T] [--app-id A] [--user-id U] [--seed N]
//!           [--retry-base-ms MS] [--state FILE] [--user-name NAME]
//!           [--poll-limit N] [--poll-window SECONDS] [--accept-any-token]
//!           [--token-lifetime SECONDS] [--redirect-uri URI]...
//! ```
//!
//! Prints `graph: http://HOST:PORT/` once it serves, runs until SIGTERM or SIGINT, exits 0.
//! Bad arguments: a message on stderr, exit 2. Log lines go to stderr, at the level `RUST_LOG`
//! sets (default `info`); stdout carries only the `graph:` line.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use graph_sim::{Config, Simulator};

const USAGE: &str = "usage: graph-sim [--listen ADDR] [--tenant-id T] [--app-id A] [--user-id U] [--seed N] [--retry-base-ms MS] [--state FILE] [--user-name NAME] [--poll-limit N] [--poll-window SECONDS] [--accept-any-token] [--token-lifetime SECONDS] [--redirect-uri URI]...";

fn parse(args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut config = Config::default();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        if flag == "--accept-any-token" {
            config.accept_any_token = true;
            continue;
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (flag.clone(), None),
        };
        let known = [
            "--listen",
            "--tenant-id",
            "--app-id",
            "--user-id",
            "--seed",
            "--retry-base-ms",
            "--state",
            "--user-name",
            "--poll-limit",
            "--poll-window",
            "--token-lifetime",
            "--redirect-uri",
        ];
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown argument '{flag}'"));
        }
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        if value.is_empty() {
            return Err(format!("{name} needs a value"));
        }
        match name.as_str() {
            "--listen" => {
                config.listen = value.parse().map_err(|_| {
                    format!("--listen '{value}' is not an address such as 127.0.0.1:8081")
                })?
            }
            "--tenant-id" => config.tenant_id = value,
            "--app-id" => config.app_id = value,
            "--user-id" => config.user_id = value,
            "--user-name" => config.user_display_name = value,
            "--seed" => {
                config.seed = value
                    .parse()
                    .map_err(|_| format!("--seed '{value}' is not a whole number"))?
            }
            "--retry-base-ms" => {
                let ms: u64 = value.parse().map_err(|_| {
                    format!("--retry-base-ms '{value}' is not a whole number of milliseconds")
                })?;
                config.retry_base = Duration::from_millis(ms);
            }
            "--state" => config.state_path = Some(value.into()),
            "--poll-limit" => {
                config.poll_limit = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= graph_sim::MAX_POLL_LIMIT)
                    .ok_or_else(|| {
                        format!(
                            "--poll-limit '{value}' is not a whole number from 0 to {}",
                            graph_sim::MAX_POLL_LIMIT
                        )
                    })?
            }
            "--poll-window" => {
                let secs: u64 = value.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("--poll-window '{value}' is not a whole number of seconds over 0")
                })?;
                config.poll_window = Duration::from_secs(secs);
            }
            "--token-lifetime" => {
                let secs: u64 = value.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("--token-lifetime '{value}' is not a whole number of seconds over 0")
                })?;
                config.token_lifetime = Duration::from_secs(secs);
            }
            "--redirect-uri" => config.redirect_uris.push(value),
            _ => unreachable!("checked against the known flags"),
        }
    }
    Ok(config)
}

/// Log lines on stderr, human-readable, at the level `RUST_LOG` sets (default `info`; a
/// directive it cannot read is left out with a note), coloured only on a terminal. stdout is
/// left to the program's own lines.
fn install_log_lines() {
    use std::io::IsTerminal as _;
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    if let Err(e) = installed {
        eprintln!("graph-sim: no log lines: {e}");
    }
}

fn main() -> ExitCode {
    install_log_lines();
    let config = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("graph-sim: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("graph-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let sim = match Simulator::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("graph-sim: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut out = std::io::stdout();
        let _ = writeln!(out, "graph: {}", sim.base_url());
        let _ = out.flush();
        wait_for_signal().await;
        sim.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
