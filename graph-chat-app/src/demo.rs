//! The offline demo the `chat` example runs without `--graph`: Graph simulated in this process
//! (`graph-sim`, its state under the data directory, its identity platform checking tokens as
//! Entra's would), two demo chats with a few messages on a fresh data directory, and a
//! colleague who writes, edits or deletes there now and then. The page's sign-in goes to the
//! simulator's list of users: one click signs in.
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
//! demo::seed(&sim, &config).await?;
//! let app = App::start(config).await?;
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
    created_chat, ChatMember, CreateChat, HttpRequest, MessageRequest,
};
use graph_chat_webhook::tokens::{Authority, OAuthClient, TokenSet};
use graph_chat_webhook::{GraphClient, GraphResponse, JwksSource};
use graph_sim::{Sender, Simulator};
use serde::Deserialize;

use crate::{Config, SCOPES};

/// The demo's colleagues, who write through the simulator: Adele, in both demo chats.
pub const ADELE: (&str, &str) = ("5b7ac4a3-7c1c-4cd3-9a8e-2f5e0b6e1c01", "Adele Vance");
/// Alex, in the group chat only.
pub const ALEX: (&str, &str) = ("8d0f6b51-3b9e-4a57-9a4e-7e1b3c2d4e02", "Alex Wilber");

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
/// `data` (a restart on the same directory is the same Graph), checking tokens as the identity
/// platform does. Its sign-in takes the app's loopback `http://` redirect URIs.
pub async fn start_simulator(data: &Path) -> Result<Simulator, DemoError> {
    start_simulator_for(data, None).await
}

/// The same, for an app behind `public_url` too: its sign-in also takes
/// `PUBLIC_URL/auth/callback` as a redirect URI.
pub async fn start_simulator_for(
    data: &Path,
    public_url: Option<&str>,
) -> Result<Simulator, DemoError> {
    let redirect_uris = public_url
        .map(|u| vec![format!("{}/auth/callback", u.trim_end_matches('/'))])
        .unwrap_or_default();
    Simulator::start(graph_sim::Config {
        state_path: Some(data.join("graph-sim.json")),
        redirect_uris,
        ..graph_sim::Config::default()
    })
    .await
    .map_err(|e| DemoError(format!("cannot start the simulator: {e}")))
}

/// The app's configuration against `sim`: its identity, its JWKS, and its identity platform
/// (people sign in there).
pub fn config(sim: &Simulator, listen: SocketAddr, data: &Path, resync_every: Duration) -> Config {
    let identity = sim.identity();
    let base = sim.base_url().trim_end_matches('/').to_owned();
    Config {
        listen,
        data: data.to_owned(),
        resync_every,
        graph: sim.base_url(),
        tenant_id: identity.tenant_id,
        client_id: identity.app_id.clone(),
        app_id: identity.app_id,
        client_secret: None,
        authority: base,
        jwks: JwksSource::Url(identity.jwks_url),
        public_url: None,
        trust_proxy: false,
        frame_ancestors: None,
        event_retention: crate::store::EVENT_RETENTION,
        key_file: None,
        database: None,
    }
}

/// Signs `user` (an id or a user principal name) in at the identity platform `authority` of
/// `tenant` without a browser, as a client whose redirect URI is a loopback `http://` one: the
/// authorize endpoint redirects at once for a `login_hint` (a simulator's does), and the code
/// in its redirect is redeemed here. Blocking. For the demo's own writes and for tests.
pub fn sign_in_as(
    authority: &str,
    tenant: &str,
    client_id: &str,
    user: &str,
) -> Result<TokenSet, DemoError> {
    let authority = Authority::new(authority, tenant).map_err(failed)?;
    let oauth = OAuthClient::new(
        authority,
        client_id,
        None,
        Some("http://127.0.0.1/auth/callback"),
    )
    .map_err(failed)?;
    let sign_in = oauth.begin_sign_in(&SCOPES, Some(user));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let response = agent
        .get(sign_in.url.as_str())
        .call()
        .map_err(|e| DemoError(format!("signing in: {e}")))?;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|l| url::Url::parse(l).ok())
        .ok_or_else(|| {
            DemoError(format!(
                "signing in: the authorize endpoint answered {} without a redirect",
                response.status()
            ))
        })?;
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("state").as_deref() != Some(sign_in.state.as_str()) {
        return Err(DemoError("signing in: the state does not match".into()));
    }
    let code = param("code").ok_or_else(|| DemoError("signing in: no code".into()))?;
    oauth
        .redeem_code(&code, &sign_in.pkce_verifier)
        .map_err(failed)
}

/// One call to Graph, off the async threads.
async fn send(graph: &GraphClient, request: HttpRequest) -> Result<GraphResponse, DemoError> {
    let graph = graph.clone();
    tokio::task::spawn_blocking(move || graph.send(&request))
        .await
        .map_err(failed)?
        .map_err(failed)
}

fn sender((id, name): (&str, &str)) -> Sender {
    Sender {
        id: id.to_owned(),
        display_name: name.to_owned(),
    }
}

/// Creates a chat through Graph, as the guide does (step 2); its id.
async fn create_chat(graph: &GraphClient, request: CreateChat) -> Result<String, DemoError> {
    let answer = send(graph, request.build().map_err(failed)?).await?;
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

/// On a simulator without chats yet (a fresh data directory): a group chat ("Launch plan",
/// the simulator's first user, Adele and Alex) and a one-on-one chat with Adele, with a few
/// messages, created through Graph as the guide does (steps 2 and 3) as that user (signed in
/// with [`sign_in_as`]), the colleagues' through the simulator. The app reads them when that
/// user signs in. Returns whether it seeded (false when the simulator had chats already).
pub async fn seed(sim: &Simulator, config: &Config) -> Result<bool, DemoError> {
    if !sim.chat_ids().is_empty() {
        return Ok(false);
    }
    let me = sim.identity().user_id;
    let (authority, tenant, client, user) = (
        config.authority.clone(),
        config.tenant_id.clone(),
        config.client_id.clone(),
        me.clone(),
    );
    let tokens =
        tokio::task::spawn_blocking(move || sign_in_as(&authority, &tenant, &client, &user))
            .await
            .map_err(failed)??;
    let graph = GraphClient::new(&config.graph, tokens.access_token.secret());
    drop(tokens);
    let group = create_chat(
        &graph,
        CreateChat::group([
            ChatMember::owner(me.clone()),
            ChatMember::owner(ADELE.0),
            ChatMember::owner(ALEX.0),
        ])
        .topic("Launch plan"),
    )
    .await?;
    let direct = create_chat(
        &graph,
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
    let answer = send(&graph, mine).await?;
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
