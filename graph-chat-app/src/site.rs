//! Which host and scheme the page and its API answer to, and which pages may send them changes
//! or frame them: the listening address, the public URL (a tunnel or a reverse proxy in front),
//! and, only when the proxy is trusted, what it says the browser asked for (`Forwarded`,
//! `X-Forwarded-Host`, `X-Forwarded-Proto`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};

/// Which `Host` the page and its API answer to.
#[derive(Debug, Clone)]
pub(crate) enum Hosts {
    /// Only these (`127.0.0.1:8080`, `localhost:8080`, a public host with and without its
    /// default port): another name pointing here (DNS rebinding) gets nothing.
    Only(Arc<[String]>),
    /// Any: the app listens on every interface and no public URL names it.
    Any,
}

/// How the page is reached and who may frame it.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    hosts: Hosts,
    /// The public URL's origin (`https://chat.example.com`), if there is one.
    public: Option<url::Origin>,
    /// Whether the forwarding headers are believed (a proxy in front sets them).
    trust_proxy: bool,
    /// The Content-Security-Policy's `frame-ancestors` sources, when not `'none'`.
    frame_ancestors: Option<Arc<str>>,
}

/// Why a `--frame-ancestors` value is refused.
pub(crate) const FRAME_ANCESTORS_SYNTAX: &str = "--frame-ancestors takes space-separated sources \
(`'self'`, `https://a.example`, `https://*.example.com`), or `'none'`";

/// Whether `sources` is a `frame-ancestors` value: `'none'`, `'self'`, or space-separated
/// scheme or host sources, nothing that could end the directive or the header.
pub(crate) fn valid_frame_ancestors(sources: &str) -> bool {
    if !sources.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return false;
    }
    let mut any = false;
    for source in sources.split_ascii_whitespace() {
        any = true;
        let ok = source == "'self'"
            || source == "'none'"
            || source.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'/' | b'*' | b'_')
            });
        if !ok {
            return false;
        }
    }
    any && !(sources.contains("'none'") && sources.split_ascii_whitespace().count() > 1)
}

impl Site {
    /// The hosts of the listening address and its loopback names, and the public URL's host
    /// with and without its scheme's default port; any host, when listening on every interface
    /// without a public URL. `frame_ancestors`: checked with [`valid_frame_ancestors`] (an
    /// invalid one is ignored, `'none'` kept).
    pub(crate) fn new(
        addr: SocketAddr,
        public_url: Option<&str>,
        trust_proxy: bool,
        frame_ancestors: Option<&str>,
    ) -> Self {
        let public = public_url.and_then(|u| url::Url::parse(u).ok());
        let frame_ancestors = frame_ancestors
            .map(str::trim)
            .filter(|f| valid_frame_ancestors(f) && *f != "'none'")
            .map(Arc::from);
        let origin = public.as_ref().map(url::Url::origin);
        let hosts = if addr.ip().is_unspecified() && public.is_none() {
            Hosts::Any
        } else {
            let port = addr.port();
            let mut names = vec![
                addr.to_string(),
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ];
            if let Some(url) = &public {
                if let Some(host) = url.host_str() {
                    // `port()` is `None` for the scheme's default port, given or not: the host
                    // is then asked for with and without it.
                    match (url.port(), url.port_or_known_default()) {
                        (Some(p), _) => names.push(format!("{host}:{p}")),
                        (None, Some(d)) => {
                            names.push(host.to_owned());
                            names.push(format!("{host}:{d}"));
                        }
                        (None, None) => names.push(host.to_owned()),
                    }
                }
            }
            Hosts::Only(names.into())
        };
        Self {
            hosts,
            public: origin,
            trust_proxy,
            frame_ancestors,
        }
    }

    /// The Content-Security-Policy `csp` with this site's `frame-ancestors` in place of
    /// `'none'`.
    pub(crate) fn csp(&self, csp: &HeaderValue) -> Option<HeaderValue> {
        let sources = self.frame_ancestors.as_deref()?;
        let text = csp.to_str().ok()?;
        if !text.contains("frame-ancestors 'none'") {
            return None;
        }
        HeaderValue::from_str(&text.replace(
            "frame-ancestors 'none'",
            &format!("frame-ancestors {sources}"),
        ))
        .ok()
    }

    /// Whether the request may go on: its host is one the app is served as (421 if not), and a
    /// change (anything but `GET` or `HEAD`) comes from the app's own page (403 if not).
    pub(crate) fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<(), (StatusCode, &'static str)> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim()
        };
        let (forwarded_host, proto) = if self.trust_proxy {
            forwarded(headers)
        } else {
            (None, None)
        };
        let host = forwarded_host.as_deref().unwrap_or_else(|| header("host"));
        if let Hosts::Only(allowed) = &self.hosts {
            if !allowed.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                return Err((
                    StatusCode::MISDIRECTED_REQUEST,
                    "not served under this host name",
                ));
            }
        }
        if matches!(*method, Method::GET | Method::HEAD) {
            return Ok(());
        }
        let cross_site = header("sec-fetch-site").eq_ignore_ascii_case("cross-site");
        let origin = header("origin");
        let own = |candidate: &str| same_origin(origin, candidate);
        let own_origin = origin.is_empty()
            || self
                .public
                .as_ref()
                .is_some_and(|p| origin_of(origin).as_ref() == Some(p))
            || match proto.as_deref() {
                Some(scheme) => own(&format!("{scheme}://{host}")),
                None => own(&format!("http://{host}")) || own(&format!("https://{host}")),
            };
        if cross_site || !own_origin {
            return Err((StatusCode::FORBIDDEN, "only the app's own page may do this"));
        }
        Ok(())
    }
}

fn origin_of(text: &str) -> Option<url::Origin> {
    let url = url::Url::parse(text).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin())
}

fn same_origin(origin: &str, candidate: &str) -> bool {
    match (origin_of(origin), origin_of(candidate)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The host and scheme a proxy says the browser asked for: `Forwarded`'s first element's
/// `host` and `proto` (RFC 7239), else the first `X-Forwarded-Host` and `X-Forwarded-Proto`.
fn forwarded(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(element) = first("forwarded") {
        let (mut host, mut proto) = (None, None);
        for pair in element.split(';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "host" => host = Some(value),
                "proto" => proto = Some(value.to_ascii_lowercase()),
                _ => {}
            }
        }
        if host.is_some() || proto.is_some() {
            return (host, proto);
        }
    }
    (
        first("x-forwarded-host"),
        first("x-forwarded-proto").map(|p| p.to_ascii_lowercase()),
    )
}

#[cfg(test)]
mod tests {
    use super::{valid_frame_ancestors, Site};
    use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn site(public: Option<&str>, trust_proxy: bool) -> Site {
        Site::new("127.0.0.1:8080".parse().unwrap(), public, trust_proxy, None)
    }

    fn post(site: &Site, pairs: &[(&str, &str)]) -> Option<StatusCode> {
        site.check(&Method::POST, &headers(pairs))
            .err()
            .map(|e| e.0)
    }

    #[test]
    fn the_public_host_is_accepted_with_and_without_its_default_port() {
        let site = site(Some("https://chat.example.com"), false);
        for host in [
            "chat.example.com",
            "chat.example.com:443",
            "CHAT.example.com",
        ] {
            assert_eq!(post(&site, &[("host", host)]), None, "{host}");
        }
        assert_eq!(
            post(&site, &[("host", "chat.example.com:8443")]),
            Some(StatusCode::MISDIRECTED_REQUEST)
        );
        let other_port = super::Site::new(
            "127.0.0.1:8080".parse().unwrap(),
            Some("https://chat.example.com:8443/"),
            false,
            None,
        );
        assert_eq!(
            post(&other_port, &[("host", "chat.example.com:8443")]),
            None
        );
        assert_eq!(
            post(&other_port, &[("host", "chat.example.com")]),
            Some(StatusCode::MISDIRECTED_REQUEST)
        );
    }

    #[test]
    fn the_public_origin_is_the_pages_own_whatever_host_the_proxy_sends() {
        let site = site(Some("https://chat.example.com"), false);
        for origin in ["https://chat.example.com", "https://chat.example.com:443"] {
            let pairs = [("host", "127.0.0.1:8080"), ("origin", origin)];
            assert_eq!(post(&site, &pairs), None, "{origin}");
        }
        for origin in [
            "http://chat.example.com",
            "https://evil.example",
            "https://chat.example.com.evil.example",
            "null",
        ] {
            let pairs = [("host", "127.0.0.1:8080"), ("origin", origin)];
            assert_eq!(post(&site, &pairs), Some(StatusCode::FORBIDDEN), "{origin}");
        }
        let pairs = [("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")];
        assert_eq!(post(&site, &pairs), Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn forwarding_headers_count_only_from_a_trusted_proxy() {
        let nginx = [
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
        ];
        assert_eq!(
            post(&site(Some("https://chat.example.com"), true), &nginx),
            Some(StatusCode::MISDIRECTED_REQUEST)
        );
        assert_eq!(
            post(&site(Some("https://chat.example.com"), false), &nginx),
            None
        );
        let forwarded = [
            ("host", "127.0.0.1:8080"),
            (
                "forwarded",
                "for=192.0.2.1;host=\"chat.example.com\";proto=https, for=10.0.0.1",
            ),
            ("origin", "https://chat.example.com"),
        ];
        assert_eq!(
            post(&site(Some("https://chat.example.com"), true), &forwarded),
            None
        );
        // The forwarded scheme decides the origin the host stands for.
        let trusted = site(None, true);
        let http_origin = [
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-proto", "https"),
            ("origin", "http://127.0.0.1:8080"),
        ];
        assert_eq!(post(&trusted, &http_origin), Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn reads_need_only_a_known_host_and_any_host_is_known_on_every_interface_without_a_url() {
        let local = site(None, false);
        let evil = headers(&[("host", "evil.example"), ("origin", "https://evil.example")]);
        assert!(local.check(&Method::GET, &evil).is_err());
        let any = Site::new("0.0.0.0:8080".parse().unwrap(), None, false, None);
        assert!(any.check(&Method::GET, &evil).is_ok());
        assert!(any.check(&Method::POST, &evil).is_ok());
        let pairs = [
            ("host", "evil.example"),
            ("origin", "https://other.example"),
        ];
        assert_eq!(post(&any, &pairs), Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn frame_ancestors_take_sources_only() {
        for good in [
            "'none'",
            "'self'",
            "https://a.example https://b.example",
            "https://*.example.com:443",
        ] {
            assert!(valid_frame_ancestors(good), "{good}");
        }
        for bad in [
            "",
            "  ",
            "https://a.example; script-src *",
            "https://a.example,b",
            "'none' https://a.example",
            "'unsafe-inline'",
            "a\nb",
        ] {
            assert!(!valid_frame_ancestors(bad), "{bad:?}");
        }
        let framed = Site::new(
            "127.0.0.1:8080".parse().unwrap(),
            None,
            false,
            Some("https://a.example"),
        );
        let csp =
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'");
        assert_eq!(
            framed.csp(&csp).unwrap(),
            "default-src 'none'; frame-ancestors https://a.example; base-uri 'none'"
        );
        assert!(site(None, false).csp(&csp).is_none());
    }
}
