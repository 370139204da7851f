//! Microsoft Graph on loopback, for Teams chats and chat messages. Its contract, what it serves and
//! how it behaves where Graph leaves room, is the `graph-sim` section of the repository's
//! `docs/contracts.md` (`docs/contracts.md#graph-sim`); this crate's `README.md` shows it in use
//! and lists the rules it applies.
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
//! It is the identity platform of its tenant too: the v2.0 authorize endpoint (the authorization
//! code flow with PKCE) and token endpoint on its base URL, for the tenant's users
//! ([`Simulator::users`]). Every call to Graph's API needs an access token it issued (401
//! otherwise), and a delegated token acts as its user (403 on another user's chats); set
//! [`Config::accept_any_token`] to accept any bearer as the configuration's user, or mint a
//! token without the sign-in with [`Simulator::token_for`].
//!
//! Test-only: state lives in memory (or in one JSON file), and the signing key is the
//! simulator's own.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::Arc;

mod deliver;
mod graph;
mod http;
mod state;
mod types;
mod usage;
mod util;

use graph::Graph;

pub use types::{Config, Deliveries, Faults, Identity, Sender, SimError, User};
pub use usage::{CallCount, PolledResource, Usage, MAX_POLL_LIMIT};

/// A running simulator. Dropping it stops serving and delivering.
pub struct Simulator {
    graph: Arc<Graph>,
    server: Option<tokio::task::JoinHandle<()>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.graph.base_url)
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
        let graph = Graph::new(config, addr)?;
        let server = http::serve(graph.clone(), listener);
        let ticker = graph::spawn_ticker(graph.clone());
        Ok(Simulator {
            graph,
            server: Some(server),
            ticker: Some(ticker),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT/`: give it to `HttpRequest::with_base`.
    pub fn base_url(&self) -> String {
        self.graph.base_url.clone()
    }

    /// The tenant, app, user and JWKS URL.
    pub fn identity(&self) -> Identity {
        self.graph.identity()
    }

    /// The JWKS bytes (also served at `/common/discovery/v2.0/keys`).
    pub fn jwks(&self) -> Vec<u8> {
        self.graph.jwks.clone()
    }

    /// The tenant's users (`GET /_sim/users`), the configuration's user first.
    pub fn users(&self) -> Vec<User> {
        self.graph.users().to_vec()
    }

    /// A delegated access token for a user of the tenant (by id or principal name), as the
    /// token endpoint issues after a sign-in, without the sign-in: for tests.
    pub fn token_for(&self, user: &str) -> Result<String, SimError> {
        self.graph.token_for(user).map_err(Into::into)
    }

    /// An app token, as the token endpoint issues for client credentials: for tests.
    pub fn app_token(&self) -> String {
        self.graph.app_token()
    }

    /// Revokes a user's refresh tokens (`POST /_sim/users/{id}/revoke`); access tokens already
    /// issued stay valid until they expire.
    pub fn revoke_user(&self, user: &str) -> Result<(), SimError> {
        self.graph.revoke(user).map_err(Into::into)
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
        self.graph
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
        self.graph
            .colleague_edits(chat_id, message_id, content)
            .map_err(Into::into)
    }

    /// Deletes a message (soft, as Teams does; `DELETE /_sim/chats/{id}/messages/{id}`).
    pub fn colleague_deletes(&self, chat_id: &str, message_id: &str) -> Result<(), SimError> {
        self.graph
            .soft_delete(chat_id, message_id, None, true)
            .map_err(Into::into)
    }

    /// A colleague (`user`, a member of the chat) sets (`set`) or unsets a reaction on a message
    /// (`POST /_sim/chats/{id}/messages/{id}/setReaction` or `unsetReaction`, `{"user",
    /// "reactionType"}`); notifies `updated`, as Graph does.
    pub fn colleague_reacts(
        &self,
        chat_id: &str,
        message_id: &str,
        user: &str,
        reaction_type: &str,
        set: bool,
    ) -> Result<(), SimError> {
        self.graph
            .colleague_reacts(chat_id, message_id, user, reaction_type, set)
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
        self.graph
            .policy_violation(chat_id, message_id, dlp_action)
            .map_err(Into::into)
    }

    /// Replaces the faults (`POST /_sim/faults`); `Faults::default()` resets. Restarts the
    /// per-delivery sequence, so the same schedule of writes replays the same decisions.
    pub fn set_faults(&self, faults: Faults) -> Result<(), SimError> {
        self.graph.set_faults(faults).map_err(Into::into)
    }

    /// Expires a subscription now, silently: it is gone (GET 404) and delivers nothing more.
    pub fn expire_subscription(&self, id: &str) -> Result<(), SimError> {
        self.graph.expire(id).map_err(Into::into)
    }

    /// Removes a subscription at once, then sends `subscriptionRemoved` to its lifecycle URL.
    pub fn remove_subscription(&self, id: &str) -> Result<(), SimError> {
        self.graph.remove(id).map_err(Into::into)
    }

    /// Every message of a chat as held now, deleted ones included, oldest first.
    pub fn truth(&self, chat_id: &str) -> Result<Vec<serde_json::Value>, SimError> {
        self.graph.truth(chat_id).map_err(Into::into)
    }

    /// Delivery counts since start.
    pub fn deliveries(&self) -> Deliveries {
        self.graph.deliveries()
    }

    /// What it served of Graph's API (`GET /_sim/usage`): every call by method, route, resource
    /// and user, and every resource polled (read more than [`Config::poll_limit`] times within
    /// [`Config::poll_window`] without a change in between). The rules are in the crate's
    /// `README.md`.
    pub fn usage(&self) -> Usage {
        self.graph.usage()
    }

    /// Forgets every counted call and poll (`POST /_sim/usage/reset`).
    pub fn reset_usage(&self) {
        self.graph.reset_usage();
    }

    /// The ids of every chat, oldest first.
    pub fn chat_ids(&self) -> Vec<String> {
        self.graph.chat_ids()
    }

    /// The ids of the live subscriptions, oldest first.
    pub fn subscription_ids(&self) -> Vec<String> {
        self.graph.subscription_ids()
    }

    /// Stops serving and delivering, and waits for the server task to end.
    pub async fn shutdown(mut self) {
        self.graph.stop();
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
        self.graph.stop();
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}
