//! Validation tokens signed with the fixture signing key (whose JWKS is `tokens/jwks.json`),
//! through the crate's simulator, with any header and claims for negative tests.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use graph_chat_notifications::crypto::PrivateKey;
use graph_chat_notifications::testing::{claims_v1, claims_v2, GraphSimulator};
use serde_json::Value;

use super::read;

#[allow(unused_imports)]
pub use graph_chat_notifications::testing::signing_input;

pub const NOW: u64 = 1_800_000_000;
pub const APP: &str = "11111111-2222-3333-4444-555555555555";
pub const TENANT: &str = "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1";
pub const GRAPH: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

pub struct Minter {
    sim: GraphSimulator,
    pub kid: String,
}

impl Minter {
    /// The key whose public half is in `tokens/jwks.json`.
    pub fn fixture() -> Self {
        Self::from_dir("tokens")
    }

    /// Another key under the same `kid`: a forger's.
    pub fn other() -> Self {
        Self::from_dir("tokens/other")
    }

    fn from_dir(dir: &str) -> Self {
        let key = PrivateKey::from_bytes(&read(&format!("{dir}/signing.pem"))).unwrap();
        let kid = String::from_utf8(read(&format!("{dir}/kid")))
            .unwrap()
            .trim()
            .to_string();
        Self {
            sim: GraphSimulator::with_signing_key(&key, kid.clone(), APP, TENANT),
            kid,
        }
    }

    pub fn header(&self) -> Value {
        self.sim.header()
    }

    /// Claims of a v1 token at [`NOW`].
    pub fn v1() -> Value {
        claims_v1(APP, TENANT, now())
    }

    /// [`v1`](Self::v1) issued at `now` (seconds since the epoch).
    pub fn v1_at(now: i64) -> Value {
        claims_v1(APP, TENANT, UNIX_EPOCH + Duration::from_secs(now as u64))
    }

    /// Claims of a v2 token at [`NOW`].
    pub fn v2() -> Value {
        claims_v2(APP, TENANT, now())
    }

    /// `header.claims.signature`, RS256.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sim.sign(header, claims)
    }

    pub fn token(&self, claims: &Value) -> String {
        self.sim.sign(&self.sim.header(), claims)
    }
}

/// `claims` with `changes` applied: a `null` value removes the claim.
pub fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

/// Signs an arbitrary signing input with the minter's key.
pub fn sign_input_with(m: &Minter, input: &str) -> String {
    m.sim.sign_input(input)
}
