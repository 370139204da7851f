//! Tokens for Graph: signing people in, refreshing their tokens, the application's own token,
//! and the [`TokenSource`] a [`GraphClient`](crate::GraphClient) takes each call's bearer from.
//!
//! * [`Authority`]: the identity platform of a tenant, in a national cloud
//!   ([`Authority::for_cloud`]) or at a base URL of your choosing, such as a local graph-sim
//!   ([`Authority::new`]).
//! * [`OAuthClient`]: the authorization code flow with PKCE ([`OAuthClient::begin_sign_in`],
//!   [`OAuthClient::redeem_code`]), refresh, and client credentials. Built on the `oauth2`
//!   crate, over this crate's own HTTP agent (rustls on AWS-LC, no redirects followed).
//! * [`TokenSet`], [`AccessToken`], [`RefreshToken`], [`IdClaims`]: what the token endpoint
//!   answers. Tokens are wiped from memory when dropped and print as `[redacted]`;
//!   [`TokenError`] never holds a token, a code or a secret.
//! * [`TokenSource`] and its three kinds: [`FixedToken`] (one token, never renewed),
//!   [`PersonTokens`] (a signed-in person's token, refreshed before it expires, one refresh at
//!   a time, rotated refresh tokens handed to the program, `invalid_grant` final) and
//!   [`AppTokens`] (client credentials, cached until shortly before expiry).
//!
//! A sign-in, end to end:
//!
//! ```no_run
//! use std::sync::Arc;
//! use graph_chat_webhook::GraphClient;
//! use graph_chat_webhook::tokens::{Authority, OAuthClient, PersonTokens};
//!
//! let oauth = Arc::new(OAuthClient::new(
//!     Authority::new("http://127.0.0.1:8081", "tenant-1")?,
//!     "app-id",
//!     None,
//!     Some("http://127.0.0.1:8080/auth/callback"),
//! )?);
//! let scopes = ["openid", "profile", "offline_access", "Chat.ReadWrite", "ChatMessage.Send"];
//! let sign_in = oauth.begin_sign_in(&scopes, None);
//! // Redirect the browser to `sign_in.url`. Its callback brings `code` and `state`: check that
//! // `state` is the one this browser began with, then redeem the code.
//! # let code = "";
//! let tokens = oauth.redeem_code(code, &sign_in.pkce_verifier)?;
//! let who = tokens.id_claims.clone().expect("openid was asked for");
//! who.check_nonce(&sign_in.nonce)?;
//! // Store `tokens.refresh_token` (encrypted), then call Graph as that person.
//! let person = Arc::new(PersonTokens::new(oauth.clone(), tokens));
//! let graph = GraphClient::with_token_source("http://127.0.0.1:8081", person);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod oauth;
mod secret;
mod source;

pub use oauth::{Authority, OAuthClient, SignIn};
pub use secret::{AccessToken, IdClaims, PkceVerifier, RefreshToken, TokenError, TokenSet};
pub use source::{AppTokens, FixedToken, PersonTokens, TokenSource, REFRESH_MARGIN};
