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
//! Issuers and JWKS hosts follow the [`Cloud`](crate::Cloud) the validator is set to (the global
//! service by default).
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

mod bounded;
mod claims;
mod error;
mod refresh;
mod validator;

pub use claims::{EVENT_GRID_APP_ID, GRAPH_CHANGE_TRACKING_APP_ID};
pub use error::{JwksError, TokenError};
pub use refresh::{JwksDecision, JwksFetch, JwksRefresh};
pub use validator::{TokenValidator, ValidatedToken};
