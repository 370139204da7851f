//! What the server refused, for operators: one value per refused body, notification or
//! connection, reported as a `tracing` event and to the program's callback.

use std::fmt;
use std::net::IpAddr;

use graph_chat_notifications::{BodyError, ItemError};

use crate::inbox::Route;

/// Something the server refused. `Display` is one line, safe to log: it names the route, the
/// reply and the reason, never a secret, a token or message content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A whole body refused as forged or malformed: answered 202 (a sender learns nothing) and
    /// stored nowhere.
    Dropped {
        /// Where it arrived.
        route: Route,
        /// Why.
        error: BodyError,
    },
    /// A body in which no notification was admitted (an empty `value`, or every notification
    /// refused): answered 202, stored nowhere.
    NothingAdmitted {
        /// Where it arrived.
        route: Route,
    },
    /// One notification refused at admission (its neighbours were stored): not stored.
    Notification {
        /// Where it arrived.
        route: Route,
        /// Why, naming the notification and the field.
        error: ItemError,
    },
    /// A request answered with an error status (408, 413, 401, 503), so that Graph retries or
    /// gives up.
    Answered {
        /// Where it arrived.
        route: Route,
        /// The status sent.
        status: u16,
        /// Why.
        reason: String,
    },
    /// Connections closed by the server without a reply: over the per-address or total cap as
    /// they were accepted, or past the head or idle deadline. Counted, and reported at most once
    /// a second per reason.
    Connections {
        /// How many since the last report.
        count: u64,
        /// The address of the last one.
        peer: Option<IpAddr>,
        /// Why.
        reason: &'static str,
    },
}

impl Refusal {
    /// A stable name for counting refusals by kind: `dropped`, `nothingAdmitted`,
    /// `notification`, `answered`, `connections`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Dropped { .. } => "dropped",
            Self::NothingAdmitted { .. } => "nothingAdmitted",
            Self::Notification { .. } => "notification",
            Self::Answered { .. } => "answered",
            Self::Connections { .. } => "connections",
        }
    }

    /// The HTTP status the request was answered with, when it was answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Dropped { .. } | Self::NothingAdmitted { .. } | Self::Notification { .. } => {
                Some(202)
            }
            Self::Answered { status, .. } => Some(*status),
            Self::Connections { .. } => None,
        }
    }

    /// Emits the refusal as a `tracing` event (target `graph_chat_webhook`).
    pub(crate) fn trace(&self) {
        tracing::warn!(
            target: "graph_chat_webhook",
            kind = self.code(),
            status = self.status(),
            "{self}"
        );
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dropped { route, error } => write!(f, "batch refused: {route}: {error}"),
            Self::NothingAdmitted { route } => {
                write!(f, "batch refused: {route}: no notification admitted")
            }
            Self::Notification { route, error } => {
                write!(f, "notification refused: {route}: {error}")
            }
            Self::Answered {
                route,
                status,
                reason,
            } => match status {
                503 => write!(
                    f,
                    "batch not accepted (503, Graph retries): {route}: {reason}"
                ),
                _ => write!(f, "batch not accepted ({status}): {route}: {reason}"),
            },
            Self::Connections {
                count,
                peer,
                reason,
            } => {
                write!(f, "{count} connection(s) closed: {reason}")?;
                if let Some(peer) = peer {
                    write!(f, " (last from {peer})")?;
                }
                Ok(())
            }
        }
    }
}
