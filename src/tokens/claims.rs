//! What a token says and the rules for reading it: the header, the claims, the identity
//! platform's issuers for each cloud, and the publishers a token may name.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::error::TokenError;
use crate::Cloud;

/// The app id of Microsoft Graph's change-tracking service: the publisher of every
/// `validationToken`.
pub const GRAPH_CHANGE_TRACKING_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// The app id of Azure Event Grid's service principal (`Microsoft.EventGrid`): the client of the
/// Microsoft Entra access token Event Grid sends as `Authorization: Bearer ...` when an event
/// subscription delivers to a Microsoft Entra protected webhook. Check those tokens with a
/// validator whose [`publisher`](super::TokenValidator::publisher) is this id and whose app ids
/// are the app (or app ID URI) the event subscription names.
pub const EVENT_GRID_APP_ID: &str = "4962773b-9cdb-44cf-a8bf-237846a00ab7";

#[derive(Deserialize)]
pub(super) struct Header {
    pub(super) alg: Option<String>,
    pub(super) kid: Option<String>,
    pub(super) x5t: Option<String>,
    /// Any value, `null` included: whatever it lists, the token is refused.
    #[serde(default, deserialize_with = "present")]
    pub(super) crit: Option<serde_json::Value>,
}

/// A member that is present, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
pub(super) struct Claims {
    pub(super) aud: Option<Audience>,
    pub(super) iss: Option<String>,
    pub(super) exp: Option<serde_json::Number>,
    pub(super) nbf: Option<serde_json::Number>,
    pub(super) appid: Option<serde_json::Value>,
    pub(super) azp: Option<serde_json::Value>,
    pub(super) tid: Option<serde_json::Value>,
    pub(super) ver: Option<serde_json::Value>,
}

pub(super) fn seconds(
    n: &Option<serde_json::Number>,
    claim: &'static str,
) -> Result<Option<i64>, TokenError> {
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

/// Seconds since the Unix epoch, negative before it.
pub(super) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The two token formats of the identity platform, which name the publisher in different claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenVersion {
    /// Issuer `https://sts.windows.net/{tenant}/`; the publisher is in `appid`.
    V1,
    /// Issuer `https://login.microsoftonline.com/{tenant}/v2.0`; the publisher is in `azp`.
    V2,
}

impl TokenVersion {
    /// The claim that must name the publisher.
    pub(super) fn publisher_claim(self) -> &'static str {
        match self {
            Self::V1 => "appid",
            Self::V2 => "azp",
        }
    }
}

/// The tenant named by an identity-platform issuer of `cloud`, and the token format the issuer
/// belongs to.
pub(super) fn issuer_tenant(iss: &str, cloud: Cloud) -> Option<(&str, TokenVersion)> {
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
