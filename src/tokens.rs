//! `validationTokens`: proof that a batch with resource data comes from Microsoft Graph.
//!
//! Anyone can encrypt for your certificate: it is public. What a forger cannot make is the JWT
//! the Microsoft identity platform signs for each (app, tenant) pair in a batch. A
//! [`TokenValidator`] checks every token of a batch, before any RSA work:
//!
//! * the signature: RS256 only (never `none`, never an HMAC algorithm), with a key from the
//!   identity platform's JWKS, which you fetch and hand over as bytes ([`TokenValidator::update_jwks`]);
//! * `exp` and `nbf` against the `now` you pass, with a small leeway (60 s by default);
//! * `aud`: one of your app ids;
//! * the publisher, Microsoft Graph's change-tracking app `0bf30f3b-4a52-48df-9a82-234910c4a086`,
//!   in `appid` (v1 tokens) or `azp` (v2 tokens), as the token's `ver` (else its issuer) says;
//!   that claim must be present, and the other one, when present, must name Graph too;
//! * the issuer, `https://sts.windows.net/{tenant}/` (v1) or
//!   `https://login.microsoftonline.com/{tenant}/v2.0` (v2), for a tenant you serve, matched
//!   exactly (and `tid`, when present, must name the same tenant).
//!
//! Issuers and JWKS hosts follow the [`Cloud`] the validator is set to (the global service by
//! default).
//!
//! A token that passed is remembered by its exact text until it expires (Graph reuses a token for
//! up to an hour across many batches), so a repeated token costs a lookup, not an RS256 check;
//! `exp` and `nbf` are still checked against each call's `now`.
//!
//! JWKS keys rotate. A token signed with a key the validator has not seen fails with
//! [`TokenError::UnknownKey`]; [`TokenError::wants_jwks_refresh`] says so. Anyone can POST a
//! token naming any `kid`, so do not fetch on every such error: ask a [`JwksRefresh`] policy,
//! which allows one fetch at a time, at most once per interval, and tells a `kid` that a fetch
//! has already failed to find (a forgery) from one that may still appear. Fetched keys are
//! merged into those held, and keys that vanish from the JWKS are kept for a while
//! ([`TokenValidator::retain_vanished_keys`]), so batches received earlier still validate.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::crypto::{CryptoProvider, Rs256PublicKey};
use crate::Cloud;

/// The app id of Microsoft Graph's change-tracking service: the publisher of every
/// `validationToken`.
pub const GRAPH_CHANGE_TRACKING_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// The app id of Azure Event Grid's service principal (`Microsoft.EventGrid`): the client of the
/// Microsoft Entra access token Event Grid sends as `Authorization: Bearer ...` when an event
/// subscription delivers to a Microsoft Entra protected webhook. Check those tokens with a
/// validator whose [`publisher`](TokenValidator::publisher) is this id and whose app ids are
/// the app (or app ID URI) the event subscription names.
pub const EVENT_GRID_APP_ID: &str = "4962773b-9cdb-44cf-a8bf-237846a00ab7";

/// Largest JWKS document accepted, in bytes.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Most keys kept from one JWKS document.
const MAX_JWKS_KEYS: usize = 256;
/// Largest token accepted, in bytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most keys held at once, counting keys kept after they vanished from the JWKS.
const MAX_HELD_KEYS: usize = 2 * MAX_JWKS_KEYS;

/// Why a validation token was refused. Never holds the token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a well-formed JWT (three base64url segments, JSON header and claims).
    #[error("malformed token: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The header's `alg` is not RS256.
    #[error("algorithm {alg:?} is not accepted (only RS256)")]
    Algorithm {
        /// The `alg` the header named (truncated).
        alg: String,
    },
    /// The header's `crit` names extensions the recipient must understand, and the validator
    /// understands none (RFC 7515, section 4.1.11: such a token is invalid). The identity
    /// platform sends no `crit`.
    #[error("critical header extension {name:?} is not supported")]
    CriticalExtension {
        /// The first name `crit` lists (truncated), or `""` when it lists none or is not an
        /// array of strings.
        name: String,
    },
    /// No key with this id in the JWKS the validator holds: fetch the JWKS again.
    #[error("signing key {kid:?} is not in the JWKS (fetch the JWKS again)")]
    UnknownKey {
        /// The `kid` (or `x5t`) the header named (truncated).
        kid: String,
    },
    /// The validator has no JWKS yet.
    #[error("no JWKS has been loaded")]
    NoJwks,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// A required claim is absent or of the wrong type.
    #[error("claim `{claim}` is missing or malformed")]
    Claim {
        /// The claim's name.
        claim: &'static str,
    },
    /// `exp` has passed (beyond the leeway).
    #[error("expired at {exp} (now {now})")]
    Expired {
        /// `exp`, seconds since the Unix epoch.
        exp: i64,
        /// `now`, seconds since the Unix epoch.
        now: i64,
    },
    /// `nbf` is still ahead (beyond the leeway).
    #[error("not valid before {nbf} (now {now})")]
    NotYetValid {
        /// `nbf`, seconds since the Unix epoch.
        nbf: i64,
        /// `now`, seconds since the Unix epoch.
        now: i64,
    },
    /// `aud` is not one of the configured app ids.
    #[error("audience is not one of the configured app ids")]
    Audience,
    /// `appid` or `azp` is not the validator's publisher: Microsoft Graph's change-tracking app
    /// for `validationTokens` (see [`TokenValidator::publisher`]).
    #[error("claim `{claim}` does not name the expected publisher (for validation tokens, Microsoft Graph's change-tracking app)")]
    Publisher {
        /// `appid` or `azp`.
        claim: &'static str,
    },
    /// `iss` is not an identity-platform issuer URL.
    #[error("issuer is not a Microsoft identity platform issuer")]
    Issuer,
    /// The issuer's tenant is not one of the configured tenants, or `tid` disagrees with it.
    #[error("tenant is not one of the configured tenants")]
    Tenant,
}

impl TokenError {
    /// Whether fetching the JWKS again may help (the token names a key the validator lacks).
    pub fn wants_jwks_refresh(&self) -> bool {
        matches!(self, Self::UnknownKey { .. } | Self::NoJwks)
    }

    /// The `kid` to ask a [`JwksRefresh`] policy about: the unknown key's id, or `""` when no
    /// JWKS is loaded; `None` for every other error.
    pub fn unknown_key(&self) -> Option<&str> {
        match self {
            Self::UnknownKey { kid } => Some(kid),
            Self::NoJwks => Some(""),
            _ => None,
        }
    }
}

/// Why a JWKS document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Larger than 1 MiB.
    #[error("the JWKS is larger than 1 MiB")]
    TooLarge,
    /// Not a JSON object with a `keys` array.
    #[error("not a JWKS document (a JSON object with a `keys` array)")]
    NotJwks,
    /// No usable RSA signing key with a `kid`.
    #[error("the JWKS holds no usable RSA signing key")]
    NoUsableKey,
}

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

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    x5t: Option<String>,
    /// Any value, `null` included: whatever it lists, the token is refused.
    #[serde(default, deserialize_with = "present")]
    crit: Option<serde_json::Value>,
}

/// A member that is present, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    aud: Option<Audience>,
    iss: Option<String>,
    exp: Option<serde_json::Number>,
    nbf: Option<serde_json::Number>,
    appid: Option<serde_json::Value>,
    azp: Option<serde_json::Value>,
    tid: Option<serde_json::Value>,
    ver: Option<serde_json::Value>,
}

/// Removes the entries with the least `order` until at most `keep` remain: how every bounded map
/// here (verified tokens, held keys, unknown kids) makes room.
fn evict_least<K, V, O>(map: &mut HashMap<K, V>, keep: usize, order: impl Fn(&V) -> O)
where
    K: Clone + Eq + std::hash::Hash,
    O: Ord,
{
    while map.len() > keep {
        let least = map
            .iter()
            .min_by_key(|(_, v)| order(v))
            .map(|(k, _)| k.clone());
        let Some(least) = least else { break };
        map.remove(&least);
    }
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

fn seconds(n: &Option<serde_json::Number>, claim: &'static str) -> Result<Option<i64>, TokenError> {
    match n {
        None => Ok(None),
        Some(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or(TokenError::Claim { claim }),
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The two token formats of the identity platform, which name the publisher in different claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenVersion {
    /// Issuer `https://sts.windows.net/{tenant}/`; the publisher is in `appid`.
    V1,
    /// Issuer `https://login.microsoftonline.com/{tenant}/v2.0`; the publisher is in `azp`.
    V2,
}

impl TokenVersion {
    /// The claim that must name the publisher.
    fn publisher_claim(self) -> &'static str {
        match self {
            Self::V1 => "appid",
            Self::V2 => "azp",
        }
    }
}

/// The tenant named by an identity-platform issuer of `cloud`, and the token format the issuer
/// belongs to.
fn issuer_tenant(iss: &str, cloud: Cloud) -> Option<(&str, TokenVersion)> {
    let (tenant, version) = iss
        .strip_prefix("https://")
        .and_then(|rest| rest.strip_prefix(cloud.v1_issuer_host()))
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|t| t.strip_suffix('/'))
        .map(|t| (t, TokenVersion::V1))
        .or_else(|| {
            iss.strip_prefix("https://")
                .and_then(|rest| rest.strip_prefix(cloud.login_host()))
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|t| t.strip_suffix("/v2.0"))
                .map(|t| (t, TokenVersion::V2))
        })?;
    (!tenant.is_empty() && !tenant.contains(['/', '?', '#', ' '])).then_some((tenant, version))
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
    /// [`EVENT_GRID_APP_ID`] checks the bearer tokens Event Grid sends to a Microsoft Entra
    /// protected webhook instead; every other rule (signature, times, audience, issuer, tenant)
    /// is the same.
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

/// When to fetch the identity platform's JWKS, decided without I/O: at most one fetch at a time,
/// at most once per interval (default 5 minutes) whatever the traffic, and a memory of the `kid`s
/// that a fetch has already failed to find.
///
/// Anyone can POST a token naming any `kid`, so an unknown `kid` is not by itself a reason to
/// fetch. Ask [`on_unknown_key`](Self::on_unknown_key) instead; it answers:
/// * [`JwksDecision::Fetch`]: fetch now, hand the bytes to
///   [`TokenValidator::update_jwks`], and report with [`JwksFetch::succeeded`] (dropping the
///   ticket reports a failure). Keep the batch meanwhile (a webhook answers 503, so Graph retries).
/// * [`JwksDecision::Wait`]: a fetch is under way, or the interval has not passed. Keep the batch
///   (503) and try again later; it is never a reason to drop it.
/// * [`JwksDecision::Unknown`]: a fetch that started after this `kid` was first seen did not list
///   it. The token is not the identity platform's: refuse the batch.
///
/// `Send + Sync`: share one between all threads, beside the [`TokenValidator`].
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use graph_chat_notifications::tokens::{JwksDecision, JwksRefresh};
/// let policy = JwksRefresh::new().min_interval(Duration::from_secs(300));
/// let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// // Start-up: fetch once.
/// let fetch = policy.start(t0).expect("nothing fetched yet");
/// // ... GET the JWKS, validator.update_jwks(&bytes, t0)? ...
/// fetch.succeeded();
/// // A storm of unknown kids one second later fetches nothing.
/// for i in 0..1000 {
///     let kid = format!("forged-{i}");
///     assert!(matches!(policy.on_unknown_key(&kid, t0 + Duration::from_secs(1)), JwksDecision::Wait { .. }));
/// }
/// // Once the interval has passed, the next unknown kid may fetch; the ones the fetch did not
/// // list are then known to be forged.
/// let later = t0 + Duration::from_secs(301);
/// let JwksDecision::Fetch(fetch) = policy.on_unknown_key("forged-1000", later) else { panic!() };
/// fetch.succeeded();
/// assert!(matches!(policy.on_unknown_key("forged-1000", later), JwksDecision::Unknown));
/// ```
pub struct JwksRefresh {
    min_interval: Duration,
    remember: usize,
    state: Mutex<RefreshState>,
}

#[derive(Default)]
struct RefreshState {
    /// When the last fetch started.
    last_started: Option<SystemTime>,
    in_flight: bool,
    /// `kid`s seen unknown: when first seen, and when a fetch that began after that listed
    /// nothing for them.
    unknown: HashMap<String, UnknownKid>,
}

struct UnknownKid {
    first_seen: SystemTime,
    absent_from_fetch_at: Option<SystemTime>,
}

impl fmt::Debug for JwksRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("JwksRefresh")
            .field("min_interval", &self.min_interval)
            .field("in_flight", &state.in_flight)
            .field("last_started", &state.last_started)
            .field("remembered_kids", &state.unknown.len())
            .finish()
    }
}

impl Default for JwksRefresh {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`JwksRefresh::on_unknown_key`] advises.
#[derive(Debug)]
#[must_use]
pub enum JwksDecision<'p> {
    /// Fetch the JWKS now; report the outcome on the ticket.
    Fetch(JwksFetch<'p>),
    /// Do not fetch now; keep the batch and try again after `retry_after`.
    Wait {
        /// How long until a fetch may be allowed (zero while one is under way).
        retry_after: Duration,
    },
    /// A fetch begun after this `kid` was first seen did not list it: the token is forged.
    Unknown,
}

/// Permission to fetch the JWKS once. Report success with [`succeeded`](Self::succeeded) after
/// [`TokenValidator::update_jwks`] took the bytes; dropping it reports a failure (the next fetch
/// still waits for the interval, so a failing endpoint is not hammered).
#[derive(Debug)]
#[must_use = "a fetch ticket reports its outcome; dropping it reports a failure"]
pub struct JwksFetch<'p> {
    policy: &'p JwksRefresh,
    started: SystemTime,
}

impl JwksFetch<'_> {
    /// When the fetch was allowed to start.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// The fetched JWKS was applied: `kid`s first seen before this fetch started, and still
    /// asked about, are now known to be absent.
    pub fn succeeded(self) {
        let mut state = self.policy.lock();
        for kid in state.unknown.values_mut() {
            if kid.first_seen <= self.started && kid.absent_from_fetch_at.is_none() {
                kid.absent_from_fetch_at = Some(self.started);
            }
        }
        // `Drop` ends the fetch.
    }
}

impl Drop for JwksFetch<'_> {
    fn drop(&mut self) {
        self.policy.lock().in_flight = false;
    }
}

impl JwksRefresh {
    /// A policy with the defaults: at most one fetch per 5 minutes, 1,024 unknown `kid`s
    /// remembered.
    pub fn new() -> Self {
        Self {
            min_interval: Duration::from_secs(300),
            remember: 1024,
            state: Mutex::new(RefreshState::default()),
        }
    }

    /// The least time between the starts of two fetches (default 5 minutes).
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// How many unknown `kid`s are remembered (default 1,024); past it the oldest is forgotten,
    /// which costs at most one more fetch, within the interval.
    pub fn remember_unknown_kids(mut self, count: usize) -> Self {
        self.remember = count.max(1);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RefreshState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fetch, if one may start now (none under way, and the interval passed since the last
    /// one): at start-up, or on a timer.
    pub fn start(&self, now: SystemTime) -> Option<JwksFetch<'_>> {
        let mut state = self.lock();
        self.try_start(&mut state, now).ok()
    }

    fn try_start(
        &self,
        state: &mut RefreshState,
        now: SystemTime,
    ) -> Result<JwksFetch<'_>, Duration> {
        if state.in_flight {
            return Err(Duration::ZERO);
        }
        if let Some(last) = state.last_started {
            let next = last + self.min_interval;
            if let Ok(wait) = next.duration_since(now) {
                if !wait.is_zero() {
                    return Err(wait);
                }
            }
        }
        state.in_flight = true;
        state.last_started = Some(now);
        Ok(JwksFetch {
            policy: self,
            started: now,
        })
    }

    /// What to do about a token whose `kid` the validator does not hold (pass `""` when the
    /// validator holds no JWKS at all), at time `now`.
    pub fn on_unknown_key(&self, kid: &str, now: SystemTime) -> JwksDecision<'_> {
        let kid = truncated(kid);
        let mut state = self.lock();
        let remembered = state.unknown.get_mut(&kid);
        match remembered {
            Some(known) => {
                if let Some(absent_at) = known.absent_from_fetch_at {
                    // Forged, until a fetch may start again; then it is looked for once more.
                    if now < absent_at + self.min_interval {
                        return JwksDecision::Unknown;
                    }
                    known.first_seen = now;
                    known.absent_from_fetch_at = None;
                }
            }
            None => {
                evict_least(&mut state.unknown, self.remember - 1, |k| k.first_seen);
                state.unknown.insert(
                    kid,
                    UnknownKid {
                        first_seen: now,
                        absent_from_fetch_at: None,
                    },
                );
            }
        }
        match self.try_start(&mut state, now) {
            Ok(fetch) => JwksDecision::Fetch(fetch),
            Err(retry_after) => JwksDecision::Wait { retry_after },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_name_their_tenant_exactly() {
        let g = Cloud::Global;
        assert_eq!(
            issuer_tenant("https://sts.windows.net/abc/", g),
            Some(("abc", TokenVersion::V1))
        );
        assert_eq!(
            issuer_tenant("https://login.microsoftonline.com/abc/v2.0", g),
            Some(("abc", TokenVersion::V2))
        );
        for bad in [
            "https://sts.windows.net/abc",
            "https://sts.windows.net//",
            "https://sts.windows.net/a/b/",
            "https://sts.windows.net.evil.com/abc/",
            "http://sts.windows.net/abc/",
            "https://login.microsoftonline.com/abc/v2.0/x",
            "https://login.microsoftonline.us/abc/v2.0",
            "https://sts.chinacloudapi.cn/abc/",
        ] {
            assert_eq!(issuer_tenant(bad, g), None, "{bad}");
        }
    }

    #[test]
    fn each_cloud_has_its_own_issuers() {
        let cases = [
            (
                Cloud::UsGovernment,
                "https://login.microsoftonline.us/t/v2.0",
                true,
            ),
            (Cloud::UsGovernment, "https://sts.windows.net/t/", true),
            (
                Cloud::UsGovernment,
                "https://login.microsoftonline.com/t/v2.0",
                false,
            ),
            (
                Cloud::UsGovernmentDod,
                "https://login.microsoftonline.us/t/v2.0",
                true,
            ),
            (
                Cloud::UsGovernmentDod,
                "https://login.chinacloudapi.cn/t/v2.0",
                false,
            ),
            (Cloud::China, "https://login.chinacloudapi.cn/t/v2.0", true),
            (Cloud::China, "https://sts.chinacloudapi.cn/t/", true),
            (Cloud::China, "https://sts.windows.net/t/", false),
            (
                Cloud::China,
                "https://login.microsoftonline.com/t/v2.0",
                false,
            ),
        ];
        for (cloud, iss, ok) in cases {
            assert_eq!(
                issuer_tenant(iss, cloud).map(|(t, _)| t),
                ok.then_some("t"),
                "{cloud:?} {iss}"
            );
        }
    }

    #[test]
    fn seconds_accept_integers_and_floats() {
        assert_eq!(seconds(&Some(5.into()), "exp"), Ok(Some(5)));
        let f = serde_json::Number::from_f64(5.9).unwrap();
        assert_eq!(seconds(&Some(f), "exp"), Ok(Some(5)));
        assert_eq!(seconds(&None, "exp"), Ok(None));
    }
}
