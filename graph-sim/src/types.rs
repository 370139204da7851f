//! The crate's public values, re-exported at its root: how to run a simulator ([`Config`]), who
//! it is ([`Identity`]), a colleague ([`Sender`]), [`Faults`], delivery counts ([`Deliveries`])
//! and errors ([`SimError`]). A leaf: every other module may import from here, and it imports
//! from none of them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How to run a simulator. Build it with `..Default::default()`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; the default `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// The tenant (`tid` of validation tokens, `tenantId` of notifications).
    pub tenant_id: String,
    /// The subscriber app: `applicationId` of subscriptions, the audience of validation tokens.
    pub app_id: String,
    /// The signed-in user whose delegated calls these are (`from` of sent messages, `creatorId`).
    pub user_id: String,
    /// The signed-in user's `displayName` in chats and messages.
    pub user_display_name: String,
    /// The seed of fault decisions (a `seed` in [`Faults`] overrides it).
    pub seed: u64,
    /// The first retry of a failed delivery waits this long, the n-th `retry_base x 2^(n-1)`.
    pub retry_base: Duration,
    /// If set, chats, messages, hosted contents, viewpoints, subscriptions and the signing key are
    /// saved to this file after every change (write to a temporary file, then rename) and loaded
    /// on start: a restart on the same file is the same Graph.
    pub state_path: Option<PathBuf>,
    /// How long a validation handshake may take (Graph: 10 s). Tests may shorten it.
    pub handshake_timeout: Duration,
    /// `GET /_sim/usage` lists as polled a resource GET more than this many times within
    /// [`poll_window`](Self::poll_window) without a change in between (`--poll-limit`, default
    /// 2, at most [`MAX_POLL_LIMIT`](crate::MAX_POLL_LIMIT)).
    pub poll_limit: u32,
    /// The window of [`poll_limit`](Self::poll_limit) (`--poll-window SECONDS`, default 3600 s;
    /// not zero). Tests may shorten it below a second.
    pub poll_window: Duration,
    /// `true`: any bearer token is accepted and every call acts as [`user_id`](Self::user_id)
    /// (`--accept-any-token`), for tests that do not exercise identity. `false` (the default):
    /// every call to Graph's API needs an access token the simulator issued, unexpired, for
    /// Graph's audience; a delegated token acts as its `oid`.
    pub accept_any_token: bool,
    /// How long the access tokens the simulator issues live (`--token-lifetime SECONDS`,
    /// default 3600 s; not zero).
    pub token_lifetime: Duration,
    /// Redirect URIs the sign-in accepts besides loopback `http://` ones (`--redirect-uri`,
    /// repeated), compared exactly.
    pub redirect_uris: Vec<String>,
    /// The tenant's other users, after [`user_id`](Self::user_id) (default: Adele Vance and
    /// Alex Wilber).
    pub colleagues: Vec<User>,
}

/// The domain of the default users' principal names.
const DOMAIN: &str = "contoso.onmicrosoft.com";

/// The default colleagues: Adele (in both of the chat example's demo chats) and Alex.
fn default_colleagues() -> Vec<User> {
    [
        ("5b7ac4a3-7c1c-4cd3-9a8e-2f5e0b6e1c01", "Adele Vance"),
        ("8d0f6b51-3b9e-4a57-9a4e-7e1b3c2d4e02", "Alex Wilber"),
    ]
    .into_iter()
    .map(|(id, name)| User::new(id, name))
    .collect()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tenant_id: "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1".into(),
            app_id: "11111111-2222-3333-4444-555555555555".into(),
            user_id: "87d349ed-44d7-43e1-9a83-5f2406dee5bd".into(),
            user_display_name: "Megan Bowen".into(),
            seed: 0,
            retry_base: Duration::from_secs(1),
            state_path: None,
            handshake_timeout: Duration::from_secs(10),
            poll_limit: 2,
            poll_window: Duration::from_secs(3600),
            accept_any_token: false,
            token_lifetime: Duration::from_secs(3600),
            redirect_uris: Vec::new(),
            colleagues: default_colleagues(),
        }
    }
}

/// Who the simulator is: what a receiver needs to check its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The tenant tokens are issued for.
    pub tenant_id: String,
    /// The app tokens are addressed to.
    pub app_id: String,
    /// The signed-in user.
    pub user_id: String,
    /// Where the JWKS is served (`{base}common/discovery/v2.0/keys`).
    pub jwks_url: String,
}

/// A user of the tenant: who can sign in, be found by the people picker, and be a chat member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The object id (`oid` of the user's tokens).
    pub id: String,
    /// The display name.
    pub display_name: String,
    /// The sign-in name, such as `AdeleV@contoso.onmicrosoft.com`.
    pub user_principal_name: String,
}

impl User {
    /// A user whose principal name is made from the display name as the default tenant's are:
    /// the first name and the initial of the last, at `contoso.onmicrosoft.com`.
    pub fn new(id: impl Into<String>, display_name: impl Into<String>) -> Self {
        let display_name = display_name.into();
        let mut words = display_name.split_whitespace();
        let first: String = words
            .next()
            .unwrap_or("user")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let initial: String = words
            .last()
            .and_then(|w| w.chars().find(char::is_ascii_alphanumeric))
            .map(|c| c.to_ascii_uppercase().to_string())
            .unwrap_or_default();
        let first = if first.is_empty() {
            "user".into()
        } else {
            first
        };
        Self {
            id: id.into(),
            user_principal_name: format!("{first}{initial}@{DOMAIN}"),
            display_name,
        }
    }
}

/// Another member of a chat, writing as a colleague would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    /// The user's object id.
    pub id: String,
    /// The user's display name.
    pub display_name: String,
}

/// Faults for change and lifecycle notifications (never for validation handshakes), and
/// throttling of API calls. The default is none; `{}` over HTTP resets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Probability (0-1) that a notification is never sent.
    pub drop: f64,
    /// Probability (0-1) that a notification is sent twice.
    pub duplicate: f64,
    /// Probability (0-1) that a delivery is held back up to 500 ms more, so later ones overtake it.
    pub reorder: f64,
    /// Probability (0-1) that a Graph API call answers 429 with `Retry-After`.
    pub throttle: f64,
    /// Every delivery waits a time drawn from `[min, max]` milliseconds first.
    pub delay_ms: Option<[u64; 2]>,
    /// The next `n` delivery attempts fail as a network failure would, and are retried.
    pub fail_first: u64,
    /// The next `n` Graph API calls that change something (any method but `GET`) are carried
    /// out, and their answer is lost: the connection is closed before the answer's body, as a
    /// reset or a timeout would leave it. A client cannot tell whether the call was made.
    pub lose_answers: u64,
    /// The seed of these faults' decisions; [`Config::seed`] when absent.
    pub seed: Option<u64>,
}

/// Delivery counts since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deliveries {
    /// HTTP attempts made (first tries, duplicates and retries), including failed ones.
    pub attempted: u64,
    /// Attempts answered 2xx.
    pub delivered: u64,
    /// Notifications dropped by the `drop` fault, or given up after 4 hours of retries.
    pub dropped: u64,
    /// Extra copies sent by the `duplicate` fault.
    pub duplicated: u64,
    /// Attempts that were retries of a failed one.
    pub retried: u64,
    /// Deliveries answered with a final 4xx (not 408 or 429): not retried.
    pub rejected: u64,
    /// Copies not settled yet (waiting, in flight or between retries).
    pub pending: u64,
}

/// What went wrong with a simulator call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The chat, message or subscription does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The input breaks one of Graph's rules.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Graph would refuse the call (a quota, or acting for someone else).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The listen address could not be bound.
    #[error("cannot listen: {0}")]
    Bind(#[source] std::io::Error),
    /// The state file could not be read, parsed or written.
    #[error("state file: {0}")]
    State(String),
}
