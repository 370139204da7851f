//! The production webhook for [`graph_chat_notifications`], as a library: the IO half beside the
//! sans-IO core, the way tokio-rustls sits beside rustls.
//!
//! Graph POSTs change notifications to your `https://` URL and expects a 2xx within 3 seconds;
//! a 2xx means it will never send that batch again. So a webhook must store what it accepts
//! before it answers, answer fast whatever strangers send it, and decrypt later, on every core.
//! This crate does that:
//!
//! * **Admission before the 2xx**, on the request path, with no RSA: the body's size and JSON,
//!   every validation token (the JWKS fetched over HTTPS under the core's
//!   [`JwksRefresh`](graph_chat_notifications::tokens::JwksRefresh) policy when a token names an
//!   unknown key), each notification's tenant and `clientState`. What passed is committed to the
//!   [`Inbox`] as an admission record (known members only: no padding, no `clientState`), and
//!   only then is the batch answered 202. Forgeries and garbage are answered 202 and stored
//!   nowhere (a sender learns nothing); a token naming a key not yet known is answered 503 until
//!   the policy decides, so Graph retries; 503 when the inbox cannot commit or is full.
//! * **Bodies bounded by bytes and rate**: memory for bodies in flight comes from a shared byte
//!   budget as bytes arrive (not as a `Content-Length` claims); a body slower than a minimum rate
//!   after a short grace is cut off (408); a few large bodies at a time; 413 past the limit.
//! * **Connections bounded**: [`Webhook::serve`] runs the HTTP/1 server with a deadline for
//!   every request head, an idle deadline, a cap on connections per source address and in all
//!   (at the cap, a connection not being answered, from a source holding more, is shed for a
//!   new one; the webhook's routes keep places of their own), a share of the body budget per
//!   source address, long-lived streams ([`StreamSlot`]) counted apart from
//!   the webhook's connections, and a shutdown that closes idle and half-sent connections
//!   within a deadline.
//! * **Workers on every core** ([`Webhook::start_workers`]): each opens a stored record with
//!   the time its batch was received, without verifying its tokens a second time (they were
//!   verified at admission, so keys that rotated since cannot drop an acknowledged batch), hands
//!   the batch to your [`Handler`] outside any lock of ours, and marks it done. A handler that
//!   fails or panics keeps the batch for a later attempt; no batch and no worker is lost.
//! * **Every refusal seen**: one [`Refusal`] per refused body, notification or connection,
//!   as a `tracing` event and through [`WebhookBuilder::on_refusal`] (a line on stderr by
//!   default).
//!
//! It is the workspace's IO crate, so it also holds the outbound half of the IO: [`GraphClient`]
//! sends the core's request values to Microsoft Graph (or a local one) and reads the answers. The
//! crate keeps the name of its main job, the webhook, which is what programs depend on and what
//! the contracts name.
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use graph_chat_webhook::{
//!     Batch, BatchContext, DecryptBuffer, HandlerError, JwksSource, KeyStore, PrivateKey,
//!     Receiver, SqliteInbox, TokenValidator, Webhook,
//! };
//!
//! let key = PrivateKey::from_bytes(&std::fs::read("key.pem")?)?;
//! let receiver = Receiver::builder()
//!     .keys(KeyStore::new().with_key("my-cert-id", key)?)
//!     .client_state("my-client-state")
//!     .tokens(TokenValidator::new(["my-app-id"], ["my-tenant-id"]))
//!     .build()?;
//! let webhook = Webhook::builder(receiver)
//!     .inbox(SqliteInbox::open("inbox.sqlite")?)
//!     .jwks(JwksSource::identity_platform())
//!     .build()?; // fetches the JWKS once
//!
//! // Workers: your code sees each stored batch once it is opened (at least once).
//! let workers = webhook.start_workers(
//!     |_: &BatchContext, batch: &Batch<'_, '_>, buf: &mut DecryptBuffer| -> Result<(), HandlerError> {
//!         batch.open_each(buf, |opened| {
//!             if let Ok(opened) = opened {
//!                 println!("{:?}", opened.notification.resource);
//!             }
//!         });
//!         Ok(())
//!     },
//! );
//!
//! // The server: `POST /notifications`, `POST /lifecycle` (and `/eventgrid` when configured).
//! tokio::runtime::Runtime::new()?.block_on(async {
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//!     webhook.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! })?;
//! workers.shutdown();
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```
//!
//! Behind your own axum server, mount [`Webhook::router`] instead of calling
//! [`serve`](Webhook::serve): admission, the inbox and the body bounds are the router's; the
//! connection bounds (head deadline, idle deadline, per-address cap) are then your server's or
//! your reverse proxy's to set.
//!
//! Terminate TLS in front of it (Graph requires `https://`): a reverse proxy or a load balancer.
//! `SECURITY.md` in the repository says what the server defends against and what the proxy
//! should still do.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod admit;
mod agent;
mod body;
mod client;
mod conn;
mod inbox;
mod jwks;
pub mod limits;
mod memory;
#[cfg(feature = "postgres")]
mod pg_tls;
mod pool;
#[cfg(feature = "postgres")]
mod postgres;
mod queue;
mod refusal;
mod retry;
mod routes;
mod server;
mod source;
#[cfg(feature = "sqlite")]
mod sqlite;
mod state;
pub mod tokens;
mod workers;

/// The sans-IO core, re-exported so that one dependency suffices. Named `notifications`, not
/// `core`, so that it cannot be read as the standard library's `core`.
pub use graph_chat_notifications as notifications;

// The core's types a webhook's user touches, at the crate root: one `use` suffices.
pub use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
pub use graph_chat_notifications::inbound::{Batch, Receiver};
pub use graph_chat_notifications::tokens::TokenValidator;

pub use client::{ClientError, GraphClient, GraphResponse, DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES};
pub use inbox::{BatchId, Inbox, InboxError, InboxStats, NewBatch, Route, StoredBatch};
pub use jwks::JwksSource;
pub use limits::ServerLimits;
pub use memory::MemoryInbox;
#[cfg(feature = "postgres")]
pub use pg_tls::{connect_postgres, PgConnectError};
pub use pool::StreamSlot;
#[cfg(feature = "postgres")]
pub use postgres::PgInbox;
pub use refusal::{Refusal, REFUSAL_TARGET};
pub use retry::RetryPolicy;
pub use server::{Webhook, WebhookBuilder, JWKS_MIN_INTERVAL};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteInbox;
pub use state::{BuildError, EventGrid};
pub use workers::{BatchContext, Handler, HandlerError, Workers};
