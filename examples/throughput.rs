//! Decrypts the batch in FILE over and over for a while, on N threads, and reports the time per
//! notification (wall time divided by notifications decrypted, all threads together).
//!
//! ```text
//! throughput --key CERT_ID=KEY_FILE [--seconds S] [--threads N] [--provider rust-crypto|aws-lc] FILE
//! ```
//!
//! `--threads 0` uses every core. The provider is the crate's default (AWS-LC with the default
//! features); `--provider` picks one. The last line is `us_per_notification=<float>`. Validation
//! tokens are not checked (the batch's tokens expire; the work measured is the per-notification
//! one).
//!
//! `cargo run --release --example throughput -- --key graphsim-rsa2048=tests/fixtures/keys/rsa2048/key.pkcs8.pem tests/fixtures/batches/rsa2048.json`

mod common;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use graph_chat_notifications::crypto::{
    CryptoProvider, DecryptBuffer, KeyStore, PrivateKey, RUST_CRYPTO,
};
use graph_chat_notifications::inbound::Receiver;

const USAGE: &str = "usage: throughput --key CERT_ID=KEY_FILE [--seconds S] [--threads N] \
[--provider rust-crypto|aws-lc] FILE";

fn provider(name: Option<&str>) -> Result<&'static CryptoProvider, String> {
    match name {
        Some("rust-crypto") => Ok(&RUST_CRYPTO),
        #[cfg(feature = "aws-lc")]
        Some("aws-lc") => Ok(&graph_chat_notifications::crypto::AWS_LC),
        None => Ok(graph_chat_notifications::crypto::default_provider()),
        Some(other) => Err(format!(
            "--provider {other}: not compiled in (aws-lc needs --features aws-lc)"
        )),
    }
}

fn run() -> Result<f64, String> {
    let o = common::Options::parse(
        std::env::args().skip(1),
        &["--key", "--seconds", "--threads", "--provider"],
        &[],
    )?;
    let provider = provider(o.one("--provider")?.as_deref())?;
    let seconds: f64 = o.one("--seconds")?.map_or(Ok(3.0), |s| {
        s.parse().map_err(|_| format!("--seconds {s:?}"))
    })?;
    let threads: usize = o
        .one("--threads")?
        .map_or(Ok(1), |s| s.parse().map_err(|_| format!("--threads {s:?}")))?;
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let [file] = o.positional.as_slice() else {
        return Err("give one batch FILE".into());
    };
    let mut keys = KeyStore::with_provider(provider);
    for spec in o.all("--key") {
        let (id, path) = spec
            .split_once('=')
            .ok_or_else(|| format!("--key takes CERT_ID=KEY_FILE, got {spec:?}"))?;
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        keys.insert(
            id,
            PrivateKey::from_bytes(&bytes).map_err(|e| format!("{path}: {e}"))?,
        )
        .map_err(|e| e.to_string())?;
    }
    if keys.is_empty() {
        return Err("give at least one --key".into());
    }
    // A measuring tool: the work measured is per notification, so the batch's tokens (which
    // expire) and clientState are not checked.
    let receiver = Receiver::builder()
        .keys(keys)
        .dangerous_skip_token_validation()
        .dangerous_accept_any_client_state()
        .build()
        .map_err(|e| e.to_string())?;
    let body = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;

    // One pass first: every notification must decrypt, or the figure would measure failures.
    let batch = receiver
        .receive(&body, SystemTime::now())
        .map_err(|e| format!("body refused: {e}"))?;
    let mut buf = DecryptBuffer::new();
    let mut failed = None;
    batch.open_each(&mut buf, |opened| {
        if let Err(e) = opened {
            failed.get_or_insert(e.to_string());
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let per_batch = batch.len() as u64;
    if per_batch == 0 {
        return Err("the batch holds no notification".into());
    }

    let done = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = DecryptBuffer::new();
                while Instant::now() < deadline {
                    let batch = receiver
                        .receive(&body, SystemTime::now())
                        .expect("checked above");
                    batch.open_each(&mut buf, |opened| {
                        let _ = std::hint::black_box(opened.map(|o| o.payload.clone()));
                    });
                    done.fetch_add(per_batch, Ordering::Relaxed);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let n = done.load(Ordering::Relaxed);
    eprintln!(
        "provider={} threads={threads} notifications={n} seconds={:.2}",
        provider.name,
        elapsed.as_secs_f64()
    );
    Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
}

fn main() -> ExitCode {
    match run() {
        Ok(us) => {
            println!("us_per_notification={us:.1}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("throughput: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
