//! The identity platform of the tenant (the v2.0 authorize and token endpoints), the tenant's
//! users, and who each call to Graph's API acts as: the access tokens it issues, checked on every
//! call unless any bearer is accepted.
//!
//! Access tokens are RS256 JWTs signed with the key of the simulator's JWKS. RSA PKCS#1 v1.5
//! signatures are deterministic, so a token is checked by signing its header and claims again
//! with that key and comparing in constant time; each token is checked once and remembered.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::caller::{Caller, Checked, CodeGrant, Platform, CALLER};
use super::store::Graph;
use crate::state::RefreshGrant;
use crate::types::User;
use crate::util::{now_ms, param, ApiError, ApiResult};

/// Graph's audience (`aud` of its access tokens).
pub(crate) const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// Graph's application id, the other spelling of its audience.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// An authorization code is good once, for this long (the platform's: about 10 minutes).
const CODE_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// A refresh token is good for this long (the platform's: 90 days). Each use answers a new one,
/// and, as on the Microsoft identity platform, the one used is not revoked by it: it stays good
/// until it expires or its user's tokens are revoked, so several copies of an app that share a
/// person's stored token do not sign each other out.
const REFRESH_LIFETIME_MS: i64 = 90 * 24 * 60 * 60 * 1000;
/// Refresh tokens kept per user at most (past it, the oldest is forgotten first; expired ones
/// are forgotten whenever one is issued), so that the state stays bounded.
const REFRESH_KEPT_PER_USER: usize = 1024;
/// What every refresh token the simulator issues starts with, so a check can search for them.
pub(crate) const REFRESH_PREFIX: &str = "simrt.";
/// Graph's scopes granted when a sign-in asks for none (or `.default`).
const DEFAULT_SCOPES: &str = "Chat.ReadWrite ChatMessage.Send User.ReadBasic.All";
/// The application permissions of an app token (client credentials).
const APP_ROLES: [&str; 4] = [
    "Chat.ReadWrite.All",
    "ChatMessage.Read.All",
    "ChatMember.Read.All",
    "User.Read.All",
];
/// The OpenID Connect scopes, which grant no access to Graph.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];
/// Checked tokens remembered at most (then forgotten all at once; checking again is cheap).
const CHECKED_CACHE: usize = 4096;
/// Codes not redeemed yet kept at most (the oldest are forgotten first).
const CODES_KEPT: usize = 4096;

/// An error of the identity platform: `{"error", "error_description"}`.
#[derive(Debug)]
pub(crate) struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: 400,
            error,
            description: description.into(),
        }
    }
    /// The body, as the platform answers.
    pub fn to_json(&self) -> Value {
        json!({
            "error": self.error,
            "error_description": self.description,
            "timestamp": crate::util::fmt_ms(now_ms()),
        })
    }
}

/// What the authorize endpoint answers.
pub(crate) enum Authorize {
    /// 302 to this URL.
    Redirect(String),
    /// The page listing the users (HTML).
    Page(String),
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64URL.encode(bytes)
}

/// Forgets the refresh tokens that have expired, and, past [`REFRESH_KEPT_PER_USER`] of
/// `user_id`'s, that user's oldest, making room for one more.
fn forget_spent_refresh_tokens(
    tokens: &mut std::collections::BTreeMap<String, RefreshGrant>,
    user_id: &str,
    now: i64,
) {
    tokens.retain(|_, g| now - g.issued_ms < REFRESH_LIFETIME_MS);
    let mut theirs: Vec<(i64, String)> = tokens
        .iter()
        .filter(|(_, g)| g.user_id.eq_ignore_ascii_case(user_id))
        .map(|(k, g)| (g.issued_ms, k.clone()))
        .collect();
    if theirs.len() >= REFRESH_KEPT_PER_USER {
        theirs.sort();
        for (_, key) in theirs.iter().take(theirs.len() + 1 - REFRESH_KEPT_PER_USER) {
            tokens.remove(key);
        }
    }
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `uri` is loopback `http://` (`127.0.0.0/8`, `[::1]` or `localhost`, any port).
fn is_loopback_http(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The Graph scopes of a requested `scope`: the OpenID ones left out, Graph's resource prefix
/// taken off; the defaults when none is left or `.default` is asked.
fn graph_scopes(scope: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in scope.split_whitespace() {
        let s = s.strip_prefix("https://graph.microsoft.com/").unwrap_or(s);
        if OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s)) {
            continue;
        }
        if s == ".default" {
            return DEFAULT_SCOPES.into();
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        DEFAULT_SCOPES.into()
    } else {
        out.join(" ")
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(401, "InvalidAuthenticationToken", message)
}

impl Graph {
    fn platform(&self) -> std::sync::MutexGuard<'_, Platform> {
        self.platform.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant's users, the signed-in user of the configuration first.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The user named by id or principal name.
    pub(crate) fn find_user(&self, id_or_upn: &str) -> Option<&User> {
        self.users.iter().find(|u| {
            u.id.eq_ignore_ascii_case(id_or_upn)
                || u.user_principal_name.eq_ignore_ascii_case(id_or_upn)
        })
    }

    /// Whether `name` (an id, a principal name, or `me`) names the user `id`.
    pub(super) fn names_user(&self, name: &str, id: &str) -> bool {
        name.eq_ignore_ascii_case(id)
            || (name.eq_ignore_ascii_case("me") && self.me().eq_ignore_ascii_case(id))
            || self
                .find_user(name)
                .is_some_and(|u| u.id.eq_ignore_ascii_case(id))
    }

    /// Who the call being served acts as (outside a call: the configuration's user).
    pub(super) fn caller() -> Caller {
        CALLER.try_with(Caller::clone).unwrap_or(Caller::Anyone)
    }

    /// The display name of the user the call acts as.
    pub(super) fn my_name(&self) -> String {
        let me = self.me();
        self.find_user(&me)
            .map(|u| u.display_name.clone())
            .unwrap_or_else(|| self.config.user_display_name.clone())
    }

    /// `GET /{tenant}/oauth2/v2.0/authorize`.
    pub fn authorize(&self, pairs: &[(String, String)]) -> Result<Authorize, OAuthError> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let client_id = get("client_id").unwrap_or("");
        if client_id != self.config.app_id {
            return Err(OAuthError::new(
                "unauthorized_client",
                format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory."),
            ));
        }
        let redirect_uri = get("redirect_uri").unwrap_or("");
        if !is_loopback_http(redirect_uri)
            && !self.config.redirect_uris.iter().any(|r| r == redirect_uri)
        {
            return Err(OAuthError::new(
                "invalid_request",
                "AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application (loopback http:// or one given with --redirect-uri).",
            ));
        }
        if get("response_type") != Some("code") {
            return Err(OAuthError::new(
                "unsupported_response_type",
                "AADSTS70005: response_type must be 'code' (the authorization code flow).",
            ));
        }
        let challenge = get("code_challenge").unwrap_or("");
        if challenge.is_empty() {
            return Err(OAuthError::new(
                "invalid_request",
                "AADSTS50148: code_challenge is required (PKCE with code_challenge_method=S256).",
            ));
        }
        if get("code_challenge_method") != Some("S256") {
            return Err(OAuthError::new(
                "invalid_request",
                "AADSTS50148: code_challenge_method must be S256 (plain is not accepted).",
            ));
        }
        let Some(hint) = get("login_hint").filter(|h| !h.is_empty()) else {
            return Ok(Authorize::Page(self.users_page(pairs)));
        };
        let user = self.find_user(hint).ok_or_else(|| {
            OAuthError::new(
                "invalid_request",
                format!("AADSTS50034: The user account {hint} does not exist in the tenant."),
            )
        })?;
        let code = random_token();
        {
            let mut p = self.platform();
            let now = now_ms();
            p.codes.retain(|_, c| now - c.issued_ms < CODE_LIFETIME_MS);
            if p.codes.len() >= CODES_KEPT {
                if let Some(oldest) = p
                    .codes
                    .iter()
                    .min_by_key(|(_, c)| c.issued_ms)
                    .map(|(k, _)| k.clone())
                {
                    p.codes.remove(&oldest);
                }
            }
            p.codes.insert(
                code.clone(),
                CodeGrant {
                    user_id: user.id.clone(),
                    client_id: client_id.to_string(),
                    redirect_uri: redirect_uri.to_string(),
                    challenge: challenge.to_string(),
                    scope: get("scope").unwrap_or("").to_string(),
                    nonce: get("nonce").map(str::to_string),
                    issued_ms: now,
                },
            );
        }
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("code", &code);
        if let Some(state) = get("state") {
            query.append_pair("state", state);
        }
        let sep = if redirect_uri.contains('?') { '&' } else { '?' };
        Ok(Authorize::Redirect(format!(
            "{redirect_uri}{sep}{}",
            query.finish()
        )))
    }

    /// The page without `login_hint`: each user a link that signs in as them.
    fn users_page(&self, pairs: &[(String, String)]) -> String {
        let mut items = String::new();
        for u in &self.users {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs.iter().filter(|(k, _)| k != "login_hint") {
                query.append_pair(k, v);
            }
            query.append_pair("login_hint", &u.id);
            let href = format!(
                "/{}/oauth2/v2.0/authorize?{}",
                self.config.tenant_id,
                query.finish()
            );
            items.push_str(&format!(
                "<li><a href=\"{}\">{}</a> <span>{}</span></li>\n",
                escape_html(&href),
                escape_html(&u.display_name),
                escape_html(&u.user_principal_name)
            ));
        }
        format!(
            "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Sign in - graph-sim</title></head>\n<body>\n<main>\n<h1>Pick an account</h1>\n<p>Sign in to the simulated tenant as one of its users.</p>\n<ul>\n{items}</ul>\n</main>\n</body>\n</html>\n"
        )
    }

    /// `POST /{tenant}/oauth2/v2.0/token` (a form).
    pub fn token_endpoint(&self, body: &[u8]) -> Result<Value, OAuthError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let client_id = get("client_id").unwrap_or("");
        if client_id != self.config.app_id {
            return Err(OAuthError {
                status: 401,
                error: "invalid_client",
                description: format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory."),
            });
        }
        let now = now_ms();
        match get("grant_type").unwrap_or("") {
            "authorization_code" => {
                let code = get("code").unwrap_or("");
                // A code is good once: taken out on its first redemption, right or wrong.
                let grant = self.platform().codes.remove(code);
                let grant = grant
                    .filter(|g| now - g.issued_ms < CODE_LIFETIME_MS)
                    .ok_or_else(|| {
                        OAuthError::new(
                            "invalid_grant",
                            "AADSTS70008: The provided authorization code is expired, was already redeemed or was not issued.",
                        )
                    })?;
                if grant.client_id != client_id
                    || get("redirect_uri") != Some(grant.redirect_uri.as_str())
                {
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "AADSTS50011: The redirect URI or client does not match the one the code was issued for.",
                    ));
                }
                let verifier = get("code_verifier").unwrap_or("");
                let computed = B64URL.encode(Sha256::digest(verifier.as_bytes()));
                if !bool::from(computed.as_bytes().ct_eq(grant.challenge.as_bytes())) {
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "AADSTS501481: The code_verifier does not match the code_challenge supplied in the authorization request.",
                    ));
                }
                let user = self.find_user(&grant.user_id).cloned().ok_or_else(|| {
                    OAuthError::new("invalid_grant", "AADSTS50034: The user no longer exists.")
                })?;
                Ok(self.delegated_reply(
                    &user,
                    client_id,
                    &graph_scopes(&grant.scope),
                    grant.nonce.as_deref(),
                    now,
                ))
            }
            "refresh_token" => {
                let presented = get("refresh_token").unwrap_or("");
                let key = sha256_hex(presented);
                // Redeeming does not revoke the token (as on the identity platform): it stays
                // good until it expires or its user's tokens are revoked.
                let grant = self.lock().state.refresh_tokens.get(&key).cloned();
                let grant = grant
                    .filter(|g| {
                        presented.starts_with(REFRESH_PREFIX)
                            && g.client_id == client_id
                            && now - g.issued_ms < REFRESH_LIFETIME_MS
                    })
                    .ok_or_else(|| {
                        OAuthError::new(
                            "invalid_grant",
                            "AADSTS700082: The refresh token has expired, was revoked or was not issued to this client.",
                        )
                    })?;
                let user = self.find_user(&grant.user_id).cloned().ok_or_else(|| {
                    OAuthError::new("invalid_grant", "AADSTS50034: The user no longer exists.")
                })?;
                // A refresh may name Graph scopes again; with none named (or OpenID ones
                // only), the grant's scopes stay.
                let names_graph_scopes = get("scope").is_some_and(|s| {
                    s.split_whitespace()
                        .any(|x| !OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(x)))
                });
                let scope = match get("scope") {
                    Some(s) if names_graph_scopes => graph_scopes(s),
                    _ => grant.scope.clone(),
                };
                Ok(self.delegated_reply(&user, client_id, &scope, None, now))
            }
            "client_credentials" => {
                if get("client_secret").is_none_or(str::is_empty)
                    && get("client_assertion").is_none_or(str::is_empty)
                {
                    return Err(OAuthError {
                        status: 401,
                        error: "invalid_client",
                        description: "AADSTS7000218: The request body must contain client_secret or client_assertion.".into(),
                    });
                }
                let (token, _) = self.mint_app(now);
                let secs = self.config.token_lifetime.as_secs();
                Ok(json!({
                    "token_type": "Bearer",
                    "expires_in": secs,
                    "ext_expires_in": secs,
                    "access_token": token,
                }))
            }
            other => Err(OAuthError::new(
                "unsupported_grant_type",
                format!("AADSTS70003: The grant type '{other}' is not supported: authorization_code, refresh_token or client_credentials."),
            )),
        }
    }

    /// An access token, a new refresh token and an ID token for `user`.
    fn delegated_reply(
        &self,
        user: &User,
        client_id: &str,
        scope: &str,
        nonce: Option<&str>,
        now: i64,
    ) -> Value {
        let (access, _) = self.mint_delegated(user, scope, now);
        let refresh = format!("{REFRESH_PREFIX}{}", random_token());
        {
            let mut store = self.lock();
            forget_spent_refresh_tokens(&mut store.state.refresh_tokens, &user.id, now);
            store.state.refresh_tokens.insert(
                sha256_hex(&refresh),
                RefreshGrant {
                    user_id: user.id.clone(),
                    client_id: client_id.to_string(),
                    scope: scope.to_string(),
                    issued_ms: now,
                },
            );
            self.persist(&store);
        }
        let secs = now / 1000;
        let exp = secs + self.config.token_lifetime.as_secs() as i64;
        let mut id_claims = json!({
            "aud": client_id,
            "iss": format!("https://login.microsoftonline.com/{}/v2.0", self.config.tenant_id),
            "iat": secs, "nbf": secs, "exp": exp,
            "sub": user.id, "oid": user.id, "tid": self.config.tenant_id,
            "name": user.display_name, "preferred_username": user.user_principal_name,
            "ver": "2.0",
        });
        if let Some(n) = nonce {
            id_claims["nonce"] = n.into();
        }
        let id_token = self.crypto.sign(&self.crypto.header(), &id_claims);
        let lifetime = self.config.token_lifetime.as_secs();
        json!({
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
        })
    }

    /// A delegated access token for `user`; and its expiry (milliseconds).
    pub(crate) fn mint_delegated(&self, user: &User, scope: &str, now: i64) -> (String, i64) {
        let secs = now / 1000;
        let exp = secs + self.config.token_lifetime.as_secs() as i64;
        let claims = json!({
            "aud": GRAPH_AUDIENCE,
            "iss": format!("https://sts.windows.net/{}/", self.config.tenant_id),
            "iat": secs, "nbf": secs, "exp": exp,
            "tid": self.config.tenant_id,
            "oid": user.id, "sub": user.id,
            "upn": user.user_principal_name, "unique_name": user.user_principal_name,
            "name": user.display_name,
            "scp": scope,
            "appid": self.config.app_id,
            "idtyp": "user", "ver": "1.0",
        });
        (self.crypto.sign(&self.crypto.header(), &claims), exp * 1000)
    }

    /// An app token (client credentials): `roles`, no user; and its expiry (milliseconds).
    pub(crate) fn mint_app(&self, now: i64) -> (String, i64) {
        let secs = now / 1000;
        let exp = secs + self.config.token_lifetime.as_secs() as i64;
        let claims = json!({
            "aud": GRAPH_AUDIENCE,
            "iss": format!("https://sts.windows.net/{}/", self.config.tenant_id),
            "iat": secs, "nbf": secs, "exp": exp,
            "tid": self.config.tenant_id,
            "roles": APP_ROLES,
            "appid": self.config.app_id,
            "idtyp": "app", "ver": "1.0",
        });
        (self.crypto.sign(&self.crypto.header(), &claims), exp * 1000)
    }

    /// A delegated access token for a user of the tenant, as the token endpoint would issue it,
    /// without the sign-in (for tests).
    pub fn token_for(&self, user_id: &str) -> ApiResult<String> {
        let user = self
            .find_user(user_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("User '{user_id}' is not in the tenant")))?;
        Ok(self.mint_delegated(&user, DEFAULT_SCOPES, now_ms()).0)
    }

    /// An app token, as the token endpoint issues for client credentials (for tests).
    pub fn app_token(&self) -> String {
        self.mint_app(now_ms()).0
    }

    /// Revokes every refresh token of a user (`POST /_sim/users/{id}/revoke`); access tokens
    /// already issued stay valid until they expire.
    pub fn revoke(&self, user_id: &str) -> ApiResult<()> {
        let user = self
            .find_user(user_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("User '{user_id}' is not in the tenant")))?;
        let mut store = self.lock();
        store
            .state
            .refresh_tokens
            .retain(|_, g| !g.user_id.eq_ignore_ascii_case(&user.id));
        self.persist(&store);
        Ok(())
    }

    /// Who a call with this `Authorization` header acts as; 401 when the bearer is missing,
    /// forged, for another audience or expired (any bearer passes when accepted).
    pub fn authenticate(&self, authorization: Option<&str>) -> ApiResult<Caller> {
        let token = authorization
            .and_then(|v| {
                v.get(..7)
                    .filter(|s| s.eq_ignore_ascii_case("bearer "))
                    .and_then(|_| v.get(7..))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("Access token is empty."))?;
        if self.config.accept_any_token {
            return Ok(Caller::Anyone);
        }
        let now = now_ms();
        let cached = self.platform().checked.get(token).cloned();
        let checked = match cached {
            Some(c) => c,
            None => {
                let c = self.check_token(token, now)?;
                let mut p = self.platform();
                if p.checked.len() >= CHECKED_CACHE {
                    p.checked.clear();
                }
                p.checked.insert(token.to_string(), c.clone());
                c
            }
        };
        if checked.expires_ms <= now {
            return Err(unauthorized(
                "Lifetime validation failed, the token is expired.",
            ));
        }
        Ok(match checked.oid {
            Some(oid) => Caller::User {
                oid,
                issued_ms: checked.issued_ms,
                expires_ms: checked.expires_ms,
            },
            None => Caller::App,
        })
    }

    /// Checks a token's signature, audience, issuer and tenant (not its expiry).
    fn check_token(&self, token: &str, now: i64) -> ApiResult<Checked> {
        let malformed = || unauthorized("IDX14100: JWT is not well formed.");
        let (input, _) = token.rsplit_once('.').ok_or_else(malformed)?;
        let (_, claims) = input.split_once('.').ok_or_else(malformed)?;
        let expected = self.crypto.sign_input(input);
        if !bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
            return Err(unauthorized(
                "Access token validation failure. Invalid signature.",
            ));
        }
        let claims: Value = B64URL
            .decode(claims)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(malformed)?;
        let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
        if aud != GRAPH_AUDIENCE && aud != GRAPH_APP_ID {
            return Err(unauthorized(
                "Access token validation failure. Invalid audience.",
            ));
        }
        if claims.get("tid").and_then(Value::as_str) != Some(self.config.tenant_id.as_str()) {
            return Err(unauthorized(
                "Access token validation failure. Invalid tenant.",
            ));
        }
        let secs = |name: &str| claims.get(name).and_then(Value::as_i64);
        let (Some(iat), Some(exp)) = (secs("iat"), secs("exp")) else {
            return Err(malformed());
        };
        if secs("nbf").is_some_and(|nbf| nbf * 1000 > now + 5 * 60 * 1000) {
            return Err(unauthorized("The token is not valid yet."));
        }
        Ok(Checked {
            oid: claims.get("scp").and(
                claims
                    .get("oid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            issued_ms: iat * 1000,
            expires_ms: exp * 1000,
        })
    }

    /// 403 for a delegated call on another user's `/users/{id}/...` or on a chat its user is
    /// not a member of.
    pub fn check_access(&self, caller: &Caller, rest: &[&str]) -> ApiResult<()> {
        let Caller::User { oid, .. } = caller else {
            return Ok(());
        };
        if let ["users", u, _, ..] = rest {
            if !self.names_user(u, oid) {
                return Err(ApiError::forbidden(
                    "A delegated token acts for its own user only.",
                ));
            }
        }
        let chat = match rest {
            ["chats", c, ..] => Some(*c),
            ["me", "chats", c, ..] | ["users", _, "chats", c, ..] => Some(*c),
            _ => None,
        };
        if let Some(c) = chat.filter(|c| *c != "getAllMessages") {
            let store = self.lock();
            if let Some(chat) = store.state.chats.iter().find(|x| x.id == c) {
                if !chat.has_member(oid) {
                    return Err(ApiError::forbidden(format!(
                        "The user is not a member of chat '{c}'."
                    )));
                }
            }
        }
        Ok(())
    }

    /// A user as Graph's `/users/{id}` returns one.
    fn user_json(&self, u: &User, version: &str, single: bool) -> Value {
        let mut words = u.display_name.split_whitespace();
        let given = words.next();
        let surname = words.last();
        let mut v = json!({
            "businessPhones": [],
            "displayName": u.display_name,
            "givenName": given,
            "jobTitle": null,
            "mail": u.user_principal_name,
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": null,
            "surname": surname,
            "userPrincipalName": u.user_principal_name,
            "id": u.id,
        });
        if single {
            v["@odata.context"] =
                format!("{}{version}/$metadata#users/$entity", self.base_url).into();
        }
        v
    }

    /// `GET /me`: the user the token acts for.
    pub fn me_json(&self, version: &str) -> ApiResult<Value> {
        if matches!(Self::caller(), Caller::App) {
            return Err(ApiError::bad(
                "/me request is only valid with delegated authentication flow.",
            ));
        }
        self.get_user(&self.me(), version)
    }

    /// `GET /users/{id or userPrincipalName}`.
    pub fn get_user(&self, id: &str, version: &str) -> ApiResult<Value> {
        let u = self.find_user(id).ok_or_else(|| {
            ApiError::new(
                404,
                "Request_ResourceNotFound",
                format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
            )
        })?;
        Ok(self.user_json(u, version, true))
    }

    /// `GET /users[?$search="displayName:ad"]`: `$search` needs `ConsistencyLevel: eventual`;
    /// a `"property:words"` clause matches users with a word of that property starting with
    /// each word (case-insensitive), as Graph's tokenized search does.
    pub fn list_users(
        &self,
        pairs: &[(String, String)],
        eventual: bool,
        version: &str,
    ) -> ApiResult<Value> {
        let search = param(pairs, "$search");
        if search.is_some() && !eventual {
            return Err(ApiError::new(
                400,
                "Request_UnsupportedQuery",
                "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
            ));
        }
        let clauses: Vec<(String, String)> = match search {
            None => Vec::new(),
            Some(s) => {
                let mut out = Vec::new();
                for clause in s.split(" OR ") {
                    let c = clause.trim().trim_matches('"');
                    let (prop, words) = c.split_once(':').ok_or_else(|| {
                        ApiError::bad(format!(
                            "Syntax error: $search clause '{clause}' is not \"property:value\""
                        ))
                    })?;
                    if ![
                        "displayName",
                        "mail",
                        "userPrincipalName",
                        "givenName",
                        "surname",
                    ]
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(prop))
                    {
                        return Err(ApiError::bad(format!(
                            "$search on '{prop}' is not supported"
                        )));
                    }
                    out.push((prop.to_string(), words.to_lowercase()));
                }
                out
            }
        };
        let value: Vec<Value> = self
            .users
            .iter()
            .map(|u| self.user_json(u, version, false))
            .filter(|v| {
                clauses.is_empty()
                    || clauses.iter().any(|(prop, words)| {
                        let field = v
                            .as_object()
                            .and_then(|o| {
                                o.iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case(prop))
                                    .and_then(|(_, x)| x.as_str())
                            })
                            .unwrap_or("")
                            .to_lowercase();
                        let tokens: Vec<&str> = field
                            .split(|c: char| !c.is_alphanumeric())
                            .filter(|t| !t.is_empty())
                            .collect();
                        words
                            .split_whitespace()
                            .all(|w| tokens.iter().any(|t| t.starts_with(w)))
                    })
            })
            .collect();
        let mut out = json!({
            "@odata.context": format!("{}{version}/$metadata#users", self.base_url),
            "value": value,
        });
        if param(pairs, "$count").is_some_and(|c| c.eq_ignore_ascii_case("true")) {
            out["@odata.count"] = out["value"].as_array().map_or(0, Vec::len).into();
        }
        Ok(out)
    }
}
