//! The `chat` example's command line (`docs/contracts.md#the-chat-app`), parsed into what the
//! app takes: long options as `--opt value` or `--opt=value`, each at most once.
//!
//! ```
//! use graph_chat_app::options::Options;
//! let options = Options::parse(["--listen=127.0.0.1:0", "--resync-every", "5"].map(String::from))
//!     .unwrap();
//! assert_eq!(options.resync_every, 5);
//! assert!(options.graph.is_none());
//! assert!(Options::parse(["--graph".to_owned()]).is_err());
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use graph_chat_webhook::notifications::Cloud;
use graph_chat_webhook::JwksSource;

use crate::Config;

/// How the `chat` example is called.
pub const USAGE: &str = "usage: chat [--listen ADDR] [--data DIR] [--colleague-every SECONDS] \
[--resync-every SECONDS] [--graph URL --tenant-id T --app-id A [--client-id ID] \
[--client-secret-file FILE] [--authority URL] [--jwks URL] [--public-url URL] [--key PEM]]";

/// Every option, each taking a value.
const NAMES: [&str; 14] = [
    "--listen",
    "--data",
    "--colleague-every",
    "--resync-every",
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
];

/// Why a command line, or the Graph it names, cannot run the app. Its text names the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OptionsError(String);

impl From<String> for OptionsError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for OptionsError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
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
    /// `--resync-every` in seconds (default 60).
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
    /// `--public-url` (with `--graph`).
    pub public_url: Option<String>,
    /// `--key` (with `--graph`).
    pub key: Option<PathBuf>,
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
            resync_every: given.seconds("--resync-every")?.unwrap_or(60),
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
        };
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
                ("--public-url", options.public_url.is_some()),
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
        if let Some(bad) = [&self.authority, &self.public_url]
            .into_iter()
            .flatten()
            .find(|u| url::Url::parse(u).is_err())
        {
            return Err(format!("{bad:?} is not a URL").into());
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
            key_file: self.key.clone(),
        }))
    }
}

/// Whether `url` is one of Microsoft's Graph hosts (rather than a simulator).
fn microsoft_cloud(url: &str) -> Option<Cloud> {
    let url = url.trim_end_matches('/');
    Cloud::ALL.into_iter().find(|c| c.graph_url() == url)
}
