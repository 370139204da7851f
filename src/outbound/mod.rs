//! Every request to Graph, checked against what Graph accepts, as plain request values
//! ([`HttpRequest`]): the crate sends nothing. Subscriptions (create, renew, reauthorize,
//! delete), chats, messages, the viewpoint actions and the reads, with typed pages.
//!
//! Graph refuses a wrong request with a 400, a subscription often only after the validation
//! handshake. The builders ([`SubscriptionRequest::build`] and the others) refuse the same
//! combinations up front, with a [`RequestError`] that says why.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use graph_chat_notifications::outbound::{Resource, SubscriptionRequest};
//! use graph_chat_notifications::model::ChangeType;
//!
//! let now = SystemTime::now(); // injected: the crate reads no clock
//! let request = SubscriptionRequest::builder(
//!     Resource::chat_messages("19:abc@thread.v2"),
//!     "https://webhook.example.com/api/notifications",
//! )
//! .change_types([ChangeType::Created, ChangeType::Updated])
//! .search("Hello")
//! .client_state("a-secret-you-choose")
//! .expires_in(now, Duration::from_secs(45 * 60))
//! .build()?;
//! assert_eq!(request.method.as_str(), "POST");
//! assert_eq!(request.url, "https://graph.microsoft.com/v1.0/subscriptions");
//!
//! // More than an hour needs a lifecycle URL, and Graph's limit is 4,320 minutes.
//! let refused = SubscriptionRequest::builder(Resource::all_chats(), "https://webhook.example.com/n")
//!     .change_types([ChangeType::Created])
//!     .expires_in(now, Duration::from_secs(2 * 3600))
//!     .build()
//!     .unwrap_err();
//! assert!(refused.to_string().contains("lifecycleNotificationUrl"));
//! # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
//! ```

mod chats;
mod error;
mod http;
mod messages;
mod reads;
mod resource;
mod returned;
mod rules;
mod subscription;
mod viewpoint;

pub use self::http::{HttpRequest, Method};
pub use chats::{
    add_chat_member, created_chat, get_my_chat, ChatMember, ChatsRequest, CreateChat, MemberRole,
    MAX_TOPIC_CHARS,
};
pub use error::RequestError;
pub use messages::{
    get_message, hosted_content_bytes, sent_message, set_reaction, soft_delete, undo_soft_delete,
    unset_reaction, MessageRequest,
};
pub use reads::{
    follow_link, get_chat, get_user_chat, list_subscriptions, MessagesRequest, OrderBy, Page,
};
pub use resource::{ApiVersion, Model, Permissions, Resource, Support};
pub use returned::{Subscription, SubscriptionParseError};
pub use rules::{format_time, is_loopback_url};
pub use subscription::{
    delete, get_subscription, reauthorize, renew, renew_at, renew_with_certificate,
    SubscriptionRequest, TlsVersion, MAX_LIFETIME, MAX_LIFETIME_WITHOUT_LIFECYCLE_URL,
    MAX_SECRET_CHARS,
};
pub use viewpoint::{hide_for_user, mark_chat_read_for_user, unhide_for_user, MarkChatUnread};
