//! Decrypts a notification body from a file or standard input, one JSON line per notification.
//!
//! ```text
//! decrypt [--key CERT_ID=KEY_FILE]... [--client-state S]... [--jwks FILE --app-id ID... --tenant-id ID...]
//!         [--delivery webhook|event-hubs|event-grid] [--typed] [FILE|-]
//! ```
//!
//! Each line is `{"index":i,"ok":true,"changeType":..,"resource":..,"content":<resource JSON>}`
//! (lifecycle notifications carry `"lifecycleEvent"`, notifications without resource data their
//! `"resourceData"`), or `{"index":i,"ok":false,"error":"<what failed, naming the field>"}`.
//! `--delivery` says how the body arrived: a webhook POST (the default), an Event Hubs message
//! (no validation tokens; Graph's validation message prints `"validationMessage":true`), or
//! Event Grid CloudEvents (`index` is the event's position; lines add `"eventType"`).
//! With `--typed`, `content` is the typed model serialized again. Exit status: 0 when every
//! notification is ok, 1 when some failed, 2 when the body was refused as a whole or the
//! arguments are wrong (the reason on standard error).
//!
//! Try it: `cargo run --example decrypt -- --key graphsim-rsa2048=tests/fixtures/keys/rsa2048/key.pkcs8.pem
//! --client-state secretClientState tests/fixtures/batches/rsa2048.json`

mod common;

use std::io::{Read, Write};
use std::process::ExitCode;

use graph_chat_notifications::crypto::DecryptBuffer;

const USAGE: &str = "usage: decrypt [--key CERT_ID=KEY_FILE]... [--client-state S]... \
[--jwks FILE --app-id ID... --tenant-id ID...] [--delivery webhook|event-hubs|event-grid] \
[--typed] [FILE|-]";

/// Why the run stopped with exit status 2 (or 0, for `--help`).
enum Stop {
    /// Bad arguments: the message, then the usage line.
    Usage(String),
    /// `--help`.
    Help,
    /// Input unreadable, or the body refused as a whole.
    Refused(String),
}

/// Reads at most `limit` bytes (the receiver's body limit): a larger input is refused without
/// being held in memory.
fn read_input(input: Option<&str>, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let read = match input {
        None | Some("-") => std::io::stdin()
            .take(limit as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("cannot read standard input: {e}")),
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut body))
            .map_err(|e| format!("cannot read {path}: {e}")),
    };
    read?;
    if body.len() > limit {
        return Err(format!(
            "body refused: the body is over the limit of {limit} bytes"
        ));
    }
    Ok(body)
}

fn run() -> Result<bool, Stop> {
    let options = common::Options::parse(
        std::env::args().skip(1),
        &[
            "--key",
            "--client-state",
            "--jwks",
            "--app-id",
            "--tenant-id",
            "--delivery",
        ],
        &["--typed", "--help"],
    )
    .map_err(Stop::Usage)?;
    if options.flag("--help") {
        return Err(Stop::Help);
    }
    if options.positional.len() > 1 {
        return Err(Stop::Usage("more than one input file given".into()));
    }
    // Without --jwks, tokens are not checked: this is a debugging tool.
    let validator = common::validator_from(&options).map_err(Stop::Usage)?;
    if let (Some(validator), Some(path)) = (&validator, options.one("--jwks").map_err(Stop::Usage)?)
    {
        let jwks = std::fs::read(&path)
            .map_err(|e| Stop::Usage(format!("--jwks: cannot read {path}: {e}")))?;
        validator
            .update_jwks(&jwks, std::time::SystemTime::now())
            .map_err(|e| Stop::Usage(format!("--jwks: {path}: {e}")))?;
    }
    let delivery = common::delivery_from(&options).map_err(Stop::Usage)?;
    // A CloudEvent carries no validation token to vouch for its tenant: as the webhook does,
    // only the configured `--tenant-id`s are taken (on the other channels tokens vouch too).
    let tenants = options.all("--tenant-id");
    let receiver =
        common::receiver_from(&options, validator, delivery, &tenants).map_err(Stop::Usage)?;
    let body = read_input(
        options.positional.first().map(String::as_str),
        receiver.limits().max_body_bytes(),
    )
    .map_err(Stop::Refused)?;
    let batch = receiver
        .receive(&body, std::time::SystemTime::now())
        .map_err(|e| Stop::Refused(format!("body refused: {e}")))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_failed = |e: std::io::Error| Stop::Refused(format!("cannot write output: {e}"));
    let all_ok = common::write_batch_lines(
        &mut out,
        &batch,
        &mut DecryptBuffer::new(),
        options.flag("--typed"),
    )
    .map_err(write_failed)?;
    out.flush().map_err(write_failed)?;
    Ok(all_ok)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Stop::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(Stop::Usage(message)) => {
            eprintln!("decrypt: {message}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Stop::Refused(message)) => {
            eprintln!("decrypt: {message}");
            ExitCode::from(2)
        }
    }
}
