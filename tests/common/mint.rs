//! The identity platform's side: validation tokens signed RS256 with the fixture signing key,
//! with any header and claims, for negative tests.
#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::read;

pub const NOW: u64 = 1_800_000_000;
pub const APP: &str = "11111111-2222-3333-4444-555555555555";
pub const TENANT: &str = "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1";
pub const GRAPH: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

pub fn now() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(NOW)
}

pub struct Minter {
    key: RsaPrivateKey,
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
        let pem = String::from_utf8(read(&format!("{dir}/signing.pem"))).unwrap();
        Self {
            key: RsaPrivateKey::from_pkcs8_pem(&pem).unwrap(),
            kid: String::from_utf8(read(&format!("{dir}/kid")))
                .unwrap()
                .trim()
                .to_string(),
        }
    }

    pub fn header(&self) -> Value {
        json!({"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5t": self.kid})
    }

    /// Claims of a v1 token as the identity platform issues it.
    pub fn v1() -> Value {
        Self::v1_at(NOW as i64)
    }

    /// [`v1`](Self::v1) issued at `now` (seconds since the epoch).
    pub fn v1_at(now: i64) -> Value {
        json!({
            "aud": APP, "iss": format!("https://sts.windows.net/{TENANT}/"),
            "iat": now - 5, "nbf": now - 5, "exp": now + 3600,
            "appid": GRAPH, "azp": GRAPH, "appidacr": "2", "tid": TENANT, "ver": "1.0",
        })
    }

    /// Claims of a v2 token.
    pub fn v2() -> Value {
        let now = NOW as i64;
        json!({
            "aud": APP, "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
            "iat": now - 5, "nbf": now - 5, "exp": now + 3600,
            "azp": GRAPH, "azpacr": "2", "tid": TENANT, "ver": "2.0",
        })
    }

    /// `header.claims.signature`, RS256.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        sign_input_with(self, &signing_input(header, claims))
    }

    pub fn token(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64URL.encode(serde_json::to_vec(header).unwrap()),
        B64URL.encode(serde_json::to_vec(claims).unwrap())
    )
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
    let digest = Sha256::digest(input.as_bytes());
    let sig = m.key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap();
    format!("{input}.{}", B64URL.encode(sig))
}
