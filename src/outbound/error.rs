//! [`RequestError`]: why a request value was refused, as Graph would have refused it.

/// Why a request was refused: what Graph would have refused, said so a user can act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No change type was given.
    #[error("changeType: give at least one of created, updated, deleted")]
    NoChangeType,
    /// An id in the resource path is empty, a dot segment, or holds characters that would change
    /// the path.
    #[error(
        "resource: the {what} {id:?} is empty, '.' or '..', or holds '/', '?', '#', '&', '%', quotes or white space"
    )]
    BadId {
        /// Which id (`chat id`, `team id`...).
        what: &'static str,
        /// The id as given.
        id: String,
    },
    /// The resource does not take this query option.
    #[error(
        "resource {resource}: {option} is not supported on this resource (supported: {supported})"
    )]
    UnsupportedQueryOption {
        /// The resource path.
        resource: String,
        /// The option (`model=B`, `$search`...).
        option: String,
        /// What the resource supports instead.
        supported: &'static str,
    },
    /// `$search` was given an empty keyword.
    #[error("$search: the keyword is empty")]
    EmptySearch,
    /// The mentions filter needs a user's object id (a GUID).
    #[error("$filter: {0:?} is not a user object id (a GUID)")]
    BadMentionedUser(String),
    /// A URL is not one Graph delivers to.
    #[error("{field}: {reason}")]
    BadUrl {
        /// `notificationUrl` or `lifecycleNotificationUrl`.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// No expiration was given.
    #[error("expirationDateTime: required; use expires_in(now, lifetime) or expires_at(time)")]
    NoExpiration,
    /// The expiration is not in the future.
    #[error("expirationDateTime: must be after now")]
    ExpirationNotInFuture,
    /// The expiration is past Graph's maximum for these resources.
    #[error("expirationDateTime: {minutes} minutes ahead is over the maximum of 4320 minutes for chat and chatMessage subscriptions")]
    ExpirationTooFar {
        /// Minutes ahead of now.
        minutes: u64,
    },
    /// More than an hour ahead without a lifecycle URL.
    #[error("lifecycleNotificationUrl is a required property for subscription creation on this resource when the expirationDateTime value is set to greater than 1 hour")]
    LifecycleUrlRequired,
    /// `clientState` is empty or too long.
    #[error("clientState: must be 1 to 128 characters, got {0}")]
    BadClientState(usize),
    /// `encryptionCertificateId` is empty or too long.
    #[error("encryptionCertificateId: must be 1 to 128 characters, got {0}")]
    BadCertificateId(usize),
    /// The certificate bytes are empty.
    #[error("encryptionCertificate: no certificate bytes")]
    EmptyCertificate,
    /// A subscription id is empty or holds characters that would change the URL.
    #[error(
        "subscription id {0:?} is empty, '.' or '..', or holds '/', '?', '#', '%' or white space"
    )]
    BadSubscriptionId(String),
    /// The time cannot be written as a date (out of range).
    #[error("expirationDateTime: the time is out of range")]
    TimeOutOfRange,
    /// A read option the endpoint does not take.
    #[error("{option} is not accepted on {resource}")]
    UnsupportedOption {
        /// The option (`model`, `$orderby`).
        option: &'static str,
        /// The endpoint's path.
        resource: String,
    },
    /// `$top` outside 1 to 50.
    #[error("$top: {0} is outside 1 to 50")]
    TopOutOfRange(u32),
    /// A time that is not one (for the `lastModifiedDateTime` filter).
    #[error("$filter: {0:?} is not a time such as 2021-03-17T07:13:28.000Z")]
    BadTime(String),
    /// A link Graph returned that is not one to follow.
    #[error("@odata link: {reason}")]
    BadLink {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A chat's members do not fit its type: a `oneOnOne` chat has exactly two, a `group` chat
    /// at least two (Graph: "Create chat").
    #[error("members: a {chat_type} chat needs {needed} members, got {got}")]
    MemberCount {
        /// `oneOnOne` or `group`.
        chat_type: &'static str,
        /// What the type needs (`exactly 2`, `at least 2`).
        needed: &'static str,
        /// How many were given.
        got: usize,
    },
    /// The same user was given twice as a member.
    #[error("members[{index}]: {user:?} is already a member of the chat")]
    DuplicateMember {
        /// The position of the second occurrence in `members`.
        index: usize,
        /// The user id or UPN.
        user: String,
    },
    /// A member's user is neither an object id nor a user principal name, or holds characters
    /// that would break `users('{id}')`.
    #[error("members[{index}]: {user:?} is not a user id (a GUID) or a user principal name (name@domain)")]
    BadMember {
        /// The position in `members`.
        index: usize,
        /// The user as given.
        user: String,
    },
    /// A topic was given for a chat that is not a group chat.
    #[error("topic: only a group chat has a topic; remove it from the oneOnOne chat")]
    TopicNotAllowed,
    /// A group chat's topic is empty, too long or holds a ':' (Graph: "Update chat").
    #[error("topic: {reason}")]
    BadTopic {
        /// What is wrong.
        reason: &'static str,
    },
    /// A message body with no content.
    #[error("body.content: the message is empty")]
    EmptyContent,
    /// Mentions or inline images in a message whose body is not HTML.
    #[error("body.contentType: {what} need an html body; call .html()")]
    NeedsHtml {
        /// `mentions` or `hostedContents`.
        what: &'static str,
    },
    /// A mention that the HTML body does not carry as `<at id="{id}">`, or a second mention with
    /// the same id.
    #[error("mentions[{index}]: {reason} (id {id})")]
    BadMention {
        /// The position in `mentions`.
        index: usize,
        /// The mention's id.
        id: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// An inline image that is empty, has no image content type, repeats a temporary id, or is
    /// not referenced by the body as `../hostedContents/{id}/$value`.
    #[error("hostedContents[{index}]: {reason}")]
    BadHostedContent {
        /// The position in `hostedContents`.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// `reactionType` is empty or white space.
    #[error("reactionType: give the reaction, such as a Unicode emoji")]
    EmptyReaction,
    /// An id that must be an object id (a GUID) is not one.
    #[error("{field}: {value:?} is not an object id (a GUID)")]
    NotAGuid {
        /// The property (`user.id`, `user.tenantId`).
        field: &'static str,
        /// The value as given.
        value: String,
    },
    /// A `$filter` expression that is empty.
    #[error("$filter: the expression is empty")]
    EmptyFilter,
}
