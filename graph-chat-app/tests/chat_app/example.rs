//! The `chat` example from outside, through its contract (`docs/contracts.md#the-chat-app`): no
//! arguments is offline with a demo; `--graph` takes a simulator started on its own; SIGTERM
//! exits 0; after `kill -9` and a restart on the same `--data`, nothing accepted is lost.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{
    chats, example_path, expected_view, get, messages, observed_view, wait_for, TempDir, PATIENCE,
};
use serde_json::Value;

struct Running {
    child: Child,
    app: String,
    graph: Option<String>,
    /// The stdout lines after the URLs (there should be none).
    stdout: mpsc::Receiver<String>,
    /// Its stderr lines so far, when they are collected rather than shown.
    stderr: Option<Arc<Mutex<Vec<String>>>>,
}

/// Starts `chat` with `args` and reads its `app:` (and `graph:`) lines.
fn start(args: &[&str], embedded: bool) -> Running {
    start_with(args, embedded, None)
}

/// The arguments that run the app on a graph-sim at `base` (`--graph`), with its identities.
fn on_graph(data: &std::path::Path, base: &str, identity: &graph_sim::Identity) -> Vec<String> {
    let data = data.to_str().unwrap();
    [
        "--listen",
        "127.0.0.1:0",
        "--data",
        data,
        "--graph",
        base,
        "--tenant-id",
        &identity.tenant_id,
        "--app-id",
        &identity.app_id,
        "--user-id",
        &identity.user_id,
    ]
    .map(String::from)
    .to_vec()
}

/// The same; with `rust_log`, under that `RUST_LOG`, its stderr collected line by line.
fn start_with(args: &[&str], embedded: bool, rust_log: Option<&str>) -> Running {
    let mut command = Command::new(example_path("chat"));
    command.args(args).stdout(Stdio::piped());
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter).stderr(Stdio::piped()),
        // Failures only, among the test's own output.
        None => command.env("RUST_LOG", "warn").stderr(Stdio::inherit()),
    };
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().map(|pipe| {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                collected.lock().unwrap().push(line);
            }
        });
        lines
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut app, mut graph) = (None, None);
    while app.is_none() || (embedded && graph.is_none()) {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("chat printed its URLs");
        if let Some(url) = line.strip_prefix("app: ") {
            app = Some(url.to_owned());
        } else if let Some(url) = line.strip_prefix("graph: ") {
            graph = Some(url.to_owned());
        } else {
            panic!("unexpected stdout line {line:?}");
        }
    }
    let app = app.unwrap();
    assert!(
        app.starts_with("http://127.0.0.1:") && app.ends_with('/'),
        "{app}"
    );
    assert!(!app.ends_with(":0/"), "the real port: {app}");
    Running {
        child,
        app,
        graph,
        stdout: rx,
        stderr,
    }
}

fn terminate(running: &mut Running) -> std::process::ExitStatus {
    let pid = running.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "chat did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GET `url`: the status and the body as text.
fn text(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut response = agent.get(url).call().unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn truth(agent: &ureq::Agent, graph: &str, chat: &str) -> Vec<Value> {
    let (status, body) = get(
        agent,
        &format!("{graph}_sim/chats/{}/messages", common::encode(chat)),
    );
    assert_eq!(status, 200);
    body["value"].as_array().unwrap().clone()
}

#[test]
fn with_no_arguments_it_runs_offline_with_a_demo_and_a_colleague() {
    let dir = TempDir::new("offline");
    let data = dir.path().join("data");
    let mut running = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--colleague-every",
            "1",
        ],
        true,
    );
    let app = running.app.clone();
    let graph = running.graph.clone().unwrap();
    // Nobody is signed in yet: the page is the sign-in page, the API answers 401.
    let stranger = common::agent();
    let (status, page) = text(&stranger, &app);
    assert_eq!(status, 200);
    assert!(page.contains("/auth/login"), "{page}");
    assert_eq!(get(&stranger, &format!("{app}api/chats")).0, 401);
    // One click on the simulator's list of users signs in; the chats are listed and the
    // person subscribed once the sign-in lands on the page.
    let agent = common::agent_with_session(&common::sign_in_from_list(&app));
    let list = chats(&agent, &app);
    assert!(list.iter().any(|c| c["topic"] == "Launch plan"), "{list:?}");
    let (_, subscriptions) = get(&agent, &format!("{graph}_sim/identity"));
    assert!(subscriptions["tenantId"].is_string());
    let demo = list.iter().find(|c| c["topic"] == "Launch plan").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = messages(&agent, &app, &demo).len();
    assert!(before >= 3, "a few demo messages: {before}");
    // The colleague writes every second, in one of the demo chats.
    wait_for("the colleague", || {
        let total: usize = chats(&agent, &app)
            .iter()
            .map(|c| messages(&agent, &app, c["id"].as_str().unwrap()).len())
            .sum();
        (total > before + 1).then_some(())
    });
    let (status, page) = text(&agent, &app);
    assert_eq!(status, 200);
    assert!(page.contains("id=\"compose\""));
    assert!(terminate(&mut running).success());
}

#[test]
fn after_kill_9_and_a_restart_on_the_same_data_the_page_shows_the_same() {
    let dir = TempDir::new("kill9");
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let mut running = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data",
            data,
            "--colleague-every",
            "1",
        ],
        true,
    );
    let me = get(
        &common::agent(),
        &format!("{}_sim/identity", running.graph.clone().unwrap()),
    )
    .1["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = common::sign_in(&running.app, &me);
    let first = chats(&agent, &running.app);
    let chat = first.iter().find(|c| c["topic"] == "Launch plan").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let start_count = messages(&agent, &running.app, &chat).len();
    wait_for("the colleague's messages", || {
        (messages(&agent, &running.app, &chat).len() > start_count + 1).then_some(())
    });
    let seen = messages(&agent, &running.app, &chat);
    running.child.kill().unwrap(); // SIGKILL
    running.child.wait().unwrap();

    let mut restarted = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data",
            data,
            "--colleague-every",
            "0",
        ],
        true,
    );
    let graph = restarted.graph.clone().unwrap();
    // The session the browser had is good after the restart.
    let after = messages(&agent, &restarted.app, &chat);
    // Everything the page showed before is there, in the same places.
    for m in &seen {
        let again = after
            .iter()
            .find(|a| a["id"] == m["id"])
            .unwrap_or_else(|| panic!("{} lost", m["id"]));
        assert!(again["lastModifiedDateTime"].as_str() >= m["lastModifiedDateTime"].as_str());
    }
    // And the whole view is Graph's truth (the simulator kept its state under --data too).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let expected = expected_view(&truth(&agent, &graph, &chat), &me);
        let observed = observed_view(&messages(&agent, &restarted.app, &chat));
        if expected == observed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restart:\n{expected:?}\n{observed:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(first.len(), chats(&agent, &restarted.app).len());
    assert!(terminate(&mut restarted).success());
}

#[test]
fn with_graph_it_uses_a_simulator_started_on_its_own() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(graph_sim::Simulator::start(graph_sim::Config::default()))
        .unwrap();
    let identity = sim.identity();
    let dir = TempDir::new("graph");
    let data = dir.path().join("data");
    let base = sim.base_url();
    let args = on_graph(&data, &base, &identity);
    let mut running = start(&args.iter().map(String::as_str).collect::<Vec<_>>(), false);
    assert!(running.graph.is_none());
    // No demo against a Graph of its own, and no subscription before someone signs in; then
    // that person's two.
    assert!(sim.subscription_ids().is_empty());
    let agent = common::sign_in(&running.app, &identity.user_id);
    assert_eq!(sim.subscription_ids().len(), 2);
    assert!(chats(&agent, &running.app).is_empty());
    assert!(terminate(&mut running).success());
    runtime.block_on(sim.shutdown());
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for args in [
        &["--listen", "nowhere"][..],
        &["--token", "t"][..],
        &["--client-secret-file", "/nonexistent/secret"][..],
        &["--authority", "http://127.0.0.1:9/"][..],
        &["--graph", "http://127.0.0.1:9/"][..],
        &["--resync-every", "soon"][..],
        &["--renew-every", "0"][..],
        &["--renew-every", "3600"][..],
        &["--database", "mysql://db.example/chat"][..],
        &["stray"][..],
    ] {
        let out = Command::new(example_path("chat"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_prints_every_option_and_exits_0() {
    for flag in ["--help", "-h"] {
        let out = Command::new(example_path("chat"))
            .arg(flag)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let text = String::from_utf8(out.stdout).unwrap();
        for option in [
            "--listen",
            "--data",
            "--public-url",
            "--trust-proxy",
            "--frame-ancestors",
            "--keep-events-for",
            "--renew-every",
            "--database",
            "--graph",
            "--client-id",
            "--client-secret-file",
            "--authority",
            "--key",
        ] {
            assert!(
                text.contains(option),
                "{flag}: {option} missing from\n{text}"
            );
        }
    }
}

#[test]
fn listening_for_other_machines_without_a_public_url_says_what_it_needs() {
    for args in [
        &["--listen", "0.0.0.0:0"][..],
        &["--listen", "[::]:0"][..],
        &["--frame-ancestors", "https://a.example; script-src *"][..],
        &["--trust-proxy"][..],
    ] {
        let out = Command::new(example_path("chat"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        if args[0] == "--listen" {
            assert!(stderr.contains("--public-url https://"), "{stderr}");
            assert!(!stderr.contains("notificationUrl"), "{stderr}");
        }
    }
}

/// Whether a line of `lines` passes `want`.
fn logged(lines: &Mutex<Vec<String>>, want: impl Fn(&str) -> bool) -> bool {
    lines.lock().unwrap().iter().any(|l| want(l))
}

#[test]
fn its_log_lines_name_throttled_calls_resyncs_and_subscriptions_but_no_secret_nor_content() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(graph_sim::Simulator::start(graph_sim::Config {
            retry_base: Duration::from_millis(100),
            ..graph_sim::Config::default()
        }))
        .unwrap();
    let identity = sim.identity();
    // A chat with a colleague's message in it, before the app starts.
    let chat = common::create_chat(&common::agent(), &sim, "Budget");
    let theirs = "the figures are 31337, keep them quiet";
    sim.colleague_writes(
        &chat,
        graph_sim::Sender {
            id: common::COLLEAGUE.0.into(),
            display_name: common::COLLEAGUE.1.into(),
        },
        theirs,
        "text",
    )
    .unwrap();
    let dir = TempDir::new("logs");
    let data = dir.path().join("data");
    let base = sim.base_url();
    let mut args = on_graph(&data, &base, &identity);
    args.extend(["--resync-every", "1"].map(String::from));
    let mut running = start_with(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        false,
        Some("info"),
    );
    let stderr = running.stderr.clone().unwrap();
    let app = running.app.clone();
    let session = common::sign_in_cookie(&app, &identity.user_id);
    let agent = common::agent_with_session(&session);
    let has = |items: &[Value], text: &str| items.iter().any(|m| m.to_string().contains(text));
    wait_for("the colleague's message on the page", || {
        has(&messages(&agent, &app, &chat), "31337").then_some(())
    });
    // The user writes: content in a Graph call's body and in its answer.
    let mine = "my reply says 4242, between us";
    let (status, _) = common::post(
        &agent,
        &format!("{app}api/chats/{}/messages", common::encode(&chat)),
        &serde_json::json!({ "content": mine }),
    );
    assert_eq!(status, 201);
    wait_for("the start's resync", || {
        logged(&stderr, |l| {
            l.contains("INFO") && l.contains("resync done") && l.contains("start")
        })
        .then_some(())
    });

    // A subscription Graph removes: its lifecycle event, then its recreation.
    let removed = sim.subscription_ids()[0].clone();
    sim.remove_subscription(&removed).unwrap();
    wait_for("the recreation's line", || {
        logged(&stderr, |l| {
            l.contains("INFO") && l.contains("subscription recreated") && l.contains(&removed)
        })
        .then_some(())
    });
    assert!(logged(&stderr, |l| l.contains("lifecycle event")
        && l.contains("subscriptionRemoved")
        && l.contains(&removed)));

    // Graph throttles every call: each is a warning with its status and Retry-After, and the
    // periodic resync says it failed and why it ran.
    sim.set_faults(graph_sim::Faults {
        throttle: 1.0,
        ..graph_sim::Faults::default()
    })
    .unwrap();
    let throttled = wait_for("a throttled call's line", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("WARN") && l.contains("Graph throttled a call"))
            .cloned()
    });
    for field in ["status=429", "retry_after=", "method=", "path=/v1.0/"] {
        assert!(throttled.contains(field), "{field} in {throttled}");
    }
    assert!(!throttled.contains('?'), "no query string: {throttled}");
    // The periodic resync says why it ran, waits the throttling out where it stopped, and
    // completes once Graph answers again.
    wait_for("the throttled periodic resync waiting", || {
        logged(&stderr, |l| {
            l.contains("INFO") && l.contains("a throttled read waits")
        })
        .then_some(())
    });
    let done_before = stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("resync done") && l.contains("periodic"))
        .count();
    sim.set_faults(graph_sim::Faults::default()).unwrap();
    wait_for("the periodic resync done", || {
        let done = stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("resync done") && l.contains("periodic"))
            .count();
        (done > done_before).then_some(())
    });
    assert!(terminate(&mut running).success());

    // stdout: the one contract line, read by `start`, and nothing after it.
    let extra: Vec<String> = running.stdout.try_iter().collect();
    assert!(extra.is_empty(), "stdout after the app: line: {extra:?}");
    // stderr: no token (access tokens are JWTs, `eyJ...`; refresh tokens `simrt.`), no
    // session, no clientState, no message content.
    let client_state = common::client_state(&data);
    let lines = stderr.lock().unwrap().clone();
    assert!(!lines.is_empty());
    for secret in [
        "eyJ",
        "simrt.",
        session.as_str(),
        client_state.as_str(),
        theirs,
        "31337",
        mine,
        "4242",
    ] {
        let found: Vec<&String> = lines.iter().filter(|l| l.contains(secret)).collect();
        assert!(found.is_empty(), "{secret:?} on stderr: {found:?}");
    }
    runtime.block_on(sim.shutdown());
}
