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
//! JWKS keys rotate. A token signed with a key the validator has not seen fails with
//! [`TokenError::UnknownKey`]; [`TokenError::wants_jwks_refresh`] says so. Fetch
//! `https://login.microsoftonline.com/common/discovery/v2.0/keys` (the `jwks_uri` of the OpenID
//! configuration) again, call [`TokenValidator::update_jwks`], and validate again. Rate-limit
//! those fetches: anyone can send a token with an unknown `kid`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::crypto::{CryptoProvider, Rs256PublicKey};

/// The app id of Microsoft Graph's change-tracking service: the publisher of every
/// `validationToken`.
pub const GRAPH_CHANGE_TRACKING_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// Largest JWKS document accepted, in bytes.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Most keys kept from one JWKS document.
const MAX_JWKS_KEYS: usize = 256;
/// Largest token accepted, in bytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

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
    /// `appid` or `azp` is not Microsoft Graph's change-tracking app.
    #[error("claim `{claim}` is not Microsoft Graph's change-tracking app")]
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

type KeySet = HashMap<String, Arc<dyn Rs256PublicKey>>;

/// Validates `validationTokens`. Configure it once with your app ids and tenants, feed it the
/// JWKS, and share it across threads (the JWKS can be replaced while it is in use).
///
/// ```
/// # #[cfg(feature = "rust-crypto")] {
/// use graph_chat_notifications::tokens::TokenValidator;
/// let validator = TokenValidator::new(["11111111-2222-3333-4444-555555555555"], ["4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1"]);
/// let jwks = std::fs::read("tests/fixtures/tokens/jwks.json").unwrap();
/// assert_eq!(validator.update_jwks(&jwks).unwrap(), 1);
/// let err = validator.validate("not.a.token", std::time::SystemTime::now()).unwrap_err();
/// assert!(err.to_string().starts_with("malformed token"));
/// # }
/// ```
pub struct TokenValidator {
    provider: &'static CryptoProvider,
    app_ids: Vec<String>,
    tenant_ids: Vec<String>,
    leeway: Duration,
    keys: RwLock<Arc<KeySet>>,
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<String> = self.current_keys().keys().cloned().collect();
        f.debug_struct("TokenValidator")
            .field("provider", &self.provider.name)
            .field("app_ids", &self.app_ids)
            .field("tenant_ids", &self.tenant_ids)
            .field("leeway", &self.leeway)
            .field("jwks_kids", &kids)
            .finish()
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

/// The tenant named by an identity-platform issuer, and the token format the issuer belongs to.
fn issuer_tenant(iss: &str) -> Option<(&str, TokenVersion)> {
    let (tenant, version) = iss
        .strip_prefix("https://sts.windows.net/")
        .and_then(|t| t.strip_suffix('/'))
        .map(|t| (t, TokenVersion::V1))
        .or_else(|| {
            iss.strip_prefix("https://login.microsoftonline.com/")
                .and_then(|t| t.strip_suffix("/v2.0"))
                .map(|t| (t, TokenVersion::V2))
        })?;
    (!tenant.is_empty() && !tenant.contains(['/', '?', '#', ' '])).then_some((tenant, version))
}

impl TokenValidator {
    /// A validator for tokens addressed to any of `app_ids`, from any of `tenant_ids`, using the
    /// pure-Rust provider. It holds no JWKS until [`update_jwks`](Self::update_jwks).
    #[cfg(feature = "rust-crypto")]
    pub fn new<A, T>(app_ids: A, tenant_ids: T) -> Self
    where
        A: IntoIterator,
        A::Item: Into<String>,
        T: IntoIterator,
        T::Item: Into<String>,
    {
        Self::with_provider(&crate::crypto::RUST_CRYPTO, app_ids, tenant_ids)
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
            app_ids: app_ids.into_iter().map(Into::into).collect(),
            tenant_ids: tenant_ids.into_iter().map(Into::into).collect(),
            leeway: Duration::from_secs(60),
            keys: RwLock::new(Arc::new(HashMap::new())),
        }
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

    /// Replaces the signing keys with those of a JWKS document (the bytes you fetched from the
    /// identity platform's `jwks_uri`). Keeps RSA keys that have a `kid` and are meant for
    /// signatures; skips the others. Returns how many keys it kept. On error the previous keys
    /// stay in force.
    pub fn update_jwks(&self, jwks: &[u8]) -> Result<usize, JwksError> {
        if jwks.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let doc: Jwks<'_> = serde_json::from_slice(jwks).map_err(|_| JwksError::NotJwks)?;
        let mut keys: KeySet = HashMap::new();
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
                keys.insert(kid.clone(), Arc::from(key));
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(count)
    }

    fn current_keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Validates one token at time `now`.
    pub fn validate(&self, token: &str, now: SystemTime) -> Result<ValidatedToken, TokenError> {
        let malformed = |reason| TokenError::Malformed { reason };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(malformed("longer than 16 KiB"));
        }
        let token = token.trim();
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
        let key = keys.get(kid).ok_or_else(|| TokenError::UnknownKey {
            kid: truncated(kid),
        })?;
        let signed = &token[..h.len() + 1 + c.len()];
        if !key.verify(signed.as_bytes(), &signature) {
            return Err(TokenError::Signature);
        }

        // The signature holds: the claims are the identity platform's. Now check what they say.
        let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| malformed("claims are not a JSON object of the expected types"))?;
        let now_s = unix_seconds(now);
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let exp = seconds(&claims.exp, "exp")?.ok_or(TokenError::Claim { claim: "exp" })?;
        if now_s.saturating_sub(leeway) >= exp {
            return Err(TokenError::Expired { exp, now: now_s });
        }
        if let Some(nbf) = seconds(&claims.nbf, "nbf")? {
            if now_s.saturating_add(leeway) < nbf {
                return Err(TokenError::NotYetValid { nbf, now: now_s });
            }
        }
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
        let (tenant, issuer_version) = issuer_tenant(&iss).ok_or(TokenError::Issuer)?;
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
                Some(serde_json::Value::String(v))
                    if v.eq_ignore_ascii_case(GRAPH_CHANGE_TRACKING_APP_ID) => {}
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
        Ok(ValidatedToken {
            tenant_id,
            app_id,
            expires_at: exp,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_name_their_tenant_exactly() {
        assert_eq!(
            issuer_tenant("https://sts.windows.net/abc/"),
            Some(("abc", TokenVersion::V1))
        );
        assert_eq!(
            issuer_tenant("https://login.microsoftonline.com/abc/v2.0"),
            Some(("abc", TokenVersion::V2))
        );
        assert_eq!(issuer_tenant("https://sts.windows.net/abc"), None);
        assert_eq!(issuer_tenant("https://sts.windows.net//"), None);
        assert_eq!(issuer_tenant("https://sts.windows.net/a/b/"), None);
        assert_eq!(issuer_tenant("https://sts.windows.net.evil.com/abc/"), None);
        assert_eq!(issuer_tenant("http://sts.windows.net/abc/"), None);
        assert_eq!(
            issuer_tenant("https://login.microsoftonline.com/abc/v2.0/x"),
            None
        );
    }

    #[test]
    fn seconds_accept_integers_and_floats() {
        assert_eq!(seconds(&Some(5.into()), "exp"), Ok(Some(5)));
        let f = serde_json::Number::from_f64(5.9).unwrap();
        assert_eq!(seconds(&Some(f), "exp"), Ok(Some(5)));
        assert_eq!(seconds(&None, "exp"), Ok(None));
    }
}
