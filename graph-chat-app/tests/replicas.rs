//! Copies of the app behind one public URL (`docs/contracts.md#copies-of-the-app`): a small
//! round-robin TCP proxy on loopback, written here, is the `--public-url`; Graph delivers to it,
//! so any copy may receive any notification, and a person's requests may reach any copy.
//!
//! Everything runs on loopback, bounded in count and time.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{agent_with_session, sign_in_cookie, sim_config, wait_for, TempDir};
use graph_chat_app::{App, Config};
use graph_chat_webhook::JwksSource;
use graph_sim::{Sender, Simulator};
use serde_json::Value;

/// A round-robin TCP proxy on loopback: each connection it accepts goes to the next of its
/// backends that accepts one (a backend that refuses, a copy killed, is skipped), bytes copied
/// both ways until either side closes.
struct Proxy {
    addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    /// Connections taken by each backend, by address.
    taken: Arc<Mutex<Vec<(SocketAddr, usize)>>>,
}

impl Proxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let backends: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let taken: Arc<Mutex<Vec<(SocketAddr, usize)>>> = Arc::default();
        let next = Arc::new(AtomicUsize::new(0));
        let (b, t) = (Arc::clone(&backends), Arc::clone(&taken));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (b, t, next) = (Arc::clone(&b), Arc::clone(&t), Arc::clone(&next));
                std::thread::spawn(move || {
                    let all = b.lock().unwrap().clone();
                    let start = next.fetch_add(1, Ordering::Relaxed);
                    let upstream = (0..all.len()).find_map(|i| {
                        let backend = all[(start + i) % all.len()];
                        TcpStream::connect_timeout(&backend, Duration::from_secs(2))
                            .ok()
                            .map(|s| (backend, s))
                    });
                    let Some((backend, upstream)) = upstream else {
                        return;
                    };
                    {
                        let mut t = t.lock().unwrap();
                        match t.iter_mut().find(|(a, _)| *a == backend) {
                            Some((_, n)) => *n += 1,
                            None => t.push((backend, 1)),
                        }
                    }
                    pipe(client, upstream);
                });
            }
        });
        Self {
            addr,
            backends,
            taken,
        }
    }

    /// The public URL: `http://127.0.0.1:PORT/`.
    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn set_backends(&self, backends: Vec<SocketAddr>) {
        *self.backends.lock().unwrap() = backends;
    }

    /// Connections backend `addr` took.
    fn taken_by(&self, addr: SocketAddr) -> usize {
        self.taken
            .lock()
            .unwrap()
            .iter()
            .find(|(a, _)| *a == addr)
            .map_or(0, |(_, n)| *n)
    }
}

/// Copies bytes both ways; when one side ends, the other is shut down.
fn pipe(client: TcpStream, upstream: TcpStream) {
    let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let up = std::thread::spawn(move || copy_then_close(c2, u2));
    copy_then_close(upstream, client);
    let _ = up.join();
}

fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// The address an app listens at, from its URL.
fn addr_of(app: &App) -> SocketAddr {
    app.url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// The app's configuration against `sim`, its state under `data`, behind `public_url`.
fn config(sim: &Simulator, data: std::path::PathBuf, public_url: Option<String>) -> Config {
    let identity = sim.identity();
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data,
        resync_every: Duration::from_secs(86_400),
        graph: sim.base_url(),
        tenant_id: identity.tenant_id,
        client_id: identity.app_id.clone(),
        app_id: identity.app_id,
        client_secret: None,
        authority: sim.base_url().trim_end_matches('/').to_owned(),
        jwks: JwksSource::Url(identity.jwks_url),
        public_url,
        trust_proxy: false,
        frame_ancestors: None,
        event_retention: graph_chat_app::store::EVENT_RETENTION,
        key_file: None,
        renew_every: None,
        database: None,
    }
}

/// Graph's live subscriptions of `user`'s, as it lists them.
fn subscriptions(sim: &Simulator, user: &str) -> Vec<Value> {
    let token = common::token_for(sim, user);
    let mut answer = common::agent()
        .get(&format!("{}v1.0/subscriptions", sim.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    let body: Value = serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
    body["value"].as_array().unwrap().clone()
}

#[test]
fn against_a_local_simulator_a_loopback_public_url_is_where_graph_delivers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = runtime.block_on(Simulator::start(sim_config())).unwrap();
    let user = sim.identity().user_id;
    let chat = common::create_chat(&common::agent(), &sim, "Project");
    let dir = TempDir::new("public");
    let proxy = Proxy::start();
    let app = runtime
        .block_on(App::start(config(
            &sim,
            dir.path().join("data"),
            Some(proxy.url()),
        )))
        .unwrap();
    proxy.set_backends(vec![addr_of(&app)]);

    // Signed in through the public URL (the browser comes back there from the identity platform).
    let agent = agent_with_session(&sign_in_cookie(&proxy.url(), &user));
    wait_for("the person's two subscriptions", || {
        let all = subscriptions(&sim, &user);
        (all.len() == 2).then_some(all)
    });
    for s in subscriptions(&sim, &user) {
        assert_eq!(
            s["notificationUrl"],
            format!("{}notifications", proxy.url()).as_str(),
            "{s}"
        );
        assert_eq!(
            s["lifecycleNotificationUrl"],
            format!("{}lifecycle", proxy.url()).as_str(),
            "{s}"
        );
    }
    // A colleague's message comes to the page through the proxy: Graph knows no other address.
    let before = proxy.taken_by(addr_of(&app));
    let said = sim
        .colleague_writes(
            &chat,
            Sender {
                id: common::COLLEAGUE.0.into(),
                display_name: common::COLLEAGUE.1.into(),
            },
            "through the proxy",
            "text",
        )
        .unwrap();
    let id = said["id"].as_str().unwrap().to_owned();
    wait_for("the message on the page", || {
        common::messages(&agent, &proxy.url(), &chat)
            .iter()
            .any(|m| m["id"] == id.as_str())
            .then_some(())
    });
    assert!(proxy.taken_by(addr_of(&app)) > before);
    runtime.block_on(app.shutdown());
    runtime.block_on(sim.shutdown());
}
