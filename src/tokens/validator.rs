//! [`TokenValidator`]: every check of a `validationToken`, and the JWKS keys and verified tokens
//! it holds.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::bounded::{evict_least, truncated};
use super::claims::{
    issuer_tenant, seconds, unix_seconds, Audience, Claims, Header, TokenVersion,
    GRAPH_CHANGE_TRACKING_APP_ID,
};
use super::error::{JwksError, TokenError};
use crate::crypto::{CryptoProvider, Rs256PublicKey};
use crate::Cloud;

/// Largest JWKS document accepted, in bytes.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Most keys kept from one JWKS document.
const MAX_JWKS_KEYS: usize = 256;
/// Largest token accepted, in bytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most keys held at once, counting keys kept after they vanished from the JWKS.
const MAX_HELD_KEYS: usize = 2 * MAX_JWKS_KEYS;

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidatedToken {
    /// The tenant, from the issuer.
    pub tenant_id: String,
    /// The audience that matched: your app id.
    pub app_id: String,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: i64,
}

/// A signing key, and when a fetched JWKS last listed it.
#[derive(Clone)]
struct HeldKey {
    key: Arc<dyn Rs256PublicKey>,
    last_listed: SystemTime,
}

type KeySet = HashMap<String, HeldKey>;

/// What a token that passed its signature and claim checks is remembered by: everything but the
/// checks against `now`.
#[derive(Clone)]
struct Verified {
    token: ValidatedToken,
    not_before: Option<i64>,
}

/// Validates `validationTokens`. Configure it once with your app ids and tenants, feed it the
/// JWKS, and share it across threads (the JWKS can be replaced while it is in use).
///
/// ```
/// # #[cfg(any(feature = "rust-crypto", feature = "aws-lc"))] {
/// use graph_chat_notifications::tokens::TokenValidator;
/// let validator = TokenValidator::new(["11111111-2222-3333-4444-555555555555"], ["4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1"]);
/// let jwks = std::fs::read("tests/fixtures/tokens/jwks.json").unwrap();
/// assert_eq!(validator.update_jwks(&jwks, std::time::SystemTime::now()).unwrap(), 1);
/// let err = validator.validate("not.a.token", std::time::SystemTime::now()).unwrap_err();
/// assert!(err.to_string().starts_with("malformed token"));
/// # }
/// ```
pub struct TokenValidator {
    provider: &'static CryptoProvider,
    publisher: String,
    app_ids: Vec<String>,
    tenant_ids: Vec<String>,
    leeway: Duration,
    cloud: Cloud,
    retain_vanished: Duration,
    keys: RwLock<Arc<KeySet>>,
    cache_capacity: usize,
    /// Tokens that passed, by their exact text. Only tokens whose signature verified get in, so
    /// a sender cannot fill it; it is bounded all the same.
    cache: Mutex<HashMap<Box<str>, Verified>>,
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<String> = self.current_keys().keys().cloned().collect();
        f.debug_struct("TokenValidator")
            .field("provider", &self.provider.name)
            .field("publisher", &self.publisher)
            .field("app_ids", &self.app_ids)
            .field("tenant_ids", &self.tenant_ids)
            .field("leeway", &self.leeway)
            .field("cloud", &self.cloud)
            .field("jwks_kids", &kids)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Jwks<'a> {
    #[serde(borrow)]
    keys: Vec<&'a RawValue>,
}

impl TokenValidator {
    /// A validator for tokens addressed to any of `app_ids`, from any of `tenant_ids`, using the
    /// [default provider](crate::crypto::default_provider) for RS256. It holds no JWKS until
    /// [`update_jwks`](Self::update_jwks).
    #[cfg(any(feature = "rust-crypto", feature = "aws-lc"))]
    pub fn new<A, T>(app_ids: A, tenant_ids: T) -> Self
    where
        A: IntoIterator,
        A::Item: Into<String>,
        T: IntoIterator,
        T::Item: Into<String>,
    {
        Self::with_provider(crate::crypto::default_provider(), app_ids, tenant_ids)
    }

    /// [`new`](Self::new) with another crypto provider for the RS256 check.
    pub fn with_provider<A, T>(provider: &'static CryptoProvider, app_ids: A, tenant_ids: T) -> Self
    where
        A: IntoIterator,
        A::Item: Into<String>,
        T: IntoIterator,
        T::Item: Into<String>,
    {
        Self {
            provider,
            publisher: GRAPH_CHANGE_TRACKING_APP_ID.to_string(),
            app_ids: app_ids.into_iter().map(Into::into).collect(),
            tenant_ids: tenant_ids.into_iter().map(Into::into).collect(),
            leeway: Duration::from_secs(60),
            cloud: Cloud::Global,
            retain_vanished: Duration::from_secs(24 * 60 * 60),
            keys: RwLock::new(Arc::new(HashMap::new())),
            cache_capacity: 1024,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The app whose tokens these are, named in `appid` (v1) or `azp` (v2): Microsoft Graph's
    /// change-tracking app ([`GRAPH_CHANGE_TRACKING_APP_ID`]) by default, for `validationTokens`.
    /// [`EVENT_GRID_APP_ID`](super::EVENT_GRID_APP_ID) checks the bearer tokens Event Grid sends
    /// to a Microsoft Entra protected webhook instead; every other rule (signature, times,
    /// audience, issuer, tenant) is the same.
    ///
    /// ```
    /// # #[cfg(any(feature = "rust-crypto", feature = "aws-lc"))] {
    /// use graph_chat_notifications::tokens::{TokenValidator, EVENT_GRID_APP_ID};
    /// let bearer = TokenValidator::new(["11111111-2222-3333-4444-555555555555"], ["4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1"])
    ///     .publisher(EVENT_GRID_APP_ID);
    /// assert_eq!(bearer.configured_publisher(), EVENT_GRID_APP_ID);
    /// # }
    /// ```
    pub fn publisher(mut self, app_id: impl Into<String>) -> Self {
        self.publisher = app_id.into();
        self
    }

    /// The publisher tokens must name.
    pub fn configured_publisher(&self) -> &str {
        &self.publisher
    }

    /// The cloud whose identity platform issues the tokens (default [`Cloud::Global`]): it picks
    /// the issuer hosts a token may name.
    pub fn cloud(mut self, cloud: Cloud) -> Self {
        self.cloud = cloud;
        self
    }

    /// How long a signing key stays usable after it vanished from the fetched JWKS (default 24
    /// hours), so that batches received before a rotation (in an inbox, say) still validate.
    pub fn retain_vanished_keys(mut self, retain: Duration) -> Self {
        self.retain_vanished = retain;
        self
    }

    /// How many verified tokens are remembered (default 1,024; 0 turns the cache off). Graph
    /// sends one token per (app, tenant) pair and reuses it for up to an hour.
    pub fn token_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// The configured cloud.
    pub fn configured_cloud(&self) -> Cloud {
        self.cloud
    }

    /// Whether a signing key with this `kid` is held.
    pub fn knows_key(&self, kid: &str) -> bool {
        self.current_keys().contains_key(kid)
    }

    /// How many verified tokens are remembered now.
    pub fn cached_tokens(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The configured app ids.
    pub fn app_ids(&self) -> &[String] {
        &self.app_ids
    }

    /// The configured tenants.
    pub fn tenant_ids(&self) -> &[String] {
        &self.tenant_ids
    }

    /// Merges the signing keys of a JWKS document (the bytes you fetched from the identity
    /// platform's `jwks_uri`, [`Cloud::jwks_url`]) into those held, at time `now`. Keeps RSA keys
    /// that have a `kid` and are meant for signatures; skips the others. A key the document no
    /// longer lists stays usable for [`retain_vanished_keys`](Self::retain_vanished_keys) after
    /// the last document that listed it. Returns how many usable keys the document held. On
    /// error nothing changes.
    pub fn update_jwks(&self, jwks: &[u8], now: SystemTime) -> Result<usize, JwksError> {
        if jwks.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let doc: Jwks<'_> = serde_json::from_slice(jwks).map_err(|_| JwksError::NotJwks)?;
        let mut listed: Vec<(String, Arc<dyn Rs256PublicKey>)> = Vec::new();
        for raw in doc.keys.into_iter().take(MAX_JWKS_KEYS) {
            let Ok(jwk) = serde_json::from_str::<jsonwebtoken::jwk::Jwk>(raw.get()) else {
                continue;
            };
            let jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
                continue;
            };
            let for_signing = !matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            );
            let rs256 = matches!(
                jwk.common.key_algorithm,
                None | Some(jsonwebtoken::jwk::KeyAlgorithm::RS256)
            );
            let (Some(kid), true, true) = (&jwk.common.key_id, for_signing, rs256) else {
                continue;
            };
            let (Ok(n), Ok(e)) = (
                URL_SAFE_NO_PAD.decode(&rsa.n),
                URL_SAFE_NO_PAD.decode(&rsa.e),
            ) else {
                continue;
            };
            if let Ok(key) = (self.provider.load_rs256_public_key)(&n, &e) {
                listed.push((kid.clone(), Arc::from(key)));
            }
        }
        if listed.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        let count = listed.len();
        let mut held = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let mut keys = KeySet::clone(&held);
        // Keys that vanished long enough ago go; the listed ones are (re)placed as listed now.
        keys.retain(|_, k| {
            now.duration_since(k.last_listed)
                .map_or(true, |gone| gone <= self.retain_vanished)
        });
        for (kid, key) in listed {
            keys.insert(
                kid,
                HeldKey {
                    key,
                    last_listed: now,
                },
            );
        }
        evict_least(&mut keys, MAX_HELD_KEYS, |k| k.last_listed);
        *held = Arc::new(keys);
        Ok(count)
    }

    fn current_keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Validates one token at time `now`. A token that passed before is recognised by its exact
    /// text and only its times are checked again.
    pub fn validate(&self, token: &str, now: SystemTime) -> Result<ValidatedToken, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed {
                reason: "longer than 16 KiB",
            });
        }
        let token = token.trim();
        let now_s = unix_seconds(now);
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        let verified = match cached {
            Some(v) => v,
            None => {
                let v = self.verify(token)?;
                self.remember(token, &v, now_s);
                v
            }
        };
        self.check_times(verified.token.expires_at, verified.not_before, now_s)?;
        Ok(verified.token)
    }

    fn leeway_seconds(&self) -> i64 {
        i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX)
    }

    fn check_times(&self, exp: i64, nbf: Option<i64>, now_s: i64) -> Result<(), TokenError> {
        let leeway = self.leeway_seconds();
        if now_s.saturating_sub(leeway) >= exp {
            return Err(TokenError::Expired { exp, now: now_s });
        }
        if let Some(nbf) = nbf {
            if now_s.saturating_add(leeway) < nbf {
                return Err(TokenError::NotYetValid { nbf, now: now_s });
            }
        }
        Ok(())
    }

    /// Remembers a verified token; when full, first forgets expired tokens, then the one that
    /// expires soonest.
    fn remember(&self, token: &str, verified: &Verified, now_s: i64) {
        if self.cache_capacity == 0 {
            return;
        }
        let leeway = self.leeway_seconds();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.cache_capacity {
            cache.retain(|_, v| now_s.saturating_sub(leeway) < v.token.expires_at);
        }
        evict_least(&mut cache, self.cache_capacity - 1, |v| v.token.expires_at);
        cache.insert(token.into(), verified.clone());
    }

    /// The checks that do not depend on the time: form, algorithm, signature, and every claim
    /// but `exp` and `nbf` (which are read here and checked by the caller).
    fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let malformed = |reason| TokenError::Malformed { reason };
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("not three dot-separated segments"));
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| malformed("header is not base64url"))?;
        let header: Header = serde_json::from_slice(&header_json)
            .map_err(|_| malformed("header is not a JSON object"))?;
        match header.alg.as_deref() {
            Some("RS256") => {}
            other => {
                return Err(TokenError::Algorithm {
                    alg: truncated(other.unwrap_or("")),
                })
            }
        }
        // Extensions marked critical must be understood, or the JWS is invalid (RFC 7515,
        // 4.1.11); none are, so any `crit` (even `[]`, which producers must not send) refuses
        // the token, before any RSA work.
        if let Some(crit) = &header.crit {
            let name = crit
                .as_array()
                .and_then(|names| names.first())
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            return Err(TokenError::CriticalExtension {
                name: truncated(name),
            });
        }
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| malformed("signature is not base64url"))?;
        let keys = self.current_keys();
        if keys.is_empty() {
            return Err(TokenError::NoJwks);
        }
        let kid = header
            .kid
            .as_deref()
            .or(header.x5t.as_deref())
            .ok_or(malformed("header names no key (`kid`)"))?;
        let key = &keys
            .get(kid)
            .ok_or_else(|| TokenError::UnknownKey {
                kid: truncated(kid),
            })?
            .key;
        let signed = &token[..h.len() + 1 + c.len()];
        if !key.verify(signed.as_bytes(), &signature) {
            return Err(TokenError::Signature);
        }

        // The signature holds: the claims are the identity platform's. Now check what they say.
        let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| malformed("claims are not a JSON object of the expected types"))?;
        let exp = seconds(&claims.exp, "exp")?.ok_or(TokenError::Claim { claim: "exp" })?;
        let not_before = seconds(&claims.nbf, "nbf")?;
        let audiences: Vec<String> = match claims.aud {
            None => return Err(TokenError::Claim { claim: "aud" }),
            Some(Audience::One(a)) => vec![a],
            Some(Audience::Many(a)) => a,
        };
        let app_id = audiences
            .iter()
            .find_map(|a| self.app_ids.iter().find(|id| id.eq_ignore_ascii_case(a)))
            .ok_or(TokenError::Audience)?
            .clone();
        let iss = claims.iss.ok_or(TokenError::Claim { claim: "iss" })?;
        let (tenant, issuer_version) = issuer_tenant(&iss, self.cloud).ok_or(TokenError::Issuer)?;
        // The token's own `ver` says which claim carries the publisher; without it, the issuer's
        // format does.
        let version = match &claims.ver {
            None => issuer_version,
            Some(serde_json::Value::String(v)) if v == "1.0" => TokenVersion::V1,
            Some(serde_json::Value::String(v)) if v == "2.0" => TokenVersion::V2,
            Some(_) => return Err(TokenError::Claim { claim: "ver" }),
        };
        // The claim of the token's version must name Graph; the other, when present, too.
        for (claim, value) in [("appid", &claims.appid), ("azp", &claims.azp)] {
            match value {
                None if claim == version.publisher_claim() => {
                    return Err(TokenError::Claim { claim })
                }
                None => {}
                Some(serde_json::Value::String(v)) if v.eq_ignore_ascii_case(&self.publisher) => {}
                Some(_) => return Err(TokenError::Publisher { claim }),
            }
        }
        let tenant_id = self
            .tenant_ids
            .iter()
            .find(|t| t.eq_ignore_ascii_case(tenant))
            .ok_or(TokenError::Tenant)?
            .clone();
        match &claims.tid {
            None => {}
            Some(serde_json::Value::String(tid)) if tid.eq_ignore_ascii_case(tenant) => {}
            Some(_) => return Err(TokenError::Tenant),
        }
        Ok(Verified {
            token: ValidatedToken {
                tenant_id,
                app_id,
                expires_at: exp,
            },
            not_before,
        })
    }

    /// Validates every token of a batch: all must pass. Returns the index and error of the first
    /// that fails.
    pub fn validate_all(
        &self,
        tokens: &[Cow<'_, str>],
        now: SystemTime,
    ) -> Result<Vec<ValidatedToken>, (usize, TokenError)> {
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| self.validate(t, now).map_err(|e| (i, e)))
            .collect()
    }
}
