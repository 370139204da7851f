//! TLS to PostgreSQL for the PostgreSQL inbox: tokio-postgres' TLS seam over rustls on AWS-LC
//! (the crypto the rest of the crate uses), verifying the server with the platform's
//! certificate store, as the crate's HTTPS calls do. Also the one way the crate (and the
//! programs built on it, through [`connect_postgres`]) connects to PostgreSQL.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls_platform_verifier::BuilderVerifierExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Notification};

/// Why [`connect_postgres`] did not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgConnectError {
    /// TLS could not be set up (`sslmode=require`): no certificate store, say.
    #[error("cannot set up TLS to the database: {0}")]
    Tls(String),
    /// The database refused or could not be reached. The driver's message names neither the
    /// user nor the password.
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// Connects to the database `config` names, as [`PgInbox`](crate::PgInbox) does:
/// `sslmode=require` (or stricter) with TLS over rustls on AWS-LC, verifying the server's
/// certificate and name against the platform's certificate store; `disable` and the default
/// `prefer` without TLS (loopback, a Unix socket, a private network).
///
/// The connection is driven by a task on the current tokio runtime. Returns the client and
/// that task, which ends when the connection does (closed by the server, cut, or the client
/// dropped). The `NOTIFY`s of channels the client `LISTEN`s on go to `notifications`, when
/// given; without it they are dropped.
///
/// Must be called within a tokio runtime with IO and time enabled.
pub async fn connect_postgres(
    config: &Config,
    notifications: Option<tokio::sync::mpsc::UnboundedSender<Notification>>,
) -> Result<(Client, tokio::task::JoinHandle<()>), PgConnectError> {
    let tls = match config.get_ssl_mode() {
        SslMode::Disable | SslMode::Prefer => None,
        _ => Some(RustlsConnect::new().map_err(|e| PgConnectError::Tls(e.to_string()))?),
    };
    Ok(connect_with(config, tls.as_ref(), notifications).await?)
}

/// [`connect_postgres`] with the TLS already set up (`None`: without TLS).
pub(crate) async fn connect_with(
    config: &Config,
    tls: Option<&RustlsConnect>,
    notifications: Option<tokio::sync::mpsc::UnboundedSender<Notification>>,
) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
    Ok(match tls {
        None => {
            let (client, connection) = config.connect(NoTls).await?;
            (client, tokio::spawn(drive(connection, notifications)))
        }
        Some(tls) => {
            let (client, connection) = config.connect(tls.clone()).await?;
            (client, tokio::spawn(drive(connection, notifications)))
        }
    })
}

/// Drives a connection to its end, handing on its notifications.
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notifications: Option<tokio::sync::mpsc::UnboundedSender<Notification>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
        match message {
            Some(Ok(AsyncMessage::Notification(n))) => {
                if let Some(to) = &notifications {
                    let _ = to.send(n);
                }
            }
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return,
        }
    }
}

/// Makes a TLS connection for each host a connection string names.
#[derive(Clone)]
pub(crate) struct RustlsConnect(Arc<rustls::ClientConfig>);

impl RustlsConnect {
    /// rustls on AWS-LC, safe default protocol versions, the platform's verifier, no client
    /// certificate.
    pub(crate) fn new() -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_platform_verifier()?
            .with_no_client_auth();
        Ok(Self(Arc::new(config)))
    }
}

/// One connection's handshake, to the host it verifies.
pub(crate) struct RustlsConnectOne {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

/// The TLS stream a connection runs over.
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnectOne;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnectOne, Self::Error> {
        Ok(RustlsConnectOne {
            config: Arc::clone(&self.0),
            name: ServerName::try_from(domain.to_owned())?,
        })
    }
}

impl<S> TlsConnect<S> for RustlsConnectOne
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(tls))
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// None: SCRAM authenticates without binding to the channel (`channel_binding=prefer`, the
    /// default, accepts it); the certificate is verified all the same.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
