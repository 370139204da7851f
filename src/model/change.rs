//! What a notification says happened: its `changeType` and, for lifecycle notifications, its
//! `lifecycleEvent`. Both are Graph string enumerations like the models' own: notifications
//! hold them as [`EnumValue`](super::EnumValue), which keeps values newer than the crate as
//! sent, and subscriptions take the closed members.

use super::macros::string_enum;

string_enum! {
    /// `changeType`: what happened to the resource. Subscriptions ask for these; notifications
    /// carry one, as an [`EnumValue`](super::EnumValue).
    ChangeType {
        /// `created`
        Created = "created",
        /// `updated`
        Updated = "updated",
        /// `deleted`
        Deleted = "deleted",
    }
}

string_enum! {
    /// `lifecycleEvent` of a lifecycle notification.
    LifecycleEvent {
        /// `reauthorizationRequired`: reauthorize or renew the subscription.
        ReauthorizationRequired = "reauthorizationRequired",
        /// `subscriptionRemoved`: recreate the subscription, then resync with a GET.
        SubscriptionRemoved = "subscriptionRemoved",
        /// `missed`: some notifications were not delivered; resync with a GET.
        Missed = "missed",
    }
}

#[cfg(test)]
mod tests {
    use super::super::enums::{EnumValue, GraphEnum};
    use super::*;

    #[test]
    fn any_letter_case_and_unknown_values_kept() {
        assert_eq!(
            LifecycleEvent::parse("SubscriptionRemoved"),
            Some(LifecycleEvent::SubscriptionRemoved)
        );
        assert_eq!(ChangeType::parse("CREATED"), Some(ChangeType::Created));
        let new = EnumValue::<LifecycleEvent>::new("brandNewEvent");
        assert_eq!(new.known(), None);
        assert_eq!(new.as_str(), "brandNewEvent");
        assert_eq!(ChangeType::Deleted.as_str(), "deleted");
    }
}
