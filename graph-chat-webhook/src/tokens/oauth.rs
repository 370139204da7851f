//! The identity platform's OAuth 2.0 endpoints: the authorization code flow with PKCE, refresh,
//! and client credentials, through the `oauth2` crate over the crate's own HTTP agent.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, SystemTime};

use graph_chat_notifications::Cloud;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use zeroize::Zeroizing;

use crate::tokens::secret::{
    AccessToken, IdClaims, PkceVerifier, RefreshToken, TokenError, TokenSet,
};

/// How long one call to the token endpoint may take, connection to last byte.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read from the token endpoint (a token set is a few KiB).
const MAX_TOKEN_RESPONSE_BYTES: u64 = 1 << 20;

/// What an access token's lifetime is taken to be when the answer gives none (`expires_in`).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// The identity platform of one tenant: its base URL and the tenant.
///
/// ```
/// use graph_chat_webhook::notifications::Cloud;
/// use graph_chat_webhook::tokens::Authority;
/// let global = Authority::for_cloud(Cloud::Global, "contoso.onmicrosoft.com");
/// assert_eq!(
///     global.token_url(),
///     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
/// );
/// // A local graph-sim, which is an identity platform too.
/// let sim = Authority::new("http://127.0.0.1:8081/", "tenant-1")?;
/// assert_eq!(sim.authorize_url(), "http://127.0.0.1:8081/tenant-1/oauth2/v2.0/authorize");
/// # Ok::<(), graph_chat_webhook::tokens::TokenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    base: String,
    tenant: String,
}

impl Authority {
    /// The identity platform of `cloud` (`https://login.microsoftonline.com`, its US
    /// Government or China host) for `tenant` (an id, a domain, `organizations` or `common`).
    pub fn for_cloud(cloud: Cloud, tenant: &str) -> Self {
        Self {
            base: cloud.login_url(),
            tenant: tenant.to_owned(),
        }
    }

    /// The identity platform at `base_url` (a local simulator, say) for `tenant`. `http://` is
    /// refused unless the host is this machine: codes, tokens and secrets cross it.
    pub fn new(base_url: &str, tenant: &str) -> Result<Self, TokenError> {
        let base = base_url.trim_end_matches('/');
        let https = base.starts_with("https://");
        let loopback_http = base.starts_with("http://")
            && graph_chat_notifications::outbound::is_loopback_url(base);
        if !(https || loopback_http) {
            return Err(TokenError::Config {
                reason: format!(
                    "{base}: the identity platform must be https:// (http:// only on this machine)"
                ),
            });
        }
        if tenant.is_empty() || tenant.contains(['/', '?', '#']) {
            return Err(TokenError::Config {
                reason: format!("{tenant:?} is not a tenant"),
            });
        }
        Ok(Self {
            base: base.to_owned(),
            tenant: tenant.to_owned(),
        })
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// `{base}/{tenant}/oauth2/v2.0/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/authorize", self.base, self.tenant)
    }

    /// `{base}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.base, self.tenant)
    }
}

/// A sign-in begun: send the browser to `url`; keep `state`, `nonce` and `pkce_verifier` on
/// the server, bound to that browser, until its callback.
#[non_exhaustive]
pub struct SignIn {
    /// The authorize URL to redirect the browser to.
    pub url: String,
    /// The `state` the callback must bring back.
    pub state: Zeroizing<String>,
    /// The `nonce` the `id_token` must carry ([`IdClaims::check_nonce`]).
    pub nonce: Zeroizing<String>,
    /// The PKCE verifier, for [`OAuthClient::redeem_code`].
    pub pkce_verifier: PkceVerifier,
}

impl fmt::Debug for SignIn {
    /// The authorize endpoint only: the query holds the state and nonce.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("SignIn")
            .field("url", &endpoint)
            .field("state", &"[redacted]")
            .field("nonce", &"[redacted]")
            .field("pkce_verifier", &self.pkce_verifier)
            .finish()
    }
}

/// The `id_token` beside the standard fields of a token answer.
#[derive(Clone, serde::Deserialize, serde::Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdTokenField([redacted])")
    }
}

impl ExtraTokenFields for IdTokenField {}

type Answer = StandardTokenResponse<IdTokenField, BasicTokenType>;

type Client = oauth2::Client<
    BasicErrorResponse,
    Answer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A client of the identity platform: one application (its id, and its secret when it is a
/// confidential client), one authority, one redirect URI.
///
/// Its calls block: run them off the async threads (`tokio::task::spawn_blocking`).
///
/// ```no_run
/// use graph_chat_webhook::tokens::{Authority, OAuthClient};
/// let authority = Authority::new("http://127.0.0.1:8081", "tenant-1")?;
/// let client = OAuthClient::new(
///     authority,
///     "app-id",
///     None,
///     Some("http://127.0.0.1:8080/auth/callback"),
/// )?;
/// let sign_in = client.begin_sign_in(&["openid", "profile", "offline_access", "Chat.ReadWrite"], None);
/// // ... redirect the browser to sign_in.url; on its callback, check `state`, then:
/// let tokens = client.redeem_code("the code", &sign_in.pkce_verifier)?;
/// tokens.id_claims.as_ref().unwrap().check_nonce(&sign_in.nonce)?;
/// # Ok::<(), graph_chat_webhook::tokens::TokenError>(())
/// ```
pub struct OAuthClient {
    client: Client,
    authority: Authority,
    agent: ureq::Agent,
}

impl fmt::Debug for OAuthClient {
    /// Never the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("authority", &self.authority)
            .field("client_id", &self.client.client_id().as_str())
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// A client of `authority` as the application `client_id`, with its secret when it is a
    /// confidential client (sent in the request body, as the identity platform documents), and
    /// the redirect URI of its sign-in callback (none for client credentials alone).
    pub fn new(
        authority: Authority,
        client_id: &str,
        client_secret: Option<&str>,
        redirect_uri: Option<&str>,
    ) -> Result<Self, TokenError> {
        let config = |what: &str, e: oauth2::url::ParseError| TokenError::Config {
            reason: format!("the {what} is not a URL: {e}"),
        };
        let auth = AuthUrl::new(authority.authorize_url()).map_err(|e| config("authority", e))?;
        let token = TokenUrl::new(authority.token_url()).map_err(|e| config("authority", e))?;
        let mut client = oauth2::Client::new(ClientId::new(client_id.to_owned()))
            .set_auth_uri(auth)
            .set_token_uri(token)
            .set_auth_type(AuthType::RequestBody);
        if let Some(secret) = client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.to_owned()));
        }
        if let Some(uri) = redirect_uri {
            let uri = RedirectUrl::new(uri.to_owned()).map_err(|e| config("redirect URI", e))?;
            client = client.set_redirect_uri(uri);
        }
        Ok(Self {
            client,
            authority,
            agent: crate::agent::agent(TOKEN_TIMEOUT),
        })
    }

    /// The identity platform this client calls.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The application id.
    pub fn client_id(&self) -> &str {
        self.client.client_id().as_str()
    }

    /// Begins a sign-in with the authorization code flow: PKCE (S256), a random `state` and
    /// `nonce`, the `scopes` asked for (`offline_access` for a refresh token, `openid` for the
    /// `id_token`), and `login_hint` passed through when given.
    pub fn begin_sign_in(&self, scopes: &[&str], login_hint: Option<&str>) -> SignIn {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random();
        let mut request = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce.secret().clone());
        if let Some(hint) = login_hint {
            request = request.add_extra_param("login_hint", hint.to_owned());
        }
        let (url, state) = request.url();
        SignIn {
            url: url.to_string(),
            state: Zeroizing::new(state.into_secret()),
            nonce: Zeroizing::new(nonce.into_secret()),
            pkce_verifier: PkceVerifier::new(verifier.into_secret()),
        }
    }

    /// Redeems the code a sign-in's callback brought, with that sign-in's verifier.
    /// A code is good once and for about 10 minutes: a reused or stale one is
    /// [`TokenError::InvalidGrant`].
    pub fn redeem_code(&self, code: &str, verifier: &PkceVerifier) -> Result<TokenSet, TokenError> {
        let http = Http::new(&self.agent);
        let answer = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().to_owned()))
            .request(&http);
        http.token_set(answer)
    }

    /// A new access token for a person's refresh token. The answer usually holds a new refresh
    /// token too (store it: the old one is spent); a revoked or expired one is
    /// [`TokenError::InvalidGrant`].
    pub fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenSet, TokenError> {
        let http = Http::new(&self.agent);
        let spent = oauth2::RefreshToken::new(refresh_token.secret().to_owned());
        let answer = self.client.exchange_refresh_token(&spent).request(&http);
        http.token_set(answer)
    }

    /// An application token (client credentials), for `scope` (for Graph:
    /// `https://graph.microsoft.com/.default`).
    pub fn client_credentials(&self, scope: &str) -> Result<TokenSet, TokenError> {
        let http = Http::new(&self.agent);
        let answer = self
            .client
            .exchange_client_credentials()
            .add_scope(Scope::new(scope.to_owned()))
            .request(&http);
        http.token_set(answer)
    }
}

/// The `oauth2` crate's HTTP client, over the crate's agent: one request per exchange, whose
/// status is kept for the error.
struct Http<'a> {
    agent: &'a ureq::Agent,
    status: Cell<Option<u16>>,
}

/// Why the token endpoint gave no answer (never a URL's query, never a body).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpFailure(String);

impl oauth2::SyncHttpClient for Http<'_> {
    type Error = HttpFailure;

    fn call(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, HttpFailure> {
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| HttpFailure(e.to_string()))?;
        self.status.set(Some(response.status().as_u16()));
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_TOKEN_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| HttpFailure(e.to_string()))?;
        let mut answer = oauth2::http::Response::builder().status(response.status());
        if let Some(kind) = response.headers().get(oauth2::http::header::CONTENT_TYPE) {
            answer = answer.header(oauth2::http::header::CONTENT_TYPE, kind);
        }
        answer.body(body).map_err(|e| HttpFailure(e.to_string()))
    }
}

impl<'a> Http<'a> {
    fn new(agent: &'a ureq::Agent) -> Self {
        Self {
            agent,
            status: Cell::new(None),
        }
    }

    /// The answer as a [`TokenSet`], or a typed error holding nothing the server sent but its
    /// status and its OAuth error code.
    fn token_set(
        &self,
        answer: Result<Answer, RequestTokenError<HttpFailure, BasicErrorResponse>>,
    ) -> Result<TokenSet, TokenError> {
        let status = self.status.get();
        let refused = |error: String| TokenError::Refused {
            status: status.unwrap_or(0),
            error,
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(RequestTokenError::ServerResponse(e)) => {
                return Err(match e.error() {
                    BasicErrorResponseType::InvalidGrant => TokenError::InvalidGrant,
                    other => refused(error_code(other.as_ref())),
                })
            }
            Err(RequestTokenError::Request(e)) => {
                return Err(TokenError::Transport { reason: e.0 });
            }
            Err(RequestTokenError::Parse(..) | RequestTokenError::Other(_)) => {
                return Err(match status {
                    Some(200) | None => TokenError::Malformed {
                        reason: "the token endpoint's answer is not a token set",
                    },
                    Some(_) => refused("unknown".to_owned()),
                })
            }
        };
        let lifetime = answer.expires_in().unwrap_or(DEFAULT_LIFETIME);
        let id_claims = match &answer.extra_fields().id_token {
            Some(id_token) => Some(IdClaims::from_id_token(id_token)?),
            None => None,
        };
        Ok(TokenSet {
            access_token: AccessToken::new(answer.access_token().secret().as_str()),
            refresh_token: answer
                .refresh_token()
                .map(|r| RefreshToken::new(r.secret().as_str())),
            expires_at: SystemTime::now() + lifetime,
            id_claims,
        })
    }
}

/// An OAuth error code as it may be shown: the protocol's codes are lowercase ASCII words and
/// underscores; anything else becomes `unknown`.
fn error_code(code: &str) -> String {
    let plain = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain {
        code.to_owned()
    } else {
        "unknown".to_owned()
    }
}
