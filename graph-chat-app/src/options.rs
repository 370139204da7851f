//! The `chat` example's command line (`docs/contracts.md#the-chat-app`), parsed into what the
//! app takes: long options as `--opt value` or `--opt=value`, each at most once; `--trust-proxy`
//! takes no value; `--help` (or `-h`) asks for [`HELP`].
//!
//! ```
//! use graph_chat_app::options::Options;
//! let options = Options::parse(["--listen=127.0.0.1:0", "--resync-every", "5"].map(String::from))
//!     .unwrap();
//! assert_eq!(options.resync_every, 5);
//! assert!(options.graph.is_none());
//! assert!(Options::parse(["--graph".to_owned()]).is_err());
//! assert!(Options::parse(["--help".to_owned()]).unwrap_err().is_help());
//! // Renewals between 5 s and half a subscription's hour; a PostgreSQL URL, never echoed.
//! let copies = Options::parse(["--renew-every=10", "--database=postgres://app:pw@db/chat"].map(String::from))
//!     .unwrap();
//! assert_eq!(copies.renew_every, Some(10));
//! assert!(Options::parse(["--renew-every=1".to_owned()]).is_err());
//! let refused = Options::parse(["--database=mysql://app:pw@db/chat".to_owned()]).unwrap_err();
//! assert!(!refused.to_string().contains("pw"));
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use graph_chat_webhook::notifications::Cloud;
use graph_chat_webhook::JwksSource;

use crate::site::{valid_frame_ancestors, FRAME_ANCESTORS_SYNTAX};
use crate::store::{is_postgres_url, EVENT_RETENTION};
use crate::sync::{MIN_RENEW_EVERY, SUBSCRIPTION_LIFETIME};
use crate::Config;

/// How the `chat` example is called.
pub const USAGE: &str = "usage: chat [--listen ADDR] [--data DIR] [--colleague-every SECONDS] \
[--resync-every SECONDS] [--renew-every SECONDS] [--database URL] [--public-url URL [--trust-proxy]] \
[--frame-ancestors SOURCES] [--keep-events-for SECONDS] [--graph URL --tenant-id T --app-id A [--client-id ID] \
[--client-secret-file FILE] [--authority URL] [--jwks URL] [--key PEM]] [--help]";

/// What `chat --help` prints: [`USAGE`] and every option.
pub const HELP: &str = "usage: chat [OPTIONS]

The Teams-embedding guide's chat app: a live chat page over a server that subscribes to Graph,
receives, decrypts and caches. People sign in on the page; each sees their own chats. Without
--graph, everything runs offline against a Graph simulator (and identity platform) in this
process.

  --listen ADDR              where the page, its API and the webhook listen (127.0.0.1:8080);
                             an address other machines reach needs --public-url
  --data DIR                 the durable state, readable by this user only (./chat-data)
  --colleague-every SECONDS  offline: how often the simulated colleague writes (5; 0 = never)
  --resync-every SECONDS     how often every chat is reconciled with Graph (86400, a day)
  --renew-every SECONDS      how often each subscription is renewed, 5 to 1800 (half its
                             lifetime: 1800)
  --public-url URL           the https URL of the tunnel or reverse proxy in front of --listen:
                             Graph delivers there, and the page answers to its host (loopback
                             http:// for a proxy in front of a graph-sim on this machine)
  --trust-proxy              believe the proxy's Forwarded / X-Forwarded-Host /
                             X-Forwarded-Proto (only when every request comes through it)
  --frame-ancestors SOURCES  the pages that may frame the app's page, space-separated
                             (\"https://a.example https://b.example\"; default 'none')
  --keep-events-for SECONDS  how long the event log keeps an event for pages that resume
                             (604800, 7 days)
  --database URL             postgres://USER@HOST/DB (or postgresql://): the accounts,
                             sessions, caches and event log in PostgreSQL, shared by every
                             copy of the app given it and the same --data key files; each
                             person's subscriptions, renewals and reconciles are done by one
                             copy (default: SQLite files under --data, this copy alone)
  --graph URL                a Graph at URL instead of the simulator: a graph-sim, or
                             https://graph.microsoft.com; needs the two ids below
  --tenant-id T, --app-id A  the tenant, and the app registration
  --client-id ID             the registration people sign in to (--app-id)
  --client-secret-file FILE  the registration's client secret (a confidential client)
  --authority URL            where people sign in (the cloud's identity platform, or the
                             graph-sim at --graph)
  --jwks URL                 where validation tokens' keys come from (the cloud's)
  --user-id U                accepted, no longer needed: people sign in
  --key PEM                  the key and certificate notifications are encrypted for (made
                             under --data)
  --help, -h                 this text

Exit: 0 after SIGTERM or Ctrl-C (or this text), 2 for bad arguments, 1 when it cannot start.";

/// The options that take no value.
const FLAGS: [&str; 1] = ["--trust-proxy"];

/// `--resync-every`'s default: one reconcile of every chat a day. Reads otherwise come on
/// evidence (a gap, a chat the cache does not know) or a person's action (a page load, a chat
/// opened), never on a shorter timer: `docs/contracts.md#the-chat-app`.
pub const DEFAULT_RESYNC_EVERY: u64 = 86_400;

/// Every option that takes a value.
const NAMES: [&str; 18] = [
    "--listen",
    "--data",
    "--colleague-every",
    "--resync-every",
    "--renew-every",
    "--database",
    "--graph",
    "--tenant-id",
    "--app-id",
    "--user-id",
    "--jwks",
    "--client-id",
    "--client-secret-file",
    "--authority",
    "--public-url",
    "--key",
    "--frame-ancestors",
    "--keep-events-for",
];

/// Why a command line, or the Graph it names, cannot run the app. Its text names the option.
/// `--help` is one too ([`OptionsError::is_help`]): the program prints [`HELP`] and exits 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OptionsError {
    message: String,
    help: bool,
}

impl OptionsError {
    /// Whether the command line asked for help (`--help`, `-h`) rather than being wrong.
    pub fn is_help(&self) -> bool {
        self.help
    }
}

impl From<String> for OptionsError {
    fn from(message: String) -> Self {
        Self {
            message,
            help: false,
        }
    }
}

impl From<&str> for OptionsError {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// The `chat` example's options. `Debug` leaves the client secret out.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// `--listen` (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `--data` (default `./chat-data`).
    pub data: PathBuf,
    /// `--colleague-every` in seconds, if given (the default depends on the Graph: 5 with the
    /// embedded simulator, else 0, never).
    pub colleague_every: Option<u64>,
    /// `--resync-every` in seconds (default 86400: one reconcile a day; reads otherwise come on
    /// evidence or a person's action).
    pub resync_every: u64,
    /// `--graph`: a Graph at this URL instead of the embedded simulator.
    pub graph: Option<String>,
    /// `--tenant-id` (with `--graph`).
    pub tenant_id: Option<String>,
    /// `--app-id` (with `--graph`).
    pub app_id: Option<String>,
    /// `--user-id` (with `--graph`): accepted for older command lines, no longer needed: the
    /// people who use the app sign in.
    pub user_id: Option<String>,
    /// `--jwks` (with `--graph`).
    pub jwks: Option<String>,
    /// `--client-id` (with `--graph`; default: `--app-id`).
    pub client_id: Option<String>,
    /// What `--client-secret-file` holds, trimmed (with `--graph`): a confidential client.
    pub client_secret: Option<String>,
    /// `--authority` (with `--graph`): the identity platform's base URL.
    pub authority: Option<String>,
    /// `--public-url`: the URL of the tunnel or proxy in front of `--listen`.
    pub public_url: Option<String>,
    /// `--key` (with `--graph`).
    pub key: Option<PathBuf>,
    /// `--trust-proxy`: the proxy's forwarding headers are believed.
    pub trust_proxy: bool,
    /// `--frame-ancestors`: the pages that may frame the app's page (default: none).
    pub frame_ancestors: Option<String>,
    /// `--keep-events-for` in seconds (default 7 days).
    pub keep_events_for: u64,
    /// `--renew-every` in seconds, if given (5 to 1800; default: half a subscription's
    /// lifetime).
    pub renew_every: Option<u64>,
    /// `--database`: a PostgreSQL URL (`postgres://` or `postgresql://`) instead of SQLite
    /// files under `--data`: the database the copies of the app share. Left out of `Debug`
    /// (it may hold a password).
    pub database: Option<String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("listen", &self.listen)
            .field("data", &self.data)
            .field("graph", &self.graph)
            .finish_non_exhaustive()
    }
}

/// The options' values by name, in the order given.
struct Given(Vec<(&'static str, String)>);

impl Given {
    fn one(&self, name: &str) -> Result<Option<String>, OptionsError> {
        let mut all = self.0.iter().filter(|(n, _)| *n == name).map(|(_, v)| v);
        let first = all.next().cloned();
        if all.next().is_some() {
            return Err(format!("{name} given more than once").into());
        }
        Ok(first)
    }

    fn seconds(&self, name: &str) -> Result<Option<u64>, OptionsError> {
        self.one(name)?
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("{name} takes whole seconds, got {s:?}").into())
            })
            .transpose()
    }
}

impl Options {
    /// Parses the arguments (without the program's name). Reads `--client-secret-file`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, OptionsError> {
        let mut given = Given(Vec::new());
        // Everything after `--` is positional; none is expected.
        let (mut only_positional, mut positional) = (false, false);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if !only_positional && (arg == "--help" || arg == "-h") {
                return Err(OptionsError {
                    message: HELP.to_owned(),
                    help: true,
                });
            }
            if only_positional || arg == "-" || !arg.starts_with("--") {
                positional = true;
                continue;
            }
            if arg == "--" {
                only_positional = true;
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            if let Some(flag) = FLAGS.iter().copied().find(|n| *n == name) {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value").into());
                }
                given.0.push((flag, String::new()));
                continue;
            }
            let Some(name) = NAMES.iter().copied().find(|n| *n == name) else {
                return Err(format!("unknown option {name}").into());
            };
            let value = match inline {
                Some(v) => v,
                None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
            };
            given.0.push((name, value));
        }
        if positional {
            return Err("unexpected arguments".into());
        }
        Self::from_given(&given)
    }

    fn from_given(given: &Given) -> Result<Self, OptionsError> {
        let listen = given
            .one("--listen")?
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| format!("--listen takes HOST:PORT, got {listen:?}"))?;
        let client_secret = match given.one("--client-secret-file")? {
            Some(f) => {
                let secret = std::fs::read_to_string(&f)
                    .map_err(|e| format!("--client-secret-file {f}: {e}"))?
                    .trim()
                    .to_owned();
                if secret.is_empty() {
                    return Err(format!("--client-secret-file {f} is empty").into());
                }
                Some(secret)
            }
            None => None,
        };
        let options = Options {
            listen,
            data: given
                .one("--data")?
                .map_or_else(|| PathBuf::from("chat-data"), PathBuf::from),
            colleague_every: given.seconds("--colleague-every")?,
            resync_every: given
                .seconds("--resync-every")?
                .unwrap_or(DEFAULT_RESYNC_EVERY),
            graph: given.one("--graph")?,
            tenant_id: given.one("--tenant-id")?,
            app_id: given.one("--app-id")?,
            user_id: given.one("--user-id")?,
            jwks: given.one("--jwks")?,
            client_id: given.one("--client-id")?,
            client_secret,
            authority: given.one("--authority")?,
            public_url: given.one("--public-url")?,
            key: given.one("--key")?.map(PathBuf::from),
            trust_proxy: given.one("--trust-proxy")?.is_some(),
            frame_ancestors: given.one("--frame-ancestors")?,
            keep_events_for: given
                .seconds("--keep-events-for")?
                .unwrap_or(EVENT_RETENTION.as_secs()),
            renew_every: given.seconds("--renew-every")?,
            database: given.one("--database")?,
        };
        let renewals = MIN_RENEW_EVERY.as_secs()..=SUBSCRIPTION_LIFETIME.as_secs() / 2;
        if let Some(every) = options.renew_every {
            if !renewals.contains(&every) {
                return Err(format!(
                    "--renew-every takes {} to {} seconds (a subscription lives {}), got {every}",
                    renewals.start(),
                    renewals.end(),
                    SUBSCRIPTION_LIFETIME.as_secs()
                )
                .into());
            }
        }
        if let Some(url) = &options.database {
            // Not repeated in the message: it may hold a password.
            if !is_postgres_url(url) {
                return Err("--database takes a postgres:// (or postgresql://) URL".into());
            }
        }
        if let Some(sources) = &options.frame_ancestors {
            if !valid_frame_ancestors(sources) {
                return Err(FRAME_ANCESTORS_SYNTAX.into());
            }
        }
        if options.keep_events_for == 0 {
            return Err("--keep-events-for takes at least 1 second".into());
        }
        if let Some(public) = &options.public_url {
            let url = url::Url::parse(public).ok();
            if !url.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
                return Err(format!(
                    "--public-url takes an https:// URL (http:// for a simulator), got {public:?}"
                )
                .into());
            }
        } else if !options.listen.ip().is_loopback() {
            return Err(format!(
                "--listen {} is reachable from other machines: give --public-url https://..., \
                 the URL of the tunnel or reverse proxy in front of it (Graph delivers only to \
                 https, and the page answers only to that URL's host)",
                options.listen
            )
            .into());
        }
        if options.trust_proxy && options.public_url.is_none() {
            return Err("--trust-proxy goes with --public-url".into());
        }
        if options.graph.is_some() {
            for (name, value) in [
                ("--tenant-id", &options.tenant_id),
                ("--app-id", &options.app_id),
            ] {
                if value.is_none() {
                    return Err(format!("--graph needs {name}").into());
                }
            }
        } else {
            for (name, given) in [
                ("--jwks", options.jwks.is_some()),
                ("--user-id", options.user_id.is_some()),
                ("--client-id", options.client_id.is_some()),
                ("--client-secret-file", options.client_secret.is_some()),
                ("--authority", options.authority.is_some()),
                ("--key", options.key.is_some()),
            ] {
                if given {
                    return Err(format!("{name} goes with --graph").into());
                }
            }
        }
        Ok(options)
    }

    /// How often the simulated colleague writes: `--colleague-every`, else every 5 seconds with
    /// the embedded simulator and never otherwise. `None`: never.
    pub fn colleague_every(&self) -> Option<Duration> {
        let default = if self.graph.is_none() { 5 } else { 0 };
        Some(self.colleague_every.unwrap_or(default))
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
    }

    /// The app's configuration against the Graph at `--graph`: a `graph-sim` started on its own
    /// (its JWKS and its identity platform by default), or Microsoft Graph (its cloud's JWKS and
    /// identity platform by default), which also needs the public URL it reaches the app at.
    /// `None` without `--graph`.
    pub fn graph_config(&self) -> Result<Option<Config>, OptionsError> {
        let Some(graph) = &self.graph else {
            return Ok(None);
        };
        let cloud = microsoft_cloud(graph);
        let jwks = match (&self.jwks, cloud) {
            (Some(j), _) => JwksSource::parse(j),
            (None, Some(cloud)) => JwksSource::for_cloud(cloud),
            (None, None) => JwksSource::Url(format!(
                "{}/common/discovery/v2.0/keys",
                graph.trim_end_matches('/')
            )),
        };
        let authority = match (&self.authority, cloud) {
            (Some(a), _) => a.trim_end_matches('/').to_owned(),
            (None, Some(cloud)) => format!("https://{}", cloud.login_host()),
            (None, None) => graph.trim_end_matches('/').to_owned(),
        };
        if let Some(bad) = [&self.authority]
            .into_iter()
            .flatten()
            .find(|u| url::Url::parse(u).is_err())
        {
            return Err(format!("--authority takes a URL, got {bad:?}").into());
        }
        if cloud.is_some() && self.public_url.is_none() {
            return Err(
                "Microsoft Graph needs --public-url, the https URL it reaches this app at".into(),
            );
        }
        Ok(Some(Config {
            listen: self.listen,
            data: self.data.clone(),
            resync_every: Duration::from_secs(self.resync_every),
            graph: graph.clone(),
            tenant_id: self.tenant_id.clone().unwrap_or_default(),
            app_id: self.app_id.clone().unwrap_or_default(),
            client_id: self
                .client_id
                .clone()
                .or_else(|| self.app_id.clone())
                .unwrap_or_default(),
            client_secret: self.client_secret.clone(),
            authority,
            jwks,
            public_url: self.public_url.clone(),
            trust_proxy: self.trust_proxy,
            frame_ancestors: self.frame_ancestors.clone(),
            event_retention: Duration::from_secs(self.keep_events_for),
            key_file: self.key.clone(),
            renew_every: self.renew_every.map(Duration::from_secs),
            database: self.database.clone(),
        }))
    }

    /// `config` (the embedded simulator's, from [`demo::config`](crate::demo::config)) with
    /// what these options say of the page: the public URL, the proxy, who may frame it, how
    /// long the event log keeps events; and of the copies: how often subscriptions are renewed,
    /// the database copies share.
    pub fn page_settings(&self, config: Config) -> Config {
        Config {
            public_url: self.public_url.clone(),
            trust_proxy: self.trust_proxy,
            frame_ancestors: self.frame_ancestors.clone(),
            event_retention: Duration::from_secs(self.keep_events_for),
            renew_every: self.renew_every.map(Duration::from_secs),
            database: self.database.clone(),
            ..config
        }
    }
}

/// Whether `url` is one of Microsoft's Graph hosts (rather than a simulator).
fn microsoft_cloud(url: &str) -> Option<Cloud> {
    let url = url.trim_end_matches('/');
    Cloud::ALL.into_iter().find(|c| c.graph_url() == url)
}
