//! The offline demo the `chat` example runs without `--graph`: Graph simulated in this process
//! (`graph-sim`, its state under the data directory), two demo chats with a few messages on a
//! fresh data directory, and a colleague who writes, edits or deletes there now and then.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use graph_chat_app::{demo, App};
//!
//! let data = std::path::Path::new("chat-data");
//! let sim = demo::start_simulator(data).await?;
//! let config = demo::config(&sim, "127.0.0.1:8080".parse()?, data, Duration::from_secs(60));
//! let app = App::start(config).await?;
//! demo::seed(&app, &sim).await?;
//! let sim = Arc::new(sim);
//! tokio::spawn(demo::colleague(Arc::clone(&sim), Duration::from_secs(5)));
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use graph_chat_webhook::notifications::model::ChatMessage;
use graph_chat_webhook::notifications::outbound::{
    created_chat, ChatMember, CreateChat, MessageRequest,
};
use graph_chat_webhook::JwksSource;
use graph_sim::{Sender, Simulator};
use serde::Deserialize;

use crate::sync::{GraphSync, ResyncReason};
use crate::{App, Config};

/// The demo's colleagues, who write through the simulator: Adele, in both demo chats.
pub const ADELE: (&str, &str) = ("5b7ac4a3-7c1c-4cd3-9a8e-2f5e0b6e1c01", "Adele Vance");
/// Alex, in the group chat only.
pub const ALEX: (&str, &str) = ("8d0f6b51-3b9e-4a57-9a4e-7e1b3c2d4e02", "Alex Wilber");

/// The setting that records the demo was created (the group chat's id).
const SEEDED: &str = "demo";

/// What the colleague writes, in turn.
const LINES: [&str; 6] = [
    "Can you take a look at the numbers?",
    "Pushed a fix for the login bug.",
    "<p>Reminder: <b>stand-up</b> in 10 minutes</p>",
    "The build is green again.",
    "Who has the slides from Tuesday?",
    "<p>Release notes: <i>draft 2</i> is up</p>",
];

/// Why the demo could not be set up. Its text says which step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DemoError(String);

fn failed(e: impl std::fmt::Display) -> DemoError {
    DemoError(e.to_string())
}

/// Starts the simulator on its own loopback port, its state kept in `graph-sim.json` under
/// `data` (a restart on the same directory is the same Graph).
pub async fn start_simulator(data: &Path) -> Result<Simulator, DemoError> {
    Simulator::start(graph_sim::Config {
        state_path: Some(data.join("graph-sim.json")),
        accept_any_token: true,
        ..graph_sim::Config::default()
    })
    .await
    .map_err(|e| DemoError(format!("cannot start the simulator: {e}")))
}

/// The app's configuration against `sim`: its identity, its JWKS, and a token it accepts.
pub fn config(sim: &Simulator, listen: SocketAddr, data: &Path, resync_every: Duration) -> Config {
    let identity = sim.identity();
    Config {
        listen,
        data: data.to_owned(),
        resync_every,
        graph: sim.base_url(),
        token: "offline".into(),
        tenant_id: identity.tenant_id,
        app_id: identity.app_id,
        user_id: identity.user_id,
        jwks: JwksSource::Url(identity.jwks_url),
        public_url: None,
        trust_proxy: false,
        frame_ancestors: None,
        event_retention: crate::store::EVENT_RETENTION,
        key_file: None,
    }
}

fn sender((id, name): (&str, &str)) -> Sender {
    Sender {
        id: id.to_owned(),
        display_name: name.to_owned(),
    }
}

/// Creates a chat through Graph, as the guide does (step 2); its id.
async fn create_chat(sync: &GraphSync, request: CreateChat) -> Result<String, DemoError> {
    let answer = sync
        .send(request.build().map_err(failed)?)
        .await
        .map_err(failed)?;
    if !answer.is_success() {
        return Err(DemoError(format!(
            "creating a chat: Graph answered {}",
            answer.status
        )));
    }
    let chat = created_chat(&answer.body).map_err(failed)?;
    let id: Option<&str> = chat.id.as_deref();
    id.map(str::to_owned)
        .ok_or_else(|| DemoError("the created chat has no id".into()))
}

/// On a data directory the demo has not seeded yet: a group chat ("Launch plan", the user,
/// Adele and Alex) and a one-on-one chat with Adele, with a few messages, created through Graph
/// as the guide does (steps 2 and 3), the colleagues' through the simulator; then the app reads
/// them. Returns whether it seeded (false when it had already).
pub async fn seed(app: &App, sim: &Simulator) -> Result<bool, DemoError> {
    let sync = app.sync();
    let seeded = sync
        .store()
        .call(|store| store.setting(SEEDED))
        .await
        .map_err(failed)?;
    if seeded.is_some() {
        return Ok(false);
    }
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
        CreateChat::one_on_one(ChatMember::owner(me), ChatMember::owner(ADELE.0)),
    )
    .await?;
    let say = |chat: &str, who: (&str, &str), text: &str, kind: &str| {
        sim.colleague_writes(chat, sender(who), text, kind)
            .map(|_| ())
            .map_err(failed)
    };
    say(
        &group,
        ADELE,
        "Morning! The draft of the launch post is ready for review.",
        "text",
    )?;
    let mine = MessageRequest::send(group.clone(), "Thanks, reading it now.")
        .build()
        .map_err(failed)?;
    let answer = sync.send(mine).await.map_err(failed)?;
    if !answer.is_success() {
        return Err(DemoError(format!(
            "sending: Graph answered {}",
            answer.status
        )));
    }
    say(
        &group,
        ALEX,
        "<p>Looks <b>great</b>. Two notes:</p><ul><li>shorter title</li><li>link the <a href=\"https://learn.microsoft.com/graph/teams-changenotifications-chatmessage\">docs</a></li></ul>",
        "html",
    )?;
    say(&direct, ADELE, "Lunch at noon?", "text")?;
    sync.store()
        .call(move |store| store.set_setting(SEEDED, &group))
        .await
        .map_err(failed)?;
    sync.resync_all(ResyncReason::Seeded)
        .await
        .map_err(failed)?;
    Ok(true)
}

/// The ids of `who`'s messages in `chat` that are not deleted, oldest first.
fn messages_of(sim: &Simulator, chat: &str, who: &str) -> Vec<String> {
    let truth = sim.truth(chat).unwrap_or_default();
    truth
        .iter()
        .filter_map(|m| ChatMessage::deserialize(m).ok())
        .filter(|m| !m.is_deleted())
        .filter(|m| {
            m.from
                .get()
                .and_then(|f| f.user.get())
                .and_then(|u| u.id.as_deref())
                == Some(who)
        })
        .filter_map(|m| m.id.as_deref().map(str::to_owned))
        .collect()
}

/// The simulated colleague, every `every` until the task is dropped: writes most of the time,
/// sometimes edits or deletes one of their own messages, in the simulator's chats, each in
/// turn, and only where they are a member (Adele in the one-on-one chat, either in the group
/// chat). What fails is reported on stderr, and the colleague carries on.
pub async fn colleague(sim: Arc<Simulator>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    for n in 0usize.. {
        tick.tick().await;
        let chats = sim.chat_ids();
        let Some(chat) = chats.get(n % chats.len().max(1)) else {
            continue;
        };
        let who = if chat.ends_with("@unq.gbl.spaces") || (n / 2) % 2 == 0 {
            ADELE
        } else {
            ALEX
        };
        let theirs = messages_of(&sim, chat, who.0);
        let result = match (n % 7, theirs.last(), theirs.first()) {
            (3, Some(last), _) => {
                sim.colleague_edits(chat, last, "(edited) On it, give me an hour.")
            }
            (6, _, Some(first)) if theirs.len() > 2 => sim.colleague_deletes(chat, first),
            _ => {
                let line = LINES[n % LINES.len()];
                let kind = if line.starts_with('<') {
                    "html"
                } else {
                    "text"
                };
                sim.colleague_writes(chat, sender(who), line, kind)
                    .map(|_| ())
            }
        };
        if let Err(e) = result {
            eprintln!("chat: the colleague could not write: {e}");
        }
    }
}
