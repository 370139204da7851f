//! Signing people in (`docs/contracts.md#the-chat-app`): the authorization code flow with PKCE
//! against the identity platform, and the sessions that follow it.
//!
//! - `GET /auth/login[?login_hint=H]`: a pending sign-in (its `state`, PKCE verifier and `nonce`)
//!   sealed (AES-256-GCM, under the app's key) into a short-lived cookie of this browser, so
//!   that the server keeps nothing for a sign-in begun and no number of them begun elsewhere
//!   can push this one out; 302 to the authorize endpoint.
//! - `GET /auth/callback?code&state`: the pending sign-in of this browser, opened from its
//!   cookie and good once; `state` compared in constant time; the code redeemed with the
//!   verifier; the id token's `nonce` checked; the person's Graph side started; a session with
//!   a fresh random id (the one the browser brought, if any, ends); 302 to `/`.
//! - `POST /auth/logout`: the session ends; 303 to `/`.
//!
//! Cookies are `HttpOnly`, `SameSite=Lax`, and `Secure` when the public URL is https.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use graph_chat_webhook::tokens::{OAuthClient, PkceVerifier, SignIn};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::accounts::{Accounts, SESSION_LIFETIME};
use crate::people::People;
use crate::sync::GraphSync;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "chat_session";
/// The pending sign-in's cookie.
const LOGIN_COOKIE: &str = "chat_login";
/// How long a sign-in may take between `/auth/login` and `/auth/callback` (the identity
/// platform's codes live about as long).
const LOGIN_LIFETIME: Duration = Duration::from_secs(600);
/// What the sealer binds a pending sign-in's cookie to.
const LOGIN_PURPOSE: &str = "pending sign-in";
/// The longest login cookie opened (a sealed pending sign-in is about 260 characters).
const MAX_LOGIN_COOKIE: usize = 1024;

/// What the app asks the person to grant: their chats (read and write), sending, the people
/// picker's reads, a refresh token, and who they are.
pub const SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "offline_access",
    "Chat.ReadWrite",
    "ChatMessage.Send",
    "User.ReadBasic.All",
];

const SIGN_IN_PAGE: &str = include_str!("page/signin.html");

/// The page runs no script of its own; the sign-in page none at all.
const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// A pending sign-in, opened from its login cookie.
struct Pending {
    state: Zeroizing<String>,
    nonce: Zeroizing<String>,
    pkce_verifier: PkceVerifier,
}

/// The sign-in's state, shared by its routes and the API's session check.
pub(crate) struct SignInState {
    oauth: Arc<OAuthClient>,
    accounts: Accounts,
    people: People,
    secure: bool,
}

impl SignInState {
    /// `secure`: the public URL is https (cookies are `Secure`).
    pub(crate) fn new(
        oauth: Arc<OAuthClient>,
        accounts: Accounts,
        people: People,
        secure: bool,
    ) -> Self {
        Self {
            oauth,
            accounts,
            people,
            secure,
        }
    }

    /// The login cookie of `sign_in`: when it began, its `state`, `nonce` and verifier, sealed.
    fn seal_pending(&self, sign_in: &SignIn) -> String {
        let plain = Zeroizing::new(format!(
            "{}\n{}\n{}\n{}",
            unix_now(),
            sign_in.state.as_str(),
            sign_in.nonce.as_str(),
            sign_in.pkce_verifier.secret()
        ));
        let sealed = self.accounts.sealer().seal(LOGIN_PURPOSE, plain.as_bytes());
        sealed.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The pending sign-in a login cookie holds, once: `None` for a cookie this app did not
    /// seal, one older than [`LOGIN_LIFETIME`], or one brought before (to any copy of the app:
    /// the cookies brought are recorded with the app's records, for [`LOGIN_LIFETIME`]).
    async fn take_pending(&self, cookie: &str) -> Option<Pending> {
        if cookie.len() > MAX_LOGIN_COOKIE {
            return None;
        }
        let sealed = from_hex(cookie)?;
        let plain = self.accounts.sealer().open(LOGIN_PURPOSE, &sealed)?;
        let plain = std::str::from_utf8(&plain).ok()?;
        let mut fields = plain.splitn(4, '\n');
        let started: u64 = fields.next()?.parse().ok()?;
        let (state, nonce, verifier) = (fields.next()?, fields.next()?, fields.next()?);
        let age = unix_now().checked_sub(started)?;
        if age >= LOGIN_LIFETIME.as_secs() {
            return None;
        }
        let key = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &sealed)
            .as_ref()
            .to_vec();
        let accounts = self.accounts.clone();
        match tokio::task::spawn_blocking(move || accounts.spend_login(&key, LOGIN_LIFETIME)).await
        {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot record a sign-in's cookie as used");
                return None;
            }
            Err(_) => return None,
        }
        Some(Pending {
            state: Zeroizing::new(state.to_owned()),
            nonce: Zeroizing::new(nonce.to_owned()),
            pkce_verifier: PkceVerifier::new(verifier),
        })
    }

    fn cookie(&self, name: &str, value: &str, max_age: Duration, path: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            max_age.as_secs()
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The signed-in person a request comes from (their Graph side and name): a session
    /// cookie that is valid, for a person whose Graph side runs.
    pub(crate) async fn signed_in(&self, headers: &HeaderMap) -> Option<(Arc<GraphSync>, String)> {
        let cookie = cookie(headers, SESSION_COOKIE)?.to_owned();
        let accounts = self.accounts.clone();
        let user = tokio::task::spawn_blocking(move || accounts.session_user(&cookie))
            .await
            .ok()?
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot check a session");
                None
            })?;
        let sync = match self.people.get(&user) {
            Some(sync) => sync,
            // Signed in on another copy of the app: taken up here.
            None => self.people.join(&user).await?,
        };
        let name = self.people.display_name(&user).unwrap_or_default();
        Some((sync, name))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The bytes of hex text (digits only, no sign); `None` for anything else.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| char::from(b).to_digit(16);
    if text.len() % 2 != 0 {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => u8::try_from(digit(*high)? * 16 + digit(*low)?).ok(),
            _ => None,
        })
        .collect()
}

/// The value of cookie `name` in a request, if it has one.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The sign-in page (`GET /` without a session).
pub(crate) fn sign_in_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        SIGN_IN_PAGE,
    )
        .into_response()
}

/// A sign-in that did not complete: 400 (or `status`) with a plain reason and the way back.
fn failed(status: StatusCode, why: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("Sign-in did not complete: {why}. Open / to sign in again.\n"),
    )
        .into_response()
}

fn redirect(status: StatusCode, to: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn routes(state: Arc<SignInState>) -> Router {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .with_state(state)
}

#[derive(Deserialize)]
struct LoginQuery {
    login_hint: Option<String>,
}

async fn login(State(state): State<Arc<SignInState>>, Query(q): Query<LoginQuery>) -> Response {
    let hint = q.login_hint.filter(|h| !h.is_empty() && h.len() <= 256);
    let sign_in = state.oauth.begin_sign_in(&SCOPES, hint.as_deref());
    let url = sign_in.url.to_string();
    let cookie = state.seal_pending(&sign_in);
    let mut response = redirect(StatusCode::FOUND, &url);
    response.headers_mut().append(
        header::SET_COOKIE,
        state.cookie(LOGIN_COOKIE, &cookie, LOGIN_LIFETIME, "/auth"),
    );
    response
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(state): State<Arc<SignInState>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let pending = match cookie(&headers, LOGIN_COOKIE) {
        Some(c) => state.take_pending(c).await,
        None => None,
    };
    let Some(sign_in) = pending else {
        return failed(
            StatusCode::BAD_REQUEST,
            "this browser did not start a sign-in, or it took too long",
        );
    };
    if let Some(error) = q.error {
        // The platform's error code only (letters and underscores), never its description.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return failed(
            StatusCode::BAD_REQUEST,
            &format!("the identity platform answered {code}"),
        );
    }
    let given_state = q.state.unwrap_or_default();
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        given_state.as_bytes(),
        sign_in.state.as_bytes(),
    )
    .is_err()
    {
        return failed(StatusCode::BAD_REQUEST, "the state does not match");
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return failed(StatusCode::BAD_REQUEST, "no code");
    };
    let oauth = Arc::clone(&state.oauth);
    let redeemed = tokio::task::spawn_blocking(move || {
        oauth
            .redeem_code(&code, &sign_in.pkce_verifier)
            .map(|t| (t, sign_in))
    })
    .await;
    let (tokens, sign_in) = match redeemed {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "a sign-in's code was not redeemed");
            return failed(StatusCode::BAD_REQUEST, "the code was not accepted");
        }
        Err(_) => return failed(StatusCode::INTERNAL_SERVER_ERROR, "the app is stopping"),
    };
    let nonce_ok = tokens
        .id_claims
        .as_ref()
        .is_some_and(|c| c.check_nonce(&sign_in.nonce).is_ok());
    if !nonce_ok {
        return failed(
            StatusCode::BAD_REQUEST,
            "the id token is not for this sign-in",
        );
    }
    let user = match state.people.sign_in(tokens).await {
        Ok(user) => user,
        Err(e) => {
            tracing::warn!(error = %e, "a person's Graph side did not start");
            return failed(StatusCode::BAD_GATEWAY, "Graph could not be reached");
        }
    };
    let brought = cookie(&headers, SESSION_COOKIE).map(str::to_owned);
    let accounts = state.accounts.clone();
    let session = tokio::task::spawn_blocking(move || {
        if let Some(old) = brought {
            accounts.end_session(&old)?;
        }
        accounts.start_session(&user)
    })
    .await;
    let session = match session {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot start a session");
            return failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the session was not kept",
            );
        }
        Err(_) => return failed(StatusCode::INTERNAL_SERVER_ERROR, "the app is stopping"),
    };
    let mut response = redirect(StatusCode::FOUND, "/");
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        state.cookie(SESSION_COOKIE, session.cookie(), SESSION_LIFETIME, "/"),
    );
    headers.append(
        header::SET_COOKIE,
        state.cookie(LOGIN_COOKIE, "", Duration::ZERO, "/auth"),
    );
    response
}

async fn logout(State(state): State<Arc<SignInState>>, headers: HeaderMap) -> Response {
    if let Some(session) = cookie(&headers, SESSION_COOKIE).map(str::to_owned) {
        let accounts = state.accounts.clone();
        let ended = tokio::task::spawn_blocking(move || accounts.end_session(&session)).await;
        if !matches!(ended, Ok(Ok(()))) {
            return failed(StatusCode::INTERNAL_SERVER_ERROR, "the session did not end");
        }
    }
    let mut response = redirect(StatusCode::SEE_OTHER, "/");
    response.headers_mut().append(
        header::SET_COOKIE,
        state.cookie(SESSION_COOKIE, "", Duration::ZERO, "/"),
    );
    response
}
