//! What a notification says happened: its `changeType` and, for lifecycle notifications, its
//! `lifecycleEvent`. Both are open: values newer than the crate are kept as sent.

use std::borrow::Cow;

/// `changeType` of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeType<'a> {
    /// `created`
    Created,
    /// `updated`
    Updated,
    /// `deleted`
    Deleted,
    /// A value this version of the crate does not know, kept as sent.
    Other(Cow<'a, str>),
}

impl<'a> ChangeType<'a> {
    /// Parses a `changeType` value, in any letter case.
    pub fn parse(s: &'a str) -> Self {
        if s.eq_ignore_ascii_case("created") {
            Self::Created
        } else if s.eq_ignore_ascii_case("updated") {
            Self::Updated
        } else if s.eq_ignore_ascii_case("deleted") {
            Self::Deleted
        } else {
            Self::Other(Cow::Borrowed(s))
        }
    }
}

/// `lifecycleEvent` of a lifecycle notification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LifecycleEvent<'a> {
    /// `reauthorizationRequired`: reauthorize or renew the subscription.
    ReauthorizationRequired,
    /// `subscriptionRemoved`: recreate the subscription, then resync with a GET.
    SubscriptionRemoved,
    /// `missed`: some notifications were not delivered; resync with a GET.
    Missed,
    /// An event this version of the crate does not know, kept as sent (never an error).
    Other(Cow<'a, str>),
}

impl<'a> LifecycleEvent<'a> {
    /// Parses a `lifecycleEvent` value, in any letter case.
    pub fn parse(s: &'a str) -> Self {
        if s.eq_ignore_ascii_case("reauthorizationRequired") {
            Self::ReauthorizationRequired
        } else if s.eq_ignore_ascii_case("subscriptionRemoved") {
            Self::SubscriptionRemoved
        } else if s.eq_ignore_ascii_case("missed") {
            Self::Missed
        } else {
            Self::Other(Cow::Borrowed(s))
        }
    }
}

impl LifecycleEvent<'_> {
    /// The event without borrows.
    pub fn into_owned(self) -> LifecycleEvent<'static> {
        match self {
            Self::ReauthorizationRequired => LifecycleEvent::ReauthorizationRequired,
            Self::SubscriptionRemoved => LifecycleEvent::SubscriptionRemoved,
            Self::Missed => LifecycleEvent::Missed,
            Self::Other(s) => LifecycleEvent::Other(Cow::Owned(s.into_owned())),
        }
    }
}
