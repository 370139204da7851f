//! The simulated Graph itself: who it is, what it holds behind its one lock, and `mutate`, the one
//! path by which a change is made, saved to the state file and fanned out as notifications.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use graph_chat_notifications::crypto::{Certificate, PrivateKey};
use graph_chat_notifications::testing::{generate_private_key, GraphSimulator};
use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use super::caller::{Caller, Platform};
use super::rules::parse_certificate;
use crate::deliver::Courier;
use crate::state::{self, Chat, State, Sub};
use crate::types::{Config, Faults, Identity, SimError, User};
use crate::usage::{Change, Counter, Seen, Usage, MAX_POLL_LIMIT};
use crate::util::ApiResult;

/// The simulated Microsoft Graph: who it is, what it holds (behind one lock), and how it delivers.
pub(crate) struct Graph {
    pub config: Config,
    pub base_url: String,
    pub crypto: GraphSimulator,
    pub jwks: Vec<u8>,
    pub store: Mutex<Store>,
    pub courier: Arc<Courier>,
    pub stop_tx: watch::Sender<bool>,
    /// What it served of Graph's API; taken after `store` when both are held, never before.
    usage: Mutex<Counter>,
    /// The tenant's users, the configuration's user first.
    pub users: Vec<User>,
    /// Codes waiting to be redeemed and tokens checked; never held with `store`.
    pub(super) platform: Mutex<Platform>,
}

/// What the Graph holds under its lock: the saved state, and what it derives from it at run time
/// (parsed certificates, the faults in force, the delivery sequence, the validation token).
pub(crate) struct Store {
    pub state: State,
    pub(super) certs: HashMap<String, Certificate>,
    pub(super) faults: Faults,
    pub(super) seed: u64,
    pub(super) seq: u64,
    pub(super) api_rng: ChaCha8Rng,
    /// The validation token in use, and when it was minted.
    pub(super) token: Option<(String, SystemTime)>,
}

/// A change to notify about.
pub(super) enum Event {
    Message {
        chat: String,
        id: String,
        change: &'static str,
    },
    Chat {
        chat: Box<Chat>,
        change: &'static str,
    },
    Viewpoint {
        chat: String,
        user: String,
    },
    Lifecycle {
        sub: Box<Sub>,
        event: &'static str,
    },
}

impl Graph {
    pub fn new(config: Config, addr: SocketAddr) -> Result<Arc<Self>, SimError> {
        if config.poll_limit > MAX_POLL_LIMIT {
            return Err(SimError::BadRequest(format!(
                "the poll limit is at most {MAX_POLL_LIMIT}"
            )));
        }
        if config.poll_window.is_zero() {
            return Err(SimError::BadRequest("the poll window is not zero".into()));
        }
        let loaded = match &config.state_path {
            Some(p) => state::load(p)?,
            None => None,
        };
        let mut state = loaded.unwrap_or_default();
        let key = if state.signing_key.is_empty() {
            let key = generate_private_key(2048);
            state.signing_key = B64.encode(key.expose_secret_pkcs8_der());
            key
        } else {
            let der = B64
                .decode(&state.signing_key)
                .map_err(|_| SimError::State("the signing key is not base64".into()))?;
            PrivateKey::from_pkcs8_der(&der)
                .map_err(|e| SimError::State(format!("the signing key does not load: {e}")))?
        };
        let crypto =
            GraphSimulator::with_signing_key(&key, "graph-sim", &config.app_id, &config.tenant_id);
        let jwks = crypto.jwks();
        let mut certs = HashMap::new();
        for sub in &state.subscriptions {
            if let Some(c) = sub.certificate.as_deref().and_then(parse_certificate) {
                certs.insert(sub.id.clone(), c);
            }
        }
        let host = if addr.ip().is_unspecified() {
            SocketAddr::new([127, 0, 0, 1].into(), addr.port())
        } else {
            addr
        };
        let base_url = format!("http://{host}/");
        let (stop_tx, stop) = watch::channel(false);
        let courier = Arc::new(Courier::new(
            config.retry_base,
            config.handshake_timeout,
            stop,
        ));
        let seed = config.seed;
        if config.token_lifetime.is_zero() {
            return Err(SimError::BadRequest(
                "the token lifetime is not zero".into(),
            ));
        }
        let mut users = vec![User::new(
            config.user_id.clone(),
            config.user_display_name.clone(),
        )];
        for c in &config.colleagues {
            if !users.iter().any(|u| u.id.eq_ignore_ascii_case(&c.id)) {
                users.push(c.clone());
            }
        }
        let graph = Arc::new(Self {
            base_url,
            crypto,
            jwks,
            store: Mutex::new(Store {
                state,
                certs,
                faults: Faults::default(),
                seed,
                seq: 0,
                api_rng: ChaCha8Rng::seed_from_u64(seed),
                token: None,
            }),
            courier,
            stop_tx,
            usage: Mutex::new(Counter::new(config.poll_limit, config.poll_window)),
            users,
            platform: Mutex::new(Platform::default()),
            config,
        });
        graph.persist(&graph.lock());
        Ok(graph)
    }

    pub fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic elsewhere while holding the lock leaves the state as it was: keep serving.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counter(&self) -> MutexGuard<'_, Counter> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one request to Graph's API.
    pub fn seen(&self, request: &Seen<'_>) {
        self.counter().seen(request);
    }

    /// Records a write, for the polling rule (call it under the store lock, as `mutate` does).
    pub(super) fn changed(&self, change: Change<'_>) {
        self.counter().changed(change);
    }

    pub fn usage(&self) -> Usage {
        self.counter().usage()
    }

    pub fn reset_usage(&self) {
        self.counter().reset();
    }

    pub fn stop(&self) {
        self.stop_tx.send_replace(true);
    }

    pub fn identity(&self) -> Identity {
        Identity {
            tenant_id: self.config.tenant_id.clone(),
            app_id: self.config.app_id.clone(),
            user_id: self.config.user_id.clone(),
            jwks_url: format!("{}common/discovery/v2.0/keys", self.base_url),
        }
    }

    /// The user the call being served acts as: the delegated token's `oid`, else (any bearer
    /// accepted, an app token, or outside a call) the configuration's user.
    pub(super) fn me(&self) -> String {
        match Self::caller() {
            Caller::User { oid, .. } => oid,
            Caller::Anyone | Caller::App => self.config.user_id.clone(),
        }
    }

    pub(super) fn is_me(&self, user: &str) -> bool {
        user.eq_ignore_ascii_case("me") || self.names_user(user, &self.me())
    }

    pub(super) fn persist(&self, store: &Store) {
        if let Some(path) = &self.config.state_path {
            if let Err(e) = state::save(path, &store.state) {
                eprintln!("graph-sim: {e}");
            }
        }
    }

    /// Runs a change under the lock, saves the state, and sends what it notifies.
    pub(super) fn mutate<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store, &mut Vec<Event>) -> ApiResult<R>,
    ) -> ApiResult<R> {
        let mut events = Vec::new();
        let outgoing;
        let result;
        {
            let mut store = self.lock();
            result = f(&mut store, &mut events)?;
            for event in &events {
                match event {
                    Event::Message { chat, id, .. } => self.changed(Change::Message { chat, id }),
                    Event::Chat { chat, .. } => self.changed(Change::Chat(&chat.id)),
                    Event::Viewpoint { chat, .. } => self.changed(Change::Chat(chat)),
                    Event::Lifecycle { sub, .. } => self.changed(Change::Subscription(&sub.id)),
                }
            }
            self.persist(&store);
            outgoing = self.fan_out(&mut store, &events);
        }
        for o in outgoing {
            self.courier.dispatch(self.clone(), o);
        }
        Ok(result)
    }
}

/// Every 200 ms until the Graph stops: expires what is due and asks for reauthorization.
pub(crate) fn spawn_ticker(graph: Arc<Graph>) -> tokio::task::JoinHandle<()> {
    let mut stop = graph.stop_tx.subscribe();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = every.tick() => graph.tick(),
                _ = stop.changed() => return,
            }
        }
    })
}
