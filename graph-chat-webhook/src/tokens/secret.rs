//! The values the identity platform hands out, and why getting one failed. Every secret here is
//! wiped from memory when its last copy goes, and prints as `[redacted]`.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use zeroize::Zeroizing;

/// Defines a secret string: shared, zeroized, redacted in `Debug`.
macro_rules! secret {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(Arc<Zeroizing<String>>);

        impl $name {
            /// Wraps a value (read from storage, or handed over by the identity platform).
            pub fn new(secret: impl Into<String>) -> Self {
                Self(Arc::new(Zeroizing::new(secret.into())))
            }

            /// The value itself: send it where it belongs, never to a log.
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            /// Never the value.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            /// Whether both hold the same value (the same token, twice).
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || self.secret() == other.secret()
            }
        }

        impl Eq for $name {}
    };
}

secret!(
    /// A bearer token for Graph: the `Authorization: Bearer` of a call.
    AccessToken
);

secret!(
    /// A refresh token: with the client's credentials, it buys new access tokens (for 90 days
    /// by default, and it is replaced at each use). Store it encrypted.
    RefreshToken
);

secret!(
    /// The PKCE verifier of a sign-in under way: keep it with the sign-in's `state` (never in
    /// the browser), and hand it to [`OAuthClient::redeem_code`](super::OAuthClient::redeem_code).
    PkceVerifier
);

/// What the token endpoint answered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token (with the `offline_access` scope; none for client credentials).
    pub refresh_token: Option<RefreshToken>,
    /// When the access token expires (from `expires_in`, counted from the answer).
    pub expires_at: SystemTime,
    /// The claims of the `id_token` (with the `openid` scope).
    pub id_claims: Option<IdClaims>,
}

impl TokenSet {
    /// A set made of stored parts (a person's refresh token kept across restarts, and an
    /// access token that may already have expired).
    pub fn new(
        access_token: AccessToken,
        refresh_token: Option<RefreshToken>,
        expires_at: SystemTime,
    ) -> Self {
        Self {
            access_token,
            refresh_token,
            expires_at,
            id_claims: None,
        }
    }
}

/// Who signed in: the claims of the `id_token` the token endpoint returned.
///
/// The `id_token` arrives straight from the token endpoint over TLS, in answer to this client's
/// own request, so its signature is not checked (the OpenID Connect rule for the code flow); its
/// `nonce` is: compare it with the sign-in's by [`IdClaims::check_nonce`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdClaims {
    /// The user's object id in the tenant (the Graph user id).
    pub oid: String,
    /// The user's display name.
    pub name: Option<String>,
    /// The user's sign-in name (usually the UPN).
    pub preferred_username: Option<String>,
    /// The tenant.
    pub tid: Option<String>,
    /// The nonce the sign-in sent.
    pub nonce: Option<String>,
}

impl fmt::Debug for IdClaims {
    /// The ids; the nonce redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdClaims")
            .field("oid", &self.oid)
            .field("name", &self.name)
            .field("preferred_username", &self.preferred_username)
            .field("tid", &self.tid)
            .field("nonce", &self.nonce.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl IdClaims {
    /// Decodes the payload of an `id_token` (a JWT). The signature is not checked: see the
    /// type's documentation.
    pub fn from_id_token(id_token: &str) -> Result<Self, TokenError> {
        #[derive(serde::Deserialize)]
        struct Raw {
            oid: Option<String>,
            sub: Option<String>,
            name: Option<String>,
            preferred_username: Option<String>,
            tid: Option<String>,
            nonce: Option<String>,
        }
        let malformed = || TokenError::Malformed {
            reason: "the id_token is not a JWT with a JSON payload",
        };
        let mut parts = id_token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| malformed())?;
        let raw: Raw = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
        let oid = raw.oid.or(raw.sub).ok_or(TokenError::Malformed {
            reason: "the id_token names no user (no oid)",
        })?;
        Ok(Self {
            oid,
            name: raw.name,
            preferred_username: raw.preferred_username,
            tid: raw.tid,
            nonce: raw.nonce,
        })
    }

    /// Whether the token carries the nonce the sign-in sent (compared in constant time).
    pub fn check_nonce(&self, expected: &str) -> Result<(), TokenError> {
        let Some(nonce) = &self.nonce else {
            return Err(TokenError::NonceMismatch);
        };
        let (a, b) = (nonce.as_bytes(), expected.as_bytes());
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same {
            Ok(())
        } else {
            Err(TokenError::NonceMismatch)
        }
    }
}

/// Why no token was had. Never holds a token, a code or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The grant is dead: a refresh token revoked or expired, a code reused, expired or
    /// redeemed with the wrong verifier (`invalid_grant`). A person must sign in again.
    #[error("the identity platform refused the grant (invalid_grant): sign in again")]
    InvalidGrant,
    /// The identity platform refused the request for another reason (a wrong client id or
    /// secret, a scope not granted, a server error).
    #[error("the identity platform refused the request: status {status}, error {error}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code (`invalid_client`, `invalid_scope`, ...), or `unknown`.
        error: String,
    },
    /// No answer: the connection, TLS or the timeout failed (try again later).
    #[error("the identity platform could not be reached: {reason}")]
    Transport {
        /// What failed (never a URL's query, never a body).
        reason: String,
    },
    /// An answer that is not what the protocol says.
    #[error("the identity platform's answer is malformed: {reason}")]
    Malformed {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The `id_token`'s nonce is not the sign-in's.
    #[error("the id_token's nonce is not the one this sign-in sent")]
    NonceMismatch,
    /// A configuration this client cannot use (an authority that is not a URL, a redirect URI
    /// that is not absolute).
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}
