//! The identity platform's signing keys: where they come from, and the one rule for a token that
//! names a key not yet known.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use graph_chat_notifications::tokens::{JwksDecision, JwksRefresh, TokenValidator};
use graph_chat_notifications::Cloud;

/// The largest JWKS document read: the identity platform's is a few KiB.
const MAX_JWKS_BYTES: u64 = 1 << 20;

/// Where the JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksSource {
    /// Fetched with a GET over `https://` (or `http://`, for tests on loopback).
    Url(String),
    /// Read from a file (and read again on each refresh).
    File(PathBuf),
}

impl JwksSource {
    /// The global identity platform's JWKS (`https://login.microsoftonline.com/common/discovery/v2.0/keys`).
    pub fn identity_platform() -> Self {
        Self::for_cloud(Cloud::Global)
    }

    /// The JWKS of `cloud`'s identity platform.
    pub fn for_cloud(cloud: Cloud) -> Self {
        Self::Url(cloud.jwks_url())
    }

    /// A URL when `s` starts with `http://` or `https://`, else a file path.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("https://") || s.starts_with("http://") {
            Self::Url(s.to_string())
        } else {
            Self::File(PathBuf::from(s))
        }
    }

    /// Refuses a source whose keys a stranger on the network could replace: `http://` is for a
    /// JWKS served on this machine (tests, a local simulator) only.
    pub(crate) fn check(&self) -> Result<(), String> {
        let Self::Url(url) = self else { return Ok(()) };
        if !url.starts_with("http://") {
            return Ok(());
        }
        let loopback = graph_chat_notifications::outbound::is_loopback_url(url);
        if loopback {
            Ok(())
        } else {
            Err(format!(
                "{url}: the signing keys must come over https:// (http:// only from this machine)"
            ))
        }
    }

    /// Fetches the document (blocking).
    pub(crate) fn fetch(&self) -> Result<Vec<u8>, String> {
        match self {
            Self::Url(url) => {
                // A deadline for the whole answer, head and body: a JWKS endpoint that drips
                // would otherwise hold start-up, or the one refresh allowed at a time.
                let agent = crate::client::agent_until_deadline(crate::limits::JWKS_DEADLINE);
                let mut response = agent
                    .get(url)
                    .call()
                    .map_err(|e| format!("GET {url}: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("GET {url}: status {}", response.status()));
                }
                response
                    .body_mut()
                    .with_config()
                    .limit(MAX_JWKS_BYTES)
                    .read_to_vec()
                    .map_err(|e| format!("GET {url}: {e}"))
            }
            Self::File(path) => {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
        }
    }
}

/// What the refresh policy made of a token naming an unknown key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyVerdict {
    /// The JWKS was fetched: check the batch again.
    Refreshed,
    /// Not decided yet: answer 503, so that Graph retries.
    Pending,
    /// A fetch that started after the key was first seen did not list it: forged.
    Forged,
}

/// The source and the policy; the keys go to every validator the caller names (the webhook's
/// `validationTokens` validator, and Event Grid's bearer validator: one identity platform).
pub(crate) struct Jwks {
    source: JwksSource,
    policy: JwksRefresh,
}

impl Jwks {
    pub(crate) fn new(source: JwksSource, min_interval: Duration) -> Self {
        Self {
            source,
            policy: JwksRefresh::new().min_interval(min_interval),
        }
    }

    fn fetch_into(&self, validators: &[&TokenValidator], now: SystemTime) -> Result<usize, String> {
        let bytes = self.source.fetch()?;
        let mut keys = 0;
        for v in validators {
            keys = v.update_jwks(&bytes, now).map_err(|e| e.to_string())?;
        }
        Ok(keys)
    }

    /// The first fetch, at start-up (blocking): it must succeed.
    pub(crate) fn load(&self, validators: &[&TokenValidator]) -> Result<usize, String> {
        let now = SystemTime::now();
        let fetch = self
            .policy
            .start(now)
            .ok_or("a JWKS fetch is already under way")?;
        let keys = self.fetch_into(validators, now)?;
        fetch.succeeded();
        Ok(keys)
    }

    /// The one rule for an unknown `kid` (blocking: it may fetch).
    pub(crate) fn on_unknown_key(&self, validators: &[&TokenValidator], kid: &str) -> KeyVerdict {
        let now = SystemTime::now();
        match self.policy.on_unknown_key(kid, now) {
            JwksDecision::Fetch(fetch) => match self.fetch_into(validators, now) {
                Ok(_) => {
                    fetch.succeeded();
                    KeyVerdict::Refreshed
                }
                Err(e) => {
                    tracing::warn!(target: "graph_chat_webhook", error = %e, "JWKS refresh failed");
                    KeyVerdict::Pending
                }
            },
            JwksDecision::Wait { .. } => KeyVerdict::Pending,
            JwksDecision::Unknown => KeyVerdict::Forged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JwksSource;

    #[test]
    fn http_is_for_this_machine_only() {
        for ok in [
            "https://login.microsoftonline.com/common/discovery/v2.0/keys",
            "http://127.0.0.1:8080/keys",
            "http://localhost/keys",
            "http://[::1]:9/keys",
            "/etc/webhook/jwks.json",
        ] {
            assert_eq!(JwksSource::parse(ok).check(), Ok(()), "{ok}");
        }
        for refused in [
            "http://login.microsoftonline.com/common/discovery/v2.0/keys",
            "http://10.0.0.1/keys",
            "http://127.0.0.1.example.com/keys",
        ] {
            assert!(JwksSource::parse(refused).check().is_err(), "{refused}");
        }
    }
}
