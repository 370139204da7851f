//! The one HTTP agent configuration of the crate's outbound calls (Graph, the identity platform,
//! the JWKS), and a record of whether a call's request left this machine.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, NextTimeout, RustlsConnector,
    TcpConnector, Transport,
};

/// The agent's configuration: TLS through rustls on AWS-LC, named here rather than installed
/// process-wide (no global state), verifying with the platform's certificate store, and never
/// following a redirect (a redirect could leave https, or the host that was trusted).
pub(crate) fn config(timeout: Duration) -> ureq::config::Config {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(0)
        // Graph's 4xx and 5xx carry bodies the caller reads (`Outcome::from_response`).
        .http_status_as_error(false)
        .tls_config(tls)
        .build()
}

/// An agent with [`config`]: its calls are bounded by ureq's own timeouts. Its connections note
/// when a request's bytes go out (see [`Sent`]).
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    // ureq's default chain (a CONNECT proxy, the socket, then TLS) with the watch on top, where
    // only the HTTP request's bytes pass (TLS handshakes and proxy CONNECTs happen below it).
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(RustlsConnector::default())
            .chain(Watch);
    ureq::Agent::with_parts(config(timeout), connector, DefaultResolver::default())
}

thread_local! {
    /// Whether a request's bytes were handed to a connection on this thread since the last
    /// [`Sent::start`]. ureq's calls are blocking: a call's writes happen on its caller's thread.
    static SENT: Cell<bool> = const { Cell::new(false) };
}

/// Whether the request of the call this thread is making has left, in part or in whole.
///
/// A call that failed before anything was sent (no connection, refused, TLS failed) can be sent
/// again whatever its method; one that failed after may have been carried out.
pub(crate) struct Sent;

impl Sent {
    /// Starts watching a call made on this thread.
    pub(crate) fn start() {
        SENT.with(|s| s.set(false));
    }

    /// Whether any byte of the request went out since [`Sent::start`].
    pub(crate) fn any() -> bool {
        SENT.with(Cell::get)
    }
}

/// Wraps each connection in [`Watched`].
#[derive(Debug, Clone, Copy)]
struct Watch;

impl<In: Transport> Connector<In> for Watch {
    type Out = Watched;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Watched>, ureq::Error> {
        Ok(chained.map(|inner| Watched {
            inner: Box::new(inner),
        }))
    }
}

/// A connection that notes on its thread when it transmits.
#[derive(Debug)]
struct Watched {
    inner: Box<dyn Transport>,
}

impl Transport for Watched {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if amount > 0 {
            SENT.with(|s| s.set(true));
        }
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}
