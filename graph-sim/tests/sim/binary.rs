//! The `graph-sim` binary checks bearer tokens unless told `--accept-any-token`, and takes the
//! identity options `--token-lifetime` and `--redirect-uri`.

use crate::common;

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

/// A running binary, killed when dropped.
struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_graph-sim"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the graph: line");
    let base = line
        .trim()
        .strip_prefix("graph: ")
        .unwrap_or_else(|| panic!("no graph: line, got {line:?}"))
        .to_string();
    Running { child, base }
}

#[tokio::test]
async fn the_binary_checks_tokens_by_default_and_accepts_any_when_told() {
    let checked = start(&[
        "--token-lifetime",
        "120",
        "--redirect-uri",
        "https://chat.example.com/cb",
    ]);
    let me = common::call("GET", &format!("{}v1.0/me", checked.base), None, true).await;
    assert_eq!(me.status, 401);
    assert_eq!(me.error_code(), "InvalidAuthenticationToken");

    // Tokens live --token-lifetime seconds.
    let tenant = "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1";
    let app = "11111111-2222-3333-4444-555555555555";
    let body = format!("grant_type=client_credentials&client_id={app}&client_secret=s");
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<axum::body::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let reply = client
        .request(
            hyper::Request::post(format!("{}{tenant}/oauth2/v2.0/token", checked.base))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(http_body_util::Full::new(axum::body::Bytes::from(body)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(reply.into_body())
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(v["expires_in"], 120);

    // A redirect URI given on the command line is accepted.
    let authorize = format!(
        "{}{tenant}/oauth2/v2.0/authorize?client_id={app}&response_type=code&redirect_uri=https%3A%2F%2Fchat.example.com%2Fcb&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&login_hint=87d349ed-44d7-43e1-9a83-5f2406dee5bd",
        checked.base
    );
    let reply = common::call("GET", &authorize, None, false).await;
    assert_eq!(
        reply.status,
        302,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );

    let any = start(&["--accept-any-token"]);
    let me = common::call("GET", &format!("{}v1.0/me", any.base), None, true).await;
    assert_eq!(me.status, 200, "{}", String::from_utf8_lossy(&me.body));
    assert_eq!(me.json()["id"], "87d349ed-44d7-43e1-9a83-5f2406dee5bd");
}

#[test]
fn bad_identity_options_exit_2() {
    for args in [
        &["--token-lifetime", "0"][..],
        &["--token-lifetime", "soon"][..],
        &["--redirect-uri"][..],
        &["--accept-any-token=yes"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_graph-sim"))
            .args(args)
            .output()
            .expect("the binary runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
