//! Where a [`GraphClient`](crate::GraphClient) gets the bearer of each call.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::tokens::oauth::OAuthClient;
use crate::tokens::secret::{AccessToken, RefreshToken, TokenError, TokenSet};

/// The longest a token is refreshed ahead of its expiry.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Hands out bearer tokens, one per call, and a new one when Graph rejected one (401).
pub trait TokenSource: Send + Sync {
    /// A token good for a call now.
    fn token(&self) -> Result<AccessToken, TokenError>;

    /// Graph answered 401 to a call made with `rejected`: a token to retry with. A source that
    /// cannot do better returns `rejected` itself (the 401 then stands); one whose token was
    /// already replaced by another caller returns the new one without asking again.
    fn after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, TokenError>;
}

/// One token, for every call, never renewed: a token obtained elsewhere, or a test's.
#[derive(Debug, Clone)]
pub struct FixedToken(AccessToken);

impl FixedToken {
    /// A source that always hands out `token`.
    pub fn new(token: AccessToken) -> Self {
        Self(token)
    }
}

impl TokenSource for FixedToken {
    fn token(&self) -> Result<AccessToken, TokenError> {
        Ok(self.0.clone())
    }

    fn after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, TokenError> {
        Ok(rejected.clone())
    }
}

/// When a token received at `now`, expiring at `expires_at`, should be replaced: `margin`
/// before its expiry, or a tenth of its lifetime when that is shorter.
fn fresh_until(now: SystemTime, expires_at: SystemTime, margin: Option<Duration>) -> SystemTime {
    let lifetime = expires_at.duration_since(now).unwrap_or_default();
    let margin = margin.unwrap_or_else(|| REFRESH_MARGIN.min(lifetime / 10));
    expires_at.checked_sub(margin).unwrap_or(now)
}

/// Locks, whatever a panicking holder left (the state is replaced whole, never half-written).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the app is told of each new refresh token.
type OnRotate = Box<dyn Fn(&RefreshToken) + Send + Sync>;

/// A person's tokens: the access token refreshed before it expires with the refresh token,
/// which the identity platform replaces at each use.
///
/// * One refresh at a time: callers that find the token stale while another refreshes it wait
///   for that refresh and share its result.
/// * Each new refresh token goes to the callback given to [`PersonTokens::on_rotate`], so the
///   program can store it (encrypted) in place of the spent one.
/// * `invalid_grant` (the person's access was revoked, or the refresh token expired) makes the
///   source failed for good: [`PersonTokens::is_revoked`], and every call after it is
///   [`TokenError::InvalidGrant`] without asking the identity platform again.
/// * A transient failure to refresh (no answer, a 5xx) is returned, unless the current token
///   has not expired yet: then that one is used, and the next call tries again.
///
/// ```no_run
/// use std::sync::Arc;
/// use graph_chat_webhook::GraphClient;
/// use graph_chat_webhook::tokens::{Authority, OAuthClient, PersonTokens, TokenSet};
/// # fn store(_: &str) {}
/// # fn signed_in() -> TokenSet { unimplemented!() }
/// let oauth = Arc::new(OAuthClient::new(
///     Authority::new("http://127.0.0.1:8081", "tenant-1")?,
///     "app-id",
///     None,
///     Some("http://127.0.0.1:8080/auth/callback"),
/// )?);
/// let person = Arc::new(
///     PersonTokens::new(oauth, signed_in()).on_rotate(|rotated| store(rotated.secret())),
/// );
/// let graph = GraphClient::with_token_source("http://127.0.0.1:8081", person.clone());
/// # Ok::<(), graph_chat_webhook::tokens::TokenError>(())
/// ```
pub struct PersonTokens {
    oauth: Arc<OAuthClient>,
    margin: Option<Duration>,
    on_rotate: Option<OnRotate>,
    state: Mutex<PersonState>,
}

struct PersonState {
    access: AccessToken,
    refresh: Option<RefreshToken>,
    expires_at: SystemTime,
    fresh_until: SystemTime,
    revoked: bool,
}

impl fmt::Debug for PersonTokens {
    /// Never a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("PersonTokens")
            .field("oauth", &self.oauth)
            .field("expires_at", &state.expires_at)
            .field("revoked", &state.revoked)
            .finish_non_exhaustive()
    }
}

impl PersonTokens {
    /// A person's source, from the set their sign-in redeemed (or one rebuilt from storage with
    /// [`TokenSet::new`]; an access token already expired is refreshed on first use).
    pub fn new(oauth: Arc<OAuthClient>, tokens: TokenSet) -> Self {
        let now = SystemTime::now();
        Self {
            oauth,
            margin: None,
            on_rotate: None,
            state: Mutex::new(PersonState {
                fresh_until: fresh_until(now, tokens.expires_at, None),
                access: tokens.access_token,
                refresh: tokens.refresh_token,
                expires_at: tokens.expires_at,
                revoked: false,
            }),
        }
    }

    /// Refreshes `margin` before expiry, instead of the default (five minutes, or a tenth of
    /// the token's lifetime when that is shorter).
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        state.fresh_until = fresh_until(SystemTime::now(), state.expires_at, Some(margin));
        self
    }

    /// Calls `f` with each new refresh token, while the source's lock is held (so the stored
    /// token is replaced in the order the identity platform issued them). Keep it short.
    pub fn on_rotate(mut self, f: impl Fn(&RefreshToken) + Send + Sync + 'static) -> Self {
        self.on_rotate = Some(Box::new(f));
        self
    }

    /// Takes the tokens of a new sign-in of the same person in place of those held (whose
    /// refresh token may have been revoked since): the source answers again with them, and the
    /// new refresh token goes to [`on_rotate`](Self::on_rotate), under the source's lock.
    pub fn replace(&self, tokens: TokenSet) {
        let mut state = lock(&self.state);
        if let (Some(new), Some(f)) = (&tokens.refresh_token, &self.on_rotate) {
            if state.refresh.as_ref() != Some(new) {
                f(new);
            }
        }
        state.fresh_until = fresh_until(SystemTime::now(), tokens.expires_at, self.margin);
        state.expires_at = tokens.expires_at;
        state.access = tokens.access_token;
        state.refresh = tokens.refresh_token;
        state.revoked = false;
    }

    /// Whether the refresh token was refused (`invalid_grant`): the person must sign in again.
    pub fn is_revoked(&self) -> bool {
        lock(&self.state).revoked
    }

    /// When the current access token expires.
    pub fn expires_at(&self) -> SystemTime {
        lock(&self.state).expires_at
    }

    /// Refreshes now, under the lock the caller holds.
    fn refresh(&self, state: &mut PersonState) -> Result<AccessToken, TokenError> {
        let Some(refresh) = state.refresh.clone() else {
            // Nothing to refresh with (no `offline_access`): the person must sign in again
            // once this token expires.
            return Err(TokenError::InvalidGrant);
        };
        match self.oauth.refresh(&refresh) {
            Ok(set) => {
                let now = SystemTime::now();
                state.fresh_until = fresh_until(now, set.expires_at, self.margin);
                state.expires_at = set.expires_at;
                state.access = set.access_token;
                if let Some(rotated) = set.refresh_token {
                    if rotated != refresh {
                        if let Some(f) = &self.on_rotate {
                            f(&rotated);
                        }
                    }
                    state.refresh = Some(rotated);
                }
                tracing::debug!(target: "graph_chat_webhook", "access token refreshed");
                Ok(state.access.clone())
            }
            Err(TokenError::InvalidGrant) => {
                state.revoked = true;
                tracing::warn!(
                    target: "graph_chat_webhook",
                    "refresh token refused (invalid_grant): sign-in needed"
                );
                Err(TokenError::InvalidGrant)
            }
            Err(e) => {
                tracing::warn!(target: "graph_chat_webhook", error = %e, "token refresh failed");
                Err(e)
            }
        }
    }
}

impl TokenSource for PersonTokens {
    fn token(&self) -> Result<AccessToken, TokenError> {
        let mut state = lock(&self.state);
        if state.revoked {
            return Err(TokenError::InvalidGrant);
        }
        let now = SystemTime::now();
        if now < state.fresh_until {
            return Ok(state.access.clone());
        }
        match self.refresh(&mut state) {
            Ok(token) => Ok(token),
            // Not refreshed, but the token still holds: use it, try again next call.
            Err(e) if e != TokenError::InvalidGrant && now < state.expires_at => {
                Ok(state.access.clone())
            }
            Err(e) => Err(e),
        }
    }

    fn after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, TokenError> {
        let mut state = lock(&self.state);
        if state.revoked {
            return Err(TokenError::InvalidGrant);
        }
        if state.access != *rejected {
            // Another caller already replaced it.
            return Ok(state.access.clone());
        }
        self.refresh(&mut state)
    }
}

/// The application's own token (client credentials), fetched when first needed and kept until
/// shortly before it expires.
///
/// ```no_run
/// use std::sync::Arc;
/// use graph_chat_webhook::GraphClient;
/// use graph_chat_webhook::notifications::Cloud;
/// use graph_chat_webhook::tokens::{AppTokens, Authority, OAuthClient};
/// let oauth = OAuthClient::new(
///     Authority::for_cloud(Cloud::Global, "contoso.onmicrosoft.com"),
///     "app-id",
///     Some("app-secret"),
///     None,
/// )?;
/// let app = AppTokens::new(oauth, "https://graph.microsoft.com/.default");
/// let graph = GraphClient::with_token_source("https://graph.microsoft.com", Arc::new(app));
/// # Ok::<(), graph_chat_webhook::tokens::TokenError>(())
/// ```
pub struct AppTokens {
    oauth: OAuthClient,
    scope: String,
    cached: Mutex<Option<(AccessToken, SystemTime)>>,
}

impl fmt::Debug for AppTokens {
    /// Never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppTokens")
            .field("oauth", &self.oauth)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl AppTokens {
    /// The application's tokens for `scope` (for Graph, `https://graph.microsoft.com/.default`).
    pub fn new(oauth: OAuthClient, scope: &str) -> Self {
        Self {
            oauth,
            scope: scope.to_owned(),
            cached: Mutex::new(None),
        }
    }

    fn fetch(
        &self,
        cached: &mut Option<(AccessToken, SystemTime)>,
    ) -> Result<AccessToken, TokenError> {
        let set = self.oauth.client_credentials(&self.scope)?;
        let until = fresh_until(SystemTime::now(), set.expires_at, None);
        *cached = Some((set.access_token.clone(), until));
        Ok(set.access_token)
    }
}

impl TokenSource for AppTokens {
    fn token(&self) -> Result<AccessToken, TokenError> {
        let mut cached = lock(&self.cached);
        match &*cached {
            Some((token, until)) if SystemTime::now() < *until => Ok(token.clone()),
            _ => self.fetch(&mut cached),
        }
    }

    fn after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, TokenError> {
        let mut cached = lock(&self.cached);
        match &*cached {
            Some((token, _)) if token != rejected => Ok(token.clone()),
            _ => self.fetch(&mut cached),
        }
    }
}
