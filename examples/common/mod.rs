//! What the `decrypt` and `webhook` examples share: option parsing, the receiver they build
//! from options, and the JSON line they print for each notification.
#![allow(dead_code)]

use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
use graph_chat_notifications::inbound::{
    compact_json, Batch, ChangeNotification, Delivery, Payload, Receiver,
};
use graph_chat_notifications::tokens::TokenValidator;
use graph_chat_notifications::ItemError;
use serde::Serialize;
use serde_json::value::RawValue;
use std::io::Write;

/// Long options: `--name value` or `--name=value`; flags take no value; anything else, and
/// everything after `--`, is positional.
pub struct Options {
    pub values: Vec<(String, String)>,
    pub flags: Vec<String>,
    pub positional: Vec<String>,
}

impl Options {
    pub fn parse(
        mut argv: impl Iterator<Item = String>,
        with_value: &[&str],
        flags: &[&str],
    ) -> Result<Self, String> {
        let mut out = Options {
            values: Vec::new(),
            flags: Vec::new(),
            positional: Vec::new(),
        };
        let mut only_positional = false;
        while let Some(arg) = argv.next() {
            if only_positional || arg == "-" || !arg.starts_with("--") {
                out.positional.push(arg);
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
            if flags.contains(&name.as_str()) {
                if inline.is_some() {
                    return Err(format!("{name} takes no value"));
                }
                out.flags.push(name);
            } else if with_value.contains(&name.as_str()) {
                let value = match inline {
                    Some(v) => v,
                    None => argv.next().ok_or_else(|| format!("{name} needs a value"))?,
                };
                out.values.push((name, value));
            } else {
                return Err(format!("unknown option {name}"));
            }
        }
        Ok(out)
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn one(&self, name: &str) -> Result<Option<String>, String> {
        let mut all = self.all(name);
        if all.len() > 1 {
            return Err(format!("{name} given more than once"));
        }
        Ok(all.pop())
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

/// The token validator `--app-id ID... --tenant-id ID...` describe, without keys yet (the caller
/// loads the JWKS). `None` when neither is given; an error when only one is.
pub fn validator_from(options: &Options) -> Result<Option<TokenValidator>, String> {
    let (apps, tenants) = (options.all("--app-id"), options.all("--tenant-id"));
    match (
        apps.is_empty(),
        tenants.is_empty(),
        options.one("--jwks")?.is_some(),
    ) {
        (true, true, false) => Ok(None),
        (false, false, true) => Ok(Some(TokenValidator::new(apps, tenants))),
        (_, _, true) => Err("--jwks needs at least one --app-id and one --tenant-id".into()),
        (_, _, false) => Err("--app-id and --tenant-id go with --jwks".into()),
    }
}

/// The receiver the options describe: `--key CERT_ID=KEY_FILE`..., `--client-state S`..., and
/// `tokens` (without a validator, tokens are not checked: the caller decides whether that is
/// allowed); `tenants`, when not empty, are the only tenants taken.
pub fn receiver_from(
    options: &Options,
    tokens: Option<TokenValidator>,
    delivery: Delivery,
    tenants: &[String],
) -> Result<Receiver, String> {
    let mut keys = KeyStore::new();
    for spec in options.all("--key") {
        let (id, path) = spec
            .split_once('=')
            .filter(|(id, path)| !id.is_empty() && !path.is_empty())
            .ok_or_else(|| format!("--key takes CERT_ID=KEY_FILE, got {spec:?}"))?;
        let bytes =
            std::fs::read(path).map_err(|e| format!("--key {id}: cannot read {path}: {e}"))?;
        let key = PrivateKey::from_bytes(&bytes).map_err(|e| format!("--key {id}: {path}: {e}"))?;
        keys.insert(id, key)
            .map_err(|e| format!("--key {id}: {e}"))?;
    }
    let mut builder = Receiver::builder()
        .keys(keys)
        .delivery(delivery)
        .allowed_tenants(tenants.iter().cloned());
    let client_states = options.all("--client-state");
    if client_states.is_empty() {
        // A debugging aid: without --client-state, clientState is not checked.
        builder = builder.dangerous_accept_any_client_state();
    }
    for s in client_states {
        builder = builder.client_state(s);
    }
    builder = match tokens {
        Some(validator) => builder.tokens(validator),
        // Event Hubs and Event Grid carry no tokens: no opt-out needed there.
        None if !delivery.carries_tokens() => builder,
        None => builder.dangerous_skip_token_validation(),
    };
    builder.build().map_err(|e| e.to_string())
}

/// `--delivery webhook|event-hubs|event-grid` (default `webhook`).
pub fn delivery_from(options: &Options) -> Result<Delivery, String> {
    match options.one("--delivery")?.as_deref() {
        None | Some("webhook") => Ok(Delivery::Webhook),
        Some("event-hubs") => Ok(Delivery::EventHubs),
        Some("event-grid") => Ok(Delivery::EventGrid),
        Some(other) => Err(format!(
            "--delivery takes webhook, event-hubs or event-grid, got {other:?}"
        )),
    }
}

/// One output line. Field order is the contract's.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    index: usize,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    validation_message: Option<bool>,
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

fn opened_line(
    out: &mut impl Write,
    n: &ChangeNotification<'_>,
    payload: &Payload<'_>,
    content: Option<&RawValue>,
) -> std::io::Result<()> {
    let mut line = Line {
        index: n.index,
        ok: true,
        event_type: n.cloud_event.as_ref().map(|e| e.event_type.as_ref()),
        validation_message: None,
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
        Payload::ValidationMessage => {
            line.validation_message = Some(true);
            line.change_type = None;
            line.resource = None;
        }
        _ => {}
    }
    // Raw JSON as sent may span lines: each output line holds one notification.
    let compact_data = line
        .resource_data
        .flatten()
        .map(|raw| compact_json(raw.get()).into_owned());
    if let Some(text) = &compact_data {
        line.resource_data = Some(Some(
            serde_json::from_str::<&RawValue>(text).expect("compacted JSON"),
        ));
    }
    write_line(out, &line)
}

/// The `ok: false` line of a notification that failed.
pub fn write_failed_line(out: &mut impl Write, error: &ItemError) -> std::io::Result<()> {
    failed_line(out, error.index(), error.to_string())
}

fn failed_line(out: &mut impl Write, index: usize, error: String) -> std::io::Result<()> {
    let line = Line {
        index,
        ok: false,
        event_type: None,
        validation_message: None,
        change_type: None,
        resource: None,
        content: None,
        lifecycle_event: None,
        resource_data: None,
        error: Some(error),
    };
    write_line(out, &line)
}

/// One line, serialized straight into `out` (no copy of the content on the way).
fn write_line(out: &mut impl Write, line: &Line<'_>) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// Opens every notification of `batch` and writes its line to `out`, one at a time; returns
/// whether all were ok. With `typed`, the content is the typed model serialized again; without,
/// as it was sent.
pub fn write_batch_lines(
    out: &mut impl Write,
    batch: &Batch<'_, '_>,
    buf: &mut DecryptBuffer,
    typed: bool,
) -> std::io::Result<bool> {
    let mut all_ok = true;
    let mut written = Ok(());
    batch.open_each(buf, |opened| {
        if written.is_err() {
            return; // the output is gone: stop writing
        }
        let opened = opened.and_then(|opened| {
            let text: Option<String> = match (&opened.payload, typed) {
                (Payload::Decrypted(_), true) => opened
                    .decode()?
                    .map(|r| serde_json::to_string(&r).expect("models serialize")),
                (Payload::Decrypted(json), false) => Some(compact_json(json).into_owned()),
                _ => None,
            };
            Ok((opened, text))
        });
        written = match opened {
            Ok((opened, text)) => {
                // Valid JSON by construction: the receiver checked it, within serde_json's
                // nesting limit.
                let content = text
                    .as_deref()
                    .map(|t| serde_json::from_str::<&RawValue>(t).expect("checked JSON"));
                opened_line(out, opened.notification, &opened.payload, content)
            }
            Err(e) => {
                all_ok = false;
                write_failed_line(out, &e)
            }
        };
    });
    written?;
    Ok(all_ok)
}
