//! The `decrypt` example, driven as an outside caller would: arguments, stdin, stdout lines and
//! exit status, per its documented contract.
#![cfg(feature = "rust-crypto")]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::*;
use serde_json::Value;

fn example() -> PathBuf {
    example_path("decrypt")
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> (i32, Vec<Value>, String) {
    let mut child = Command::new(example())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        // The example may exit before reading (bad arguments): a broken pipe is expected then.
        let _ = input.write_all(stdin.unwrap_or_default());
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (
        out.status.code().unwrap(),
        lines,
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn path(p: &str) -> String {
    fixture(p).display().to_string()
}

#[test]
fn decrypts_a_batch_with_keys_of_every_format() {
    let k2 = format!("graphsim-rsa2048={}", path("keys/rsa2048/key.pkcs1.pem"));
    let k4 = format!(
        "--key=graphsim-rsa4096={}",
        path("keys/rsa4096/key.pkcs8.der")
    );
    let batch = path("batches/two-certs.json");
    let (code, lines, _) = run(
        &["--key", &k2, &k4, "--client-state", CLIENT_STATE, &batch],
        None,
    );
    assert_eq!(code, 0);
    let expected = manifest("two-certs.json");
    assert_eq!(lines.len(), expected.len());
    for (i, (line, (name, _))) in lines.iter().zip(&expected).enumerate() {
        assert_eq!(line["index"], i);
        assert_eq!(line["ok"], true);
        assert_eq!(line["changeType"], "updated");
        assert!(
            line["resource"].as_str().unwrap().starts_with("chats(")
                || line["resource"].as_str().unwrap().starts_with("teams(")
        );
        let want: Value = serde_json::from_str(&plaintext(name)).unwrap();
        assert_eq!(line["content"], want, "{name}");
    }
}

#[test]
fn stdin_item_failures_and_exit_one() {
    let mut body: Value = serde_json::from_slice(&read("batches/rsa2048.json")).unwrap();
    body["value"][1]["encryptedContent"]["dataKey"] = "@@@".into();
    body["value"][2]["clientState"] = "forged".into();
    body["value"].as_array_mut().unwrap().push(serde_json::json!({
        "subscriptionId": "s", "clientState": CLIENT_STATE, "lifecycleEvent": "subscriptionRemoved"}));
    body["value"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
        "subscriptionId": "s", "clientState": CLIENT_STATE, "changeType": "deleted",
        "resource": "chats('19:x@thread.v2')", "resourceData": {"id": "19:x@thread.v2"}}));
    let bytes = serde_json::to_vec(&body).unwrap();
    let key = format!("graphsim-rsa2048={}", path("keys/rsa2048/key.pkcs8.pem"));
    let (code, lines, _) = run(
        &["--key", &key, "--client-state", CLIENT_STATE, "-"],
        Some(&bytes),
    );
    assert_eq!(code, 1);
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[1]["ok"], false);
    assert!(
        lines[1]["error"].as_str().unwrap().contains("dataKey"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2]["error"].as_str().unwrap().contains("clientState"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3]["ok"], true);
    let n = lines.len();
    assert_eq!(lines[n - 2]["lifecycleEvent"], "subscriptionRemoved");
    assert!(lines[n - 2].get("content").is_none());
    assert_eq!(lines[n - 1]["resourceData"]["id"], "19:x@thread.v2");
    assert_eq!(lines[n - 1]["changeType"], "deleted");
    // Without --key nothing can be decrypted, and every item says so by field.
    let (code, lines, _) = run(&[], Some(&bytes));
    assert_eq!(code, 1);
    assert!(lines[0]["error"]
        .as_str()
        .unwrap()
        .contains("encryptionCertificateId"));
}

#[test]
fn refusals_exit_two_with_a_message() {
    let key = format!("graphsim-rsa2048={}", path("keys/rsa2048/key.pkcs8.pem"));
    for (args, stdin) in [
        (vec!["--key", key.as_str()], &b"not json"[..]),
        (vec![], &b"{\"value\": 3}"[..]),
        (vec!["--key", "no-equals-sign"], &b"{}"[..]),
        (vec!["--key", "id=/nonexistent/key.pem"], &b"{}"[..]),
        (vec!["--bogus"], &b"{}"[..]),
        (vec!["--client-state"], &b"{}"[..]),
        (vec!["a.json", "b.json"], &b"{}"[..]),
        (vec!["/nonexistent/body.json"], &b""[..]),
        (
            vec!["--jwks", "jwks.json", "--app-id", "a", "--tenant-id", "t"],
            &b"{\"value\":[]}"[..],
        ),
    ] {
        let (code, lines, stderr) = run(&args, Some(stdin));
        assert_eq!(code, 2, "{args:?}");
        assert!(lines.is_empty(), "{args:?}");
        assert!(!stderr.trim().is_empty(), "{args:?}");
    }
    let (code, lines, _) = run(&[], Some(b"{\"value\":[]}"));
    assert_eq!((code, lines.len()), (0, 0));
}

#[test]
fn jwks_turns_token_validation_on() {
    use crate::common::mint::{with, Minter, APP, TENANT};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let m = Minter::fixture();
    let good = m.token(&Minter::v1_at(now));
    let bad = m.token(&with(
        Minter::v1_at(now),
        serde_json::json!({"azp": "not-graph"}),
    ));
    let body_with = |tokens: Value| {
        let mut body: Value = serde_json::from_slice(&read("tokens/batch.json")).unwrap();
        body["validationTokens"] = tokens;
        serde_json::to_vec(&body).unwrap()
    };
    let key = format!("graphsim-rsa2048={}", path("keys/rsa2048/key.pkcs8.pem"));
    let jwks = path("tokens/jwks.json");
    let args = [
        "--key",
        key.as_str(),
        "--client-state",
        CLIENT_STATE,
        "--jwks",
        jwks.as_str(),
        "--app-id",
        "00000000-0000-0000-0000-000000000000",
        "--app-id",
        APP,
        "--tenant-id",
        TENANT,
        "-",
    ];
    let (code, lines, _) = run(&args, Some(&body_with(serde_json::json!([good]))));
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["ok"] == true));

    // An item claiming a tenant no token vouches for fails alone, naming tenantId; exit 1.
    let mut other_tenant: Value =
        serde_json::from_slice(&body_with(serde_json::json!([good]))).unwrap();
    other_tenant["value"][1]["tenantId"] = "9c5a1f2e-0000-4000-8000-00000000000b".into();
    let mut two_tenants = args.to_vec();
    two_tenants.splice(
        12..12,
        ["--tenant-id", "9c5a1f2e-0000-4000-8000-00000000000b"],
    );
    let (code, lines, _) = run(
        &two_tenants,
        Some(&serde_json::to_vec(&other_tenant).unwrap()),
    );
    assert_eq!(code, 1);
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[1]["ok"], false);
    assert_eq!(lines[1]["index"], 1);
    let error = lines[1]["error"].as_str().unwrap();
    assert!(error.contains("tenantId"), "{error}");

    // One bad token among good ones: nothing is decrypted.
    let (code, lines, stderr) = run(&args, Some(&body_with(serde_json::json!([good, bad]))));
    assert_eq!((code, lines.len()), (2, 0));
    assert!(stderr.contains("validationTokens[1]"), "{stderr}");
    // No tokens at all.
    let (code, lines, stderr) = run(&args, Some(&body_with(serde_json::json!([]))));
    assert_eq!((code, lines.len()), (2, 0));
    assert!(stderr.contains("validationTokens"), "{stderr}");
    // The fixture tokens were minted for 2027: not valid yet by the clock.
    let (code, _, stderr) = run(&args, Some(&read("tokens/batch.json")));
    assert_eq!(code, 2);
    assert!(stderr.contains("not valid before"), "{stderr}");

    // --jwks without app or tenant, or app without --jwks: bad arguments.
    for bad_args in [
        vec!["--jwks", jwks.as_str(), "--app-id", APP],
        vec!["--jwks", jwks.as_str(), "--tenant-id", TENANT],
        vec!["--app-id", APP, "--tenant-id", TENANT],
        vec![
            "--jwks",
            "/nonexistent.json",
            "--app-id",
            APP,
            "--tenant-id",
            TENANT,
        ],
    ] {
        let (code, _, stderr) = run(&bad_args, Some(b"{\"value\":[]}"));
        assert_eq!(code, 2, "{bad_args:?}");
        assert!(!stderr.is_empty());
    }
}

#[test]
fn typed_content_is_the_model_serialized_again() {
    use crate::common::seal::{notification, Seal};
    let key = format!("graphsim-rsa2048={}", path("keys/rsa2048/key.pkcs8.pem"));
    let batch = path("batches/rsa2048.json");
    let (code, lines, _) = run(&["--typed", "--key", &key, &batch], None);
    assert_eq!(code, 0);
    for (line, (name, _)) in lines.iter().zip(manifest("rsa2048.json")) {
        let want: Value = serde_json::from_str(&plaintext(&name)).unwrap();
        assert_eq!(line["content"], want, "{name}");
    }
    // A resource that does not fit its model fails that notification only, naming the property.
    let seal = Seal::new(&read("keys/rsa2048/cert.der"), "graphsim-rsa2048");
    let good = notification(seal.encrypt(br#"{"id":"1","body":{"content":"fine"}}"#));
    let bad = notification(seal.encrypt(br#"{"id":"2","from":{"user":{"displayName":42}}}"#));
    let body = serde_json::to_vec(&serde_json::json!({"value": [good, bad]})).unwrap();
    let (code, lines, _) = run(&["--typed", "--key", &key], Some(&body));
    assert_eq!(code, 1);
    assert_eq!(lines[0]["ok"], true);
    let error = lines[1]["error"].as_str().unwrap();
    assert!(error.contains("from.user.displayName"), "{error}");
    assert!(error.starts_with("notification 1"), "{error}");
    // Without --typed the same body decrypts: the content is passed on as sent.
    let (code, _, _) = run(&["--key", &key], Some(&body));
    assert_eq!(code, 0);
}

#[test]
fn every_delivery_channel_through_the_contract() {
    use graph_chat_notifications::crypto::Certificate;
    use graph_chat_notifications::model::ChangeType;
    use graph_chat_notifications::testing::GraphSimulator;
    let graph = GraphSimulator::new("app", "tenant").client_state_value(CLIENT_STATE);
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let item = graph.notification(
        r#"{"id":"1","chatId":"19:c@thread.v2"}"#,
        (&cert).into(),
        "graphsim-rsa2048",
        ChangeType::Created,
    );
    let key = format!("graphsim-rsa2048={}", path("keys/rsa2048/key.pkcs8.pem"));
    let args = |delivery: &'static str| {
        vec![
            "--key".to_string(),
            key.clone(),
            "--client-state".into(),
            CLIENT_STATE.into(),
            format!("--delivery={delivery}"),
            "-".into(),
        ]
    };
    let run_with = |delivery: &'static str, body: &[u8]| {
        let a = args(delivery);
        run(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            Some(body),
        )
    };

    // Event Hubs: the validation message is an ok line of its own; no tokens needed.
    let (code, lines, _) = run_with(
        "event-hubs",
        &graph.event_hubs_body(std::slice::from_ref(&item)),
    );
    assert_eq!(code, 0);
    assert_eq!(
        lines[0],
        serde_json::json!({"index": 0, "ok": true, "validationMessage": true})
    );
    assert_eq!(lines[1]["content"]["id"], "1");

    // Event Grid: one line per event, with its type; a malformed event fails alone (exit 1).
    let mut events: Value =
        serde_json::from_slice(&graph.cloud_events(std::slice::from_ref(&item))).unwrap();
    events
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"specversion": "1.0", "type": "t", "source": "s", "id": "x"}));
    let (code, lines, _) = run_with("event-grid", &serde_json::to_vec(&events).unwrap());
    assert_eq!(code, 1);
    assert_eq!(lines[0]["eventType"], "Microsoft.Graph.ChatMessageCreated");
    assert_eq!(lines[0]["content"]["id"], "1");
    assert_eq!(lines[1]["index"], 1);
    assert_eq!(lines[1]["ok"], false);
    assert!(lines[1]["error"].as_str().unwrap().contains("data"));

    // The wrong shape for the channel: refused whole (exit 2); a bad channel name: exit 2.
    let (code, _, stderr) = run_with(
        "event-grid",
        &graph.event_hubs_body(std::slice::from_ref(&item)),
    );
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run_with("webhook", &graph.cloud_events(&[item]));
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(&["--delivery", "carrier-pigeon", "-"], Some(b"{}"));
    assert_eq!(code, 2);
    assert!(stderr.contains("--delivery"), "{stderr}");
}

/// The `throughput` contract: `--key CERT_ID=KEY_FILE [--seconds S] [--threads N] FILE`, ending
/// with `us_per_notification=<float>`.
#[test]
fn the_throughput_contract() {
    let key = format!("graphsim-rsa2048={}", path("keys/rsa2048/key.pkcs8.pem"));
    let batch = path("batches/rsa2048.json");
    for threads in ["1", "0"] {
        let out = std::process::Command::new(example_path("throughput"))
            .args([
                "--key",
                &key,
                "--seconds",
                "0.2",
                "--threads",
                threads,
                &batch,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last = stdout.lines().last().unwrap_or("");
        let us: f64 = last
            .strip_prefix("us_per_notification=")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("last line {last:?}"));
        assert!(us > 0.0 && us.is_finite());
    }
}

/// Event Grid with `--jwks --app-id A --tenant-id T`: a CloudEvent carries no validation token,
/// so its `tenantId` is taken only when it is one of the configured tenants, as the webhook does.
/// A CloudEvent from another tenant fails alone, naming `tenantId` (exit 1).
#[test]
fn event_grid_takes_only_the_configured_tenants() {
    use graph_chat_notifications::crypto::Certificate;
    use graph_chat_notifications::model::ChangeType;
    use graph_chat_notifications::testing::GraphSimulator;
    const OURS: &str = "9c5a1f2e-0000-4000-8000-00000000000a";
    const THEIRS: &str = "9c5a1f2e-0000-4000-8000-00000000000b";
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    let item = |tenant: &str| {
        GraphSimulator::new("app", tenant)
            .client_state_value(CLIENT_STATE)
            .notification(
                r#"{"id":"1","chatId":"19:c@thread.v2"}"#,
                (&cert).into(),
                "graphsim-rsa2048",
                ChangeType::Created,
            )
    };
    let ours = GraphSimulator::new("app", OURS).client_state_value(CLIENT_STATE);
    let jwks = std::env::temp_dir().join(format!("decrypt-event-grid-{}.json", std::process::id()));
    std::fs::write(&jwks, ours.jwks()).unwrap();
    let key = format!("graphsim-rsa2048={}", path("keys/rsa2048/key.pkcs8.pem"));
    let jwks_arg = jwks.display().to_string();
    let args = [
        "--key",
        key.as_str(),
        "--client-state",
        CLIENT_STATE,
        "--jwks",
        jwks_arg.as_str(),
        "--app-id",
        "app",
        "--tenant-id",
        OURS,
        "--delivery",
        "event-grid",
        "-",
    ];
    let body = ours.cloud_events(&[item(OURS), item(THEIRS)]);
    let (code, lines, stderr) = run(&args, Some(&body));
    std::fs::remove_file(&jwks).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["ok"], true, "{}", lines[0]);
    assert_eq!(lines[0]["content"]["id"], "1");
    assert_eq!(lines[1]["index"], 1);
    assert_eq!(lines[1]["ok"], false, "{}", lines[1]);
    let error = lines[1]["error"].as_str().unwrap();
    assert!(error.contains("tenantId"), "{error}");
}
