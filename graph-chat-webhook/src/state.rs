//! What every request and worker shares ([`Shared`]), and the configuration it is built from
//! ([`EventGrid`], [`BuildError`]): the room below the routes, the connections and the workers,
//! so that none of them imports the entry point.

use std::fmt;
use std::sync::Arc;

use graph_chat_notifications::inbound::{Delivery, Receiver};
use graph_chat_notifications::tokens::{TokenValidator, EVENT_GRID_APP_ID};

use crate::body::Budget;
use crate::inbox::{Inbox, Route};
use crate::jwks::Jwks;
use crate::limits::ServerLimits;
use crate::refusal::{Refusal, Reporter};

/// What every request and worker shares.
pub(crate) struct Shared {
    pub(crate) receiver: Receiver,
    pub(crate) event_grid: Option<EventGrid>,
    pub(crate) inbox: Arc<dyn Inbox>,
    pub(crate) jwks: Option<Jwks>,
    pub(crate) budget: Budget,
    pub(crate) limits: ServerLimits,
    /// Admissions running at once ([`crate::limits::ADMISSIONS_PER_CORE`]).
    pub(crate) admissions: Arc<tokio::sync::Semaphore>,
    pub(crate) reporter: Reporter,
}

impl Shared {
    pub(crate) fn receiver_for(&self, route: Route) -> &Receiver {
        match (route, &self.event_grid) {
            (Route::EventGrid, Some(eg)) => &eg.receiver,
            _ => &self.receiver,
        }
    }

    /// Every validator that holds the identity platform's keys.
    pub(crate) fn validators(&self) -> impl Iterator<Item = &TokenValidator> {
        self.receiver
            .tokens()
            .into_iter()
            .chain(self.event_grid.as_ref().and_then(|eg| eg.bearer.as_deref()))
    }

    pub(crate) fn refreshes_jwks(&self) -> bool {
        self.jwks.is_some()
    }

    pub(crate) fn refuse(&self, refusal: Refusal) {
        self.reporter.report(refusal);
    }
}

/// The Event Grid routes' configuration: a receiver for CloudEvents, and the check of the
/// Microsoft Entra bearer token Event Grid sends with each delivery.
///
/// Event Grid sends no validation tokens. What a delivery to `/eventgrid` rests on: the bearer
/// token (issued by the identity platform for your app, to Event Grid's service principal: the
/// event subscription must be set to deliver to a Microsoft Entra protected webhook), the
/// tenants the receiver serves ([`ReceiverBuilder::allowed_tenants`](graph_chat_notifications::inbound::ReceiverBuilder::allowed_tenants):
/// each notification's `tenantId` and each CloudEvent's `source`), and `clientState`.
pub struct EventGrid {
    pub(crate) receiver: Receiver,
    pub(crate) bearer: Option<Box<TokenValidator>>,
}

impl fmt::Debug for EventGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventGrid")
            .field("receiver", &self.receiver)
            .field("bearer", &self.bearer)
            .finish()
    }
}

impl EventGrid {
    /// Event Grid deliveries read by `receiver` (built with [`Delivery::EventGrid`] and
    /// `allowed_tenants`), each request's bearer token checked by `bearer` (a validator whose
    /// publisher is [`EVENT_GRID_APP_ID`], for your app and tenants; its keys come from the
    /// webhook's JWKS source).
    pub fn new(receiver: Receiver, bearer: TokenValidator) -> Result<Self, BuildError> {
        if !bearer
            .configured_publisher()
            .eq_ignore_ascii_case(EVENT_GRID_APP_ID)
        {
            return Err(BuildError::EventGrid(
                "the bearer validator's publisher must be Event Grid's app (EVENT_GRID_APP_ID)",
            ));
        }
        Self::checked(receiver, Some(Box::new(bearer)))
    }

    /// Event Grid deliveries taken without a bearer token: anyone who learns the URL and a
    /// `clientState` can deliver. Only behind another proof of origin (a private network, a
    /// proxy that authenticates), or in tests.
    pub fn dangerous_without_bearer(receiver: Receiver) -> Result<Self, BuildError> {
        Self::checked(receiver, None)
    }

    fn checked(
        receiver: Receiver,
        bearer: Option<Box<TokenValidator>>,
    ) -> Result<Self, BuildError> {
        if receiver.delivery() != Delivery::EventGrid {
            return Err(BuildError::EventGrid(
                "the receiver must read Delivery::EventGrid",
            ));
        }
        if receiver.allowed_tenants().is_empty() {
            return Err(BuildError::EventGrid(
                "the receiver must name the tenants it serves (allowed_tenants)",
            ));
        }
        Ok(Self { receiver, bearer })
    }
}

/// Why [`WebhookBuilder::build`](crate::WebhookBuilder::build) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No inbox was given.
    #[error("an inbox is required")]
    NoInbox,
    /// The receiver is not for the webhook channel.
    #[error("the receiver must read Delivery::Webhook")]
    NotWebhook,
    /// The receiver checks validation tokens but no JWKS source was given (or the reverse).
    #[error("{0}")]
    Jwks(String),
    /// The Event Grid configuration is refused.
    #[error("event grid: {0}")]
    EventGrid(&'static str),
}
