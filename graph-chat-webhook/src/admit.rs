//! Admission: the checks on the request path, and the commit before the 2xx.

use std::time::SystemTime;

use graph_chat_notifications::tokens::TokenValidator;
use graph_chat_notifications::{BodyError, ItemError};

use crate::inbox::{BatchId, InboxError, NewBatch, Route};
use crate::jwks::KeyVerdict;
use crate::state::Shared;

/// What admission decided for one body.
pub(crate) enum Verdict {
    /// Committed: answer 202.
    Stored(BatchId),
    /// Forged or malformed as a whole: answer 202, store nothing.
    Dropped(BodyError),
    /// Nothing in it was admitted: answer 202, store nothing.
    NothingAdmitted,
    /// A token names a signing key not yet known ([`BodyError::unknown_key`]): ask the refresh
    /// policy.
    UnknownKey(BodyError),
    /// The inbox did not commit: answer 503.
    NotCommitted(InboxError),
}

/// Runs every check that needs no private key and, when something passed, commits it.
/// Blocking (it waits for the commit): call it off the async threads. Returns the verdict and
/// the notifications refused one by one.
pub(crate) fn admit(
    shared: &Shared,
    route: Route,
    body: &[u8],
    received: SystemTime,
) -> (Verdict, Vec<ItemError>) {
    let receiver = shared.receiver_for(route);
    let batch = match receiver.receive(body, received) {
        Ok(batch) => batch,
        Err(e) => {
            let verdict = match e.unknown_key() {
                Some(_) if shared.refreshes_jwks() => Verdict::UnknownKey(e),
                _ => Verdict::Dropped(e),
            };
            return (verdict, Vec::new());
        }
    };
    let admission = batch.admit();
    let refused = admission.refused().to_vec();
    if admission.is_empty() {
        return (Verdict::NothingAdmitted, refused);
    }
    let stored = shared.inbox.put(NewBatch {
        route,
        received,
        record: admission.into_record(),
    });
    let verdict = match stored {
        Ok(id) => Verdict::Stored(id),
        Err(e) => Verdict::NotCommitted(e),
    };
    (verdict, refused)
}

/// The one rule for a token (validation token or Event Grid bearer) naming an unknown key:
/// ask the refresh policy, fetching when it says so (blocking).
pub(crate) fn unknown_key(shared: &Shared, kid: &str) -> KeyVerdict {
    let Some(jwks) = &shared.jwks else {
        return KeyVerdict::Forged;
    };
    let validators: Vec<&TokenValidator> = shared.validators().collect();
    jwks.on_unknown_key(&validators, kid)
}
