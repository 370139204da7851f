//! Microsoft Graph on loopback, for Teams chats and chat messages: the `graph-sim` contract of the
//! project's DESIGN.md (section 9).
//!
//! A [`Simulator`] serves Graph's API under `/v1.0/` and `/beta/` for what a Teams-chat app calls
//! (subscriptions, chats, messages, viewpoints, hosted contents), validates notification URLs with
//! the handshake, and delivers change and lifecycle notifications the way Graph does: encrypted
//! for the subscriber's certificate when they include resource data, with validation tokens signed
//! by a key whose JWKS it serves. Faults (drops, duplicates, reordering, delays, throttling,
//! failed attempts) come on demand and are deterministic under a seed.
//!
//! ```no_run
//! # async fn run() -> Result<(), graph_sim::SimError> {
//! use graph_sim::{Config, Sender, Simulator};
//! let sim = Simulator::start(Config::default()).await?;
//! println!("Graph at {}", sim.base_url()); // point request values at it with `with_base`
//! let chat_id = sim.chat_ids().first().cloned().unwrap_or_default();
//! # let _ = chat_id;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Test-only: any bearer token is accepted, state lives in memory (or in one JSON file), and the
//! signing key is the simulator's own.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod deliver;
mod http;
mod sim;
mod state;
mod util;

use sim::Shared;

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

/// A running simulator. Dropping it stops serving and delivering.
pub struct Simulator {
    shared: Arc<Shared>,
    server: Option<tokio::task::JoinHandle<()>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds `config.listen`, loads the state file if there is one, and serves in a tokio task;
    /// returns once it accepts connections.
    pub async fn start(config: Config) -> Result<Simulator, SimError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(SimError::Bind)?;
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let shared = Shared::new(config, addr)?;
        let server = http::serve(shared.clone(), listener);
        let ticker = sim::spawn_ticker(shared.clone());
        Ok(Simulator {
            shared,
            server: Some(server),
            ticker: Some(ticker),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT/`: give it to `HttpRequest::with_base`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The tenant, app, user and JWKS URL.
    pub fn identity(&self) -> Identity {
        self.shared.identity()
    }

    /// The JWKS bytes (also served at `/common/discovery/v2.0/keys`).
    pub fn jwks(&self) -> Vec<u8> {
        self.shared.jwks.clone()
    }

    /// Another member writes in a chat (`POST /_sim/chats/{id}/messages`): returns the
    /// chatMessage, and notifies as Graph would.
    pub fn colleague_writes(
        &self,
        chat_id: &str,
        from: Sender,
        content: &str,
        content_type: &str,
    ) -> Result<serde_json::Value, SimError> {
        self.shared
            .colleague_writes(chat_id, &from, content, content_type)
            .map_err(Into::into)
    }

    /// Edits a message's content as its sender would (`PATCH /_sim/chats/{id}/messages/{id}`).
    pub fn colleague_edits(
        &self,
        chat_id: &str,
        message_id: &str,
        content: &str,
    ) -> Result<(), SimError> {
        self.shared
            .colleague_edits(chat_id, message_id, content)
            .map_err(Into::into)
    }

    /// Deletes a message (soft, as Teams does; `DELETE /_sim/chats/{id}/messages/{id}`).
    pub fn colleague_deletes(&self, chat_id: &str, message_id: &str) -> Result<(), SimError> {
        self.shared
            .soft_delete(chat_id, message_id, None, true)
            .map_err(Into::into)
    }

    /// Sets a DLP verdict on a message (`policyViolation.dlpAction`: `None`, `NotifySender`,
    /// `BlockAccess`, `BlockAccessExternal`); notifies `updated`.
    pub fn policy_violation(
        &self,
        chat_id: &str,
        message_id: &str,
        dlp_action: &str,
    ) -> Result<(), SimError> {
        self.shared
            .policy_violation(chat_id, message_id, dlp_action)
            .map_err(Into::into)
    }

    /// Replaces the faults (`POST /_sim/faults`); `Faults::default()` resets. Restarts the
    /// per-delivery sequence, so the same schedule of writes replays the same decisions.
    pub fn set_faults(&self, faults: Faults) -> Result<(), SimError> {
        self.shared.set_faults(faults).map_err(Into::into)
    }

    /// Expires a subscription now, silently: it is gone (GET 404) and delivers nothing more.
    pub fn expire_subscription(&self, id: &str) -> Result<(), SimError> {
        self.shared.expire(id).map_err(Into::into)
    }

    /// Removes a subscription at once, then sends `subscriptionRemoved` to its lifecycle URL.
    pub fn remove_subscription(&self, id: &str) -> Result<(), SimError> {
        self.shared.remove(id).map_err(Into::into)
    }

    /// Every message of a chat as held now, deleted ones included, oldest first.
    pub fn truth(&self, chat_id: &str) -> Result<Vec<serde_json::Value>, SimError> {
        self.shared.truth(chat_id).map_err(Into::into)
    }

    /// Delivery counts since start.
    pub fn deliveries(&self) -> Deliveries {
        self.shared.deliveries()
    }

    /// The ids of every chat, oldest first.
    pub fn chat_ids(&self) -> Vec<String> {
        self.shared.chat_ids()
    }

    /// The ids of the live subscriptions, oldest first.
    pub fn subscription_ids(&self) -> Vec<String> {
        self.shared.subscription_ids()
    }

    /// Stops serving and delivering, and waits for the server task to end.
    pub async fn shutdown(mut self) {
        self.shared.stop();
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}
