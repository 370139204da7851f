//! The `chat` example from outside, through its contract (`docs/contracts.md#the-chat-app`): no
//! arguments is offline with a demo; `--graph` takes a simulator started on its own; SIGTERM
//! exits 0; after `kill -9` and a restart on the same `--data`, nothing accepted is lost.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    chats, example_path, expected_view, get, messages, observed_view, wait_for, TempDir, PATIENCE,
};
use serde_json::Value;

struct Running {
    child: Child,
    app: String,
    graph: Option<String>,
}

/// Starts `chat` with `args` and reads its `app:` (and `graph:`) lines.
fn start(args: &[&str], embedded: bool) -> Running {
    let mut child = Command::new(example_path("chat"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
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
    Running { child, app, graph }
}

fn terminate(mut running: Running) -> std::process::ExitStatus {
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
    let running = start(
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
    let agent = common::agent();
    let app = running.app.clone();
    let graph = running.graph.clone().unwrap();
    // Listed and subscribed before it printed its URL.
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
    let (status, page) = (
        200,
        agent
            .get(&app)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    );
    assert_eq!(status, 200);
    assert!(page.contains("id=\"compose\""));
    assert!(terminate(running).success());
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
    let agent = common::agent();
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

    let restarted = start(
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
    let me = get(&agent, &format!("{graph}_sim/identity")).1["userId"]
        .as_str()
        .unwrap()
        .to_owned();
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
    assert!(terminate(restarted).success());
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
    let running = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--graph",
            &base,
            "--tenant-id",
            &identity.tenant_id,
            "--app-id",
            &identity.app_id,
            "--user-id",
            &identity.user_id,
        ],
        false,
    );
    assert!(running.graph.is_none());
    // No demo against a Graph of its own; its subscriptions are in place.
    assert_eq!(sim.subscription_ids().len(), 2);
    assert!(chats(&common::agent(), &running.app).is_empty());
    assert!(terminate(running).success());
    runtime.block_on(sim.shutdown());
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for args in [
        &["--listen", "nowhere"][..],
        &["--token", "t"][..],
        &["--graph", "http://127.0.0.1:9/"][..],
        &["--resync-every", "soon"][..],
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
