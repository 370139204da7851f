//! The simulated Graph: its state behind one lock, every operation of the API and of `/_sim/`,
//! and the fan-out of each change to the subscriptions that match it.
//!
//! One [`Graph`] and one `impl` block per concern. The files import one way: `body` (reading
//! request bodies), `rules` (a subscription request's rules) and `caller` (who a call acts as)
//! below everything; `store` (the
//! Graph, its lock and `mutate`) below the operations; `queries` (paging) below `chats`.

mod body;
mod caller;
mod chats;
mod controls;
mod fanout;
mod identity;
mod messages;
mod queries;
mod rules;
mod store;
mod subscriptions;
mod viewpoint;

pub(crate) use caller::CALLER;
pub(crate) use identity::{Authorize, OAuthError};
pub(crate) use messages::HostedAnswer;
pub(crate) use queries::Scope;
pub(crate) use store::{spawn_ticker, Graph};
