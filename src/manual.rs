//! The guides, beside the API they use: how the inbound path is secured, which delivery channel
//! to choose and how each is read, and how to keep subscriptions alive without missing anything.
//! This module holds no code; its examples are compiled and run as tests.
//!
//! * [`security`]: the threat model, the order of checks and why, limits, secrets, and what
//!   remains yours to do.
//! * [`channels`]: a webhook, Event Hubs and Event Grid: what each trusts, and a consumer for each.
//! * [`lifecycle`]: lifecycle events, resync reads and the subscription keeper.

pub mod security {
    #![doc = include_str!("../SECURITY.md")]
}

pub mod channels {
    #![doc = include_str!("../docs/manual/channels.md")]
}

pub mod lifecycle {
    #![doc = include_str!("../docs/manual/lifecycle.md")]
}
