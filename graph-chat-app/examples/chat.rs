//! The Teams-embedding guide's app: a chat page, live, over a server that subscribes, receives,
//! decrypts and caches ([`graph_chat_app`]).
//!
//! ```text
//! chat [--listen ADDR] [--data DIR] [--colleague-every SECONDS] [--resync-every SECONDS]
//!      [--graph URL --tenant-id T --app-id A --user-id U [--jwks URL]
//!       [--token TOKEN | --token-file FILE] [--public-url URL] [--key PEM]]
//! ```
//!
//! * No `--graph`: everything offline. Graph is a `graph-sim` in this process on its own
//!   loopback port (its state under `--data` too), a demo chat is created on a fresh `--data`,
//!   and a colleague writes, edits or deletes there every `--colleague-every` seconds (default
//!   5; 0 = never).
//! * `--graph URL`: a Graph at URL: a `graph-sim` started on its own (same `--tenant-id`,
//!   `--app-id`, `--user-id`; the JWKS defaults to its `/common/discovery/v2.0/keys`), or
//!   Microsoft Graph (`https://graph.microsoft.com`, with a delegated `--token` for the user, the
//!   `--public-url` Graph reaches this app at, and the `--key` PEM, private key and certificate,
//!   that notifications are encrypted for; the JWKS defaults to the identity platform's).
//! * `--listen` defaults to `127.0.0.1:8080`, `--data` to `./chat-data`, `--resync-every` to 60.
//!
//! Once it serves, with its chats listed and its subscriptions in place, it prints
//! `app: http://HOST:PORT/` and, with the embedded simulator, `graph: http://HOST:PORT/`, then
//! serves until SIGTERM or Ctrl-C (exit 0). Bad arguments: exit 2.

#[path = "../../examples/common/mod.rs"]
mod common;
#[path = "../../examples/common/signal.rs"]
mod signal;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use graph_chat_app::sync::Sync;
use graph_chat_app::{App, Config};
use graph_chat_notifications::outbound::{created_chat, ChatMember, CreateChat, MessageRequest};
use graph_chat_notifications::Cloud;
use graph_chat_webhook::JwksSource;
use graph_sim::{Sender, Simulator};

const USAGE: &str = "usage: chat [--listen ADDR] [--data DIR] [--colleague-every SECONDS] \
[--resync-every SECONDS] [--graph URL --tenant-id T --app-id A --user-id U [--jwks URL] \
[--token TOKEN | --token-file FILE] [--public-url URL] [--key PEM]]";

/// The demo's colleagues, who write through the simulator.
const ADELE: (&str, &str) = ("5b7ac4a3-7c1c-4cd3-9a8e-2f5e0b6e1c01", "Adele Vance");
const ALEX: (&str, &str) = ("8d0f6b51-3b9e-4a57-9a4e-7e1b3c2d4e02", "Alex Wilber");

struct Args {
    listen: SocketAddr,
    data: PathBuf,
    colleague_every: Option<u64>,
    resync_every: u64,
    graph: Option<String>,
    tenant_id: Option<String>,
    app_id: Option<String>,
    user_id: Option<String>,
    jwks: Option<String>,
    token: Option<String>,
    public_url: Option<String>,
    key: Option<PathBuf>,
}

fn seconds(options: &common::Options, name: &str) -> Result<Option<u64>, String> {
    options
        .one(name)?
        .map(|s| {
            s.parse()
                .map_err(|_| format!("{name} takes whole seconds, got {s:?}"))
        })
        .transpose()
}

fn parse() -> Result<Args, String> {
    let options = common::Options::parse(
        std::env::args().skip(1),
        &[
            "--listen",
            "--data",
            "--colleague-every",
            "--resync-every",
            "--graph",
            "--tenant-id",
            "--app-id",
            "--user-id",
            "--jwks",
            "--token",
            "--token-file",
            "--public-url",
            "--key",
        ],
        &[],
    )?;
    if !options.positional.is_empty() {
        return Err("unexpected arguments".into());
    }
    let listen = options
        .one("--listen")?
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| format!("--listen takes HOST:PORT, got {listen:?}"))?;
    let token = match (options.one("--token")?, options.one("--token-file")?) {
        (Some(_), Some(_)) => return Err("--token and --token-file are one or the other".into()),
        (Some(t), None) => Some(t),
        (None, Some(f)) => Some(
            std::fs::read_to_string(&f)
                .map_err(|e| format!("--token-file {f}: {e}"))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let args = Args {
        listen,
        data: options
            .one("--data")?
            .map_or_else(|| PathBuf::from("chat-data"), PathBuf::from),
        colleague_every: seconds(&options, "--colleague-every")?,
        resync_every: seconds(&options, "--resync-every")?.unwrap_or(60),
        graph: options.one("--graph")?,
        tenant_id: options.one("--tenant-id")?,
        app_id: options.one("--app-id")?,
        user_id: options.one("--user-id")?,
        jwks: options.one("--jwks")?,
        token,
        public_url: options.one("--public-url")?,
        key: options.one("--key")?.map(PathBuf::from),
    };
    if args.graph.is_some() {
        for (name, value) in [
            ("--tenant-id", &args.tenant_id),
            ("--app-id", &args.app_id),
            ("--user-id", &args.user_id),
        ] {
            if value.is_none() {
                return Err(format!("--graph needs {name}"));
            }
        }
    } else {
        for (name, given) in [
            ("--jwks", args.jwks.is_some()),
            ("--token", args.token.is_some()),
            ("--public-url", args.public_url.is_some()),
            ("--key", args.key.is_some()),
        ] {
            if given {
                return Err(format!("{name} goes with --graph"));
            }
        }
    }
    Ok(args)
}

/// Whether `url` is one of Microsoft's Graph hosts (rather than a simulator).
fn microsoft_cloud(url: &str) -> Option<Cloud> {
    let url = url.trim_end_matches('/');
    Cloud::ALL.into_iter().find(|c| c.graph_url() == url)
}

/// On a fresh data directory: a group chat and a one-on-one chat with a few messages, created
/// through Graph as the guide does (step 2 and 3), the colleagues' through the simulator.
async fn create_chat(sync: &Sync, request: CreateChat) -> Result<String, String> {
    let request = request.build().map_err(|e| e.to_string())?;
    let answer = sync.send(request).await.map_err(|e| e.to_string())?;
    if !answer.is_success() {
        return Err(format!("creating a chat: Graph answered {}", answer.status));
    }
    let chat = created_chat(&answer.body).map_err(|e| e.to_string())?;
    let id: Option<&str> = chat.id.as_deref();
    id.map(str::to_owned)
        .ok_or_else(|| "the created chat has no id".to_string())
}

async fn create_demo(sync: &Sync, sim: &Simulator) -> Result<(), String> {
    let me = sync.user_id().to_owned();
    let group = create_chat(
        sync,
        CreateChat::group([
            ChatMember::owner(me.clone()),
            ChatMember::owner(ADELE.0),
            ChatMember::owner(ALEX.0),
        ])
        .topic("Launch plan"),
    )
    .await?;
    let direct = create_chat(
        sync,
        CreateChat::one_on_one(ChatMember::owner(me.clone()), ChatMember::owner(ADELE.0)),
    )
    .await?;
    let colleague = |(id, name): (&str, &str)| Sender {
        id: id.to_owned(),
        display_name: name.to_owned(),
    };
    let say = |chat: &str, who: (&str, &str), text: &str, kind: &str| {
        sim.colleague_writes(chat, colleague(who), text, kind)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    say(
        &group,
        ADELE,
        "Morning! The draft of the launch post is ready for review.",
        "text",
    )?;
    let mine = MessageRequest::send(group.clone(), "Thanks, reading it now.")
        .build()
        .map_err(|e| e.to_string())?;
    let answer = sync.send(mine).await.map_err(|e| e.to_string())?;
    if !answer.is_success() {
        return Err(format!("sending: Graph answered {}", answer.status));
    }
    say(
        &group,
        ALEX,
        "<p>Looks <b>great</b>. Two notes:</p><ul><li>shorter title</li><li>link the <a href=\"https://learn.microsoft.com/graph/teams-changenotifications-chatmessage\">docs</a></li></ul>",
        "html",
    )?;
    say(&direct, ADELE, "Lunch at noon?", "text")?;
    sync.store()
        .set_setting("demo", &group)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The simulated colleague: writes most of the time, sometimes edits or deletes one of their
/// own messages, in the demo chats.
async fn colleague(sim: Arc<Simulator>, every: Duration) {
    let lines = [
        "Can you take a look at the numbers?",
        "Pushed a fix for the login bug.",
        "<p>Reminder: <b>stand-up</b> in 10 minutes</p>",
        "The build is green again.",
        "Who has the slides from Tuesday?",
        "<p>Release notes: <i>draft 2</i> is up</p>",
    ];
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    for n in 0usize.. {
        tick.tick().await;
        let chats = sim.chat_ids();
        let Some(chat) = chats.get(n % chats.len().max(1)) else {
            continue;
        };
        // Only members write: Adele in the one-on-one chat (`...@unq.gbl.spaces`), either of
        // them in the group chat.
        let who = if chat.ends_with("@unq.gbl.spaces") || (n / 2) % 2 == 0 {
            ADELE
        } else {
            ALEX
        };
        let theirs: Vec<String> = sim
            .truth(chat)
            .unwrap_or_default()
            .iter()
            .filter(|m| m.pointer("/from/user/id").and_then(|v| v.as_str()) == Some(who.0))
            .filter(|m| m.get("deletedDateTime").is_none_or(|d| d.is_null()))
            .filter_map(|m| m.get("id").and_then(|v| v.as_str()).map(str::to_owned))
            .collect();
        let result = match (n % 7, theirs.last(), theirs.first()) {
            (3, Some(last), _) => {
                sim.colleague_edits(chat, last, "(edited) On it, give me an hour.")
            }
            (6, _, Some(first)) if theirs.len() > 2 => sim.colleague_deletes(chat, first),
            _ => {
                let line = lines[n % lines.len()];
                let kind = if line.starts_with('<') {
                    "html"
                } else {
                    "text"
                };
                let sender = Sender {
                    id: who.0.to_owned(),
                    display_name: who.1.to_owned(),
                };
                sim.colleague_writes(chat, sender, line, kind).map(|_| ())
            }
        };
        if let Err(e) = result {
            eprintln!("chat: the colleague could not write: {e}");
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let stop = signal::shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
    std::fs::create_dir_all(&args.data)
        .map_err(|e| format!("--data {}: {e}", args.data.display()))?;
    let (sim, config) = match &args.graph {
        None => {
            let sim = Simulator::start(graph_sim::Config {
                state_path: Some(args.data.join("graph-sim.json")),
                ..graph_sim::Config::default()
            })
            .await
            .map_err(|e| format!("cannot start the simulator: {e}"))?;
            let identity = sim.identity();
            let config = Config {
                listen: args.listen,
                data: args.data.clone(),
                resync_every: Duration::from_secs(args.resync_every),
                graph: sim.base_url(),
                token: "offline".into(),
                tenant_id: identity.tenant_id,
                app_id: identity.app_id,
                user_id: identity.user_id,
                jwks: JwksSource::Url(identity.jwks_url),
                public_url: None,
                key_file: None,
            };
            (Some(Arc::new(sim)), config)
        }
        Some(graph) => {
            let cloud = microsoft_cloud(graph);
            let jwks = match (&args.jwks, cloud) {
                (Some(j), _) => JwksSource::parse(j),
                (None, Some(cloud)) => JwksSource::for_cloud(cloud),
                (None, None) => JwksSource::Url(format!(
                    "{}/common/discovery/v2.0/keys",
                    graph.trim_end_matches('/')
                )),
            };
            let token = match (&args.token, cloud) {
                (Some(t), _) => t.clone(),
                (None, Some(_)) => {
                    return Err("Microsoft Graph needs a delegated --token or --token-file".into())
                }
                (None, None) => "graph-sim".into(),
            };
            if cloud.is_some() && args.public_url.is_none() {
                return Err(
                    "Microsoft Graph needs --public-url, the https URL it reaches this app at"
                        .into(),
                );
            }
            let config = Config {
                listen: args.listen,
                data: args.data.clone(),
                resync_every: Duration::from_secs(args.resync_every),
                graph: graph.clone(),
                token,
                tenant_id: args.tenant_id.clone().unwrap_or_default(),
                app_id: args.app_id.clone().unwrap_or_default(),
                user_id: args.user_id.clone().unwrap_or_default(),
                jwks,
                public_url: args.public_url.clone(),
                key_file: args.key.clone(),
            };
            (None, config)
        }
    };
    let app = App::start(config).await.map_err(|e| e.to_string())?;
    if let Some(sim) = &sim {
        let fresh = app
            .store()
            .setting("demo")
            .map_err(|e| e.to_string())?
            .is_none();
        if fresh {
            create_demo(app.sync(), sim).await?;
            app.sync().resync_all().await.map_err(|e| e.to_string())?;
        }
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "app: {}", app.url());
        if let Some(sim) = &sim {
            let _ = writeln!(out, "graph: {}", sim.base_url());
        }
        let _ = out.flush();
    }
    let every = args
        .colleague_every
        .unwrap_or(if sim.is_some() { 5 } else { 0 });
    let colleague_task = match (&sim, every) {
        (Some(sim), n) if n > 0 => Some(tokio::spawn(colleague(
            Arc::clone(sim),
            Duration::from_secs(n),
        ))),
        _ => None,
    };
    stop.await;
    if let Some(task) = colleague_task {
        task.abort();
    }
    app.shutdown().await;
    if let Some(sim) = sim {
        if let Ok(sim) = Arc::try_unwrap(sim) {
            sim.shutdown().await;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(args));
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::from(1)
        }
    }
}
