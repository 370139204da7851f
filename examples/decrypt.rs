//! Decrypts a notification body from a file or standard input, one JSON line per notification.
//!
//! ```text
//! decrypt [--key CERT_ID=KEY_FILE]... [--client-state S] [--jwks FILE --app-id ID... --tenant-id ID...] [--typed] [FILE|-]
//! ```
//!
//! Each line is `{"index":i,"ok":true,"changeType":..,"resource":..,"content":<resource JSON>}`
//! (lifecycle notifications carry `"lifecycleEvent"`, notifications without resource data their
//! `"resourceData"`), or `{"index":i,"ok":false,"error":"<what failed, naming the field>"}`.
//! Exit status: 0 when every notification is ok, 1 when some failed, 2 when the body was refused
//! as a whole or the arguments are wrong (the reason on standard error).
//!
//! Try it: `cargo run --example decrypt -- --key graphsim-rsa2048=tests/fixtures/keys/rsa2048/key.pkcs8.pem
//! --client-state secretClientState tests/fixtures/batches/rsa2048.json`

use std::io::{Read, Write};
use std::process::ExitCode;

use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
use graph_chat_notifications::tokens::TokenValidator;
use graph_chat_notifications::webhook::{compact_json, ChangeNotification, Payload, Receiver};
use serde::Serialize;
use serde_json::value::RawValue;

const USAGE: &str = "usage: decrypt [--key CERT_ID=KEY_FILE]... [--client-state S] \
[--jwks FILE --app-id ID... --tenant-id ID...] [--typed] [FILE|-]";

struct Args {
    typed: bool,
    keys: Vec<(String, String)>,
    client_states: Vec<String>,
    jwks: Option<String>,
    app_ids: Vec<String>,
    tenant_ids: Vec<String>,
    input: Option<String>,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        typed: false,
        keys: Vec::new(),
        client_states: Vec::new(),
        jwks: None,
        app_ids: Vec::new(),
        tenant_ids: Vec::new(),
        input: None,
    };
    let mut only_positional = false;
    while let Some(arg) = argv.next() {
        if only_positional || arg == "-" || !arg.starts_with("--") {
            if args.input.replace(arg).is_some() {
                return Err("more than one input file given".into());
            }
            continue;
        }
        if arg == "--" {
            only_positional = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let takes_value = !matches!(name.as_str(), "--typed" | "--help");
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None => Some(argv.next().ok_or_else(|| format!("{name} needs a value"))?),
            }
        } else if inline.is_some() {
            return Err(format!("{name} takes no value"));
        } else {
            None
        };
        match (name.as_str(), value) {
            ("--key", Some(v)) => {
                let (id, path) = v
                    .split_once('=')
                    .filter(|(id, path)| !id.is_empty() && !path.is_empty())
                    .ok_or_else(|| format!("--key takes CERT_ID=KEY_FILE, got {v:?}"))?;
                args.keys.push((id.to_string(), path.to_string()));
            }
            ("--client-state", Some(v)) => args.client_states.push(v),
            ("--jwks", Some(v)) => {
                if args.jwks.replace(v).is_some() {
                    return Err("--jwks given twice".into());
                }
            }
            ("--app-id", Some(v)) => args.app_ids.push(v),
            ("--tenant-id", Some(v)) => args.tenant_ids.push(v),
            ("--typed", _) => args.typed = true,
            ("--help", _) => return Err(String::new()),
            _ => return Err(format!("unknown option {name}")),
        }
    }
    match (
        &args.jwks,
        args.app_ids.is_empty(),
        args.tenant_ids.is_empty(),
    ) {
        (Some(_), false, false) | (None, true, true) => Ok(args),
        (Some(_), _, _) => Err("--jwks needs at least one --app-id and one --tenant-id".into()),
        (None, _, _) => Err("--app-id and --tenant-id go with --jwks".into()),
    }
}

fn build_receiver(args: &Args) -> Result<Receiver, String> {
    let mut keys = KeyStore::new();
    for (id, path) in &args.keys {
        let bytes =
            std::fs::read(path).map_err(|e| format!("--key {id}: cannot read {path}: {e}"))?;
        let key = PrivateKey::from_bytes(&bytes).map_err(|e| format!("--key {id}: {path}: {e}"))?;
        keys.insert(id.clone(), key)
            .map_err(|e| format!("--key {id}: {e}"))?;
    }
    let mut builder = Receiver::builder().keys(keys);
    for s in &args.client_states {
        builder = builder.client_state(s.clone());
    }
    builder = match &args.jwks {
        Some(path) => {
            let validator = TokenValidator::new(args.app_ids.clone(), args.tenant_ids.clone());
            let jwks =
                std::fs::read(path).map_err(|e| format!("--jwks: cannot read {path}: {e}"))?;
            validator
                .update_jwks(&jwks)
                .map_err(|e| format!("--jwks: {path}: {e}"))?;
            builder.tokens(validator)
        }
        // Without --jwks the tool decrypts whatever it is given: it is a debugging aid.
        None => builder.dangerous_skip_token_validation(),
    };
    builder.build().map_err(|e| e.to_string())
}

fn read_input(input: Option<&str>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    match input {
        None | Some("-") => std::io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| format!("cannot read standard input: {e}"))?,
        Some(path) => {
            body = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            body.len()
        }
    };
    Ok(body)
}

/// One output line. Field order is the contract's.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    index: usize,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    change_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle_event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_data: Option<Option<&'a RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl<'a> Line<'a> {
    fn failed(index: usize, error: String) -> Self {
        Self {
            index,
            ok: false,
            change_type: None,
            resource: None,
            content: None,
            lifecycle_event: None,
            resource_data: None,
            error: Some(error),
        }
    }

    fn opened(
        n: &'a ChangeNotification<'_>,
        payload: &'a Payload<'a>,
        content: Option<&'a RawValue>,
    ) -> Self {
        let mut line = Self {
            index: n.index,
            ok: true,
            change_type: n.change_type.as_deref(),
            resource: n.resource.as_deref(),
            content,
            lifecycle_event: None,
            resource_data: None,
            error: None,
        };
        match payload {
            Payload::Lifecycle(_) => line.lifecycle_event = n.lifecycle_event.as_deref(),
            Payload::ResourceData(data) => line.resource_data = Some(data.as_deref()),
            _ => {}
        }
        line
    }
}

/// Why the run stopped with exit status 2.
enum Stop {
    /// Bad arguments: the message, then the usage line.
    Usage(String),
    /// `--help`: the usage line, exit status 0.
    Help,
    /// Input unreadable or the body refused as a whole.
    Refused(String),
}

fn run() -> Result<bool, Stop> {
    let args = parse_args(std::env::args().skip(1)).map_err(|m| {
        if m.is_empty() {
            Stop::Help
        } else {
            Stop::Usage(m)
        }
    })?;
    let receiver = build_receiver(&args).map_err(Stop::Usage)?;
    let body = read_input(args.input.as_deref()).map_err(Stop::Refused)?;
    let batch = receiver
        .receive(&body, std::time::SystemTime::now())
        .map_err(|e| Stop::Refused(format!("body refused: {e}")))?;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut buf = DecryptBuffer::new();
    let mut all_ok = true;
    for index in 0..batch.len() {
        let opened = batch.open(index, &mut buf).and_then(|opened| {
            // With --typed, the content is the typed model serialized again; without, as sent.
            let text: Option<String> = match (&opened.payload, args.typed) {
                (Payload::Resource(_), true) => opened
                    .decode()?
                    .map(|r| serde_json::to_string(&r).expect("models serialize")),
                (Payload::Resource(json), false) => Some(compact_json(json).into_owned()),
                _ => None,
            };
            // Valid JSON by construction: the receiver checked it.
            let content = text
                .as_deref()
                .map(|t| serde_json::from_str::<&RawValue>(t).expect("checked JSON"));
            let line = Line::opened(opened.notification, &opened.payload, content);
            Ok(serde_json::to_string(&line).expect("serializable"))
        });
        let line = match opened {
            Ok(line) => line,
            Err(e) => {
                all_ok = false;
                serde_json::to_string(&Line::failed(index, e.to_string())).expect("serializable")
            }
        };
        writeln!(out, "{line}").map_err(|e| Stop::Refused(format!("cannot write output: {e}")))?;
    }
    out.flush()
        .map_err(|e| Stop::Refused(format!("cannot write output: {e}")))?;
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
