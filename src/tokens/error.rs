//! [`TokenError`] (a token refused) and [`JwksError`] (a JWKS document refused): never the
//! token itself.

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
    /// for `validationTokens` (see
    /// [`TokenValidator::publisher`](super::TokenValidator::publisher)).
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

    /// The `kid` to ask a [`JwksRefresh`](super::JwksRefresh) policy about: the unknown key's
    /// id, or `""` when no JWKS is loaded; `None` for every other error.
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
