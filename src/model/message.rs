//! The `chatMessage` resource and what it holds.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::datetime::DateTime;
use super::enums::{EnumValue, GraphEnum};
use super::error::ModelError;
use super::macros::{model, string_enum};
use super::redact::RedactDebug;
use super::value::{IntoOwned, Json, Text};

string_enum! {
    /// `messageType`.
    MessageType {
        /// `message`
        Message = "message",
        /// `chatEvent`
        ChatEvent = "chatEvent",
        /// `typing`
        Typing = "typing",
        /// `systemEventMessage`
        SystemEventMessage = "systemEventMessage",
        /// `unknownFutureValue`
        UnknownFutureValue = "unknownFutureValue",
    }
}

string_enum! {
    /// `importance`.
    Importance {
        /// `normal`
        Normal = "normal",
        /// `high`
        High = "high",
        /// `urgent`
        Urgent = "urgent",
        /// `unknownFutureValue`
        UnknownFutureValue = "unknownFutureValue",
    }
}

string_enum! {
    /// `body.contentType`.
    BodyType {
        /// `text`
        Text = "text",
        /// `html`
        Html = "html",
    }
}

string_enum! {
    /// `policyViolation.dlpAction`: what data loss prevention did to the message.
    DlpAction {
        /// `none`
        None = "none",
        /// `notifySender`: the sender was told; the message still shows.
        NotifySender = "notifySender",
        /// `blockAccess`: the message is hidden from everyone but the sender.
        BlockAccess = "blockAccess",
        /// `blockAccessExternal`: the message is hidden from people outside the organisation.
        BlockAccessExternal = "blockAccessExternal",
    }
}

impl EnumValue<'_, DlpAction> {
    /// Whether the message is hidden from (some) recipients: `blockAccess` or
    /// `blockAccessExternal`, alone or among the flags of a combination
    /// (`notifySender, blockAccess`).
    pub fn blocks(&self) -> bool {
        // A single value is a combination of one flag.
        self.as_str().split(',').any(|flag| {
            matches!(
                DlpAction::parse(flag.trim()),
                Some(DlpAction::BlockAccess | DlpAction::BlockAccessExternal)
            )
        })
    }
}

model! {
    /// A chat or channel message (`#microsoft.graph.chatMessage`).
    ChatMessage {
        /// `@odata.context`
        #[serde(rename = "@odata.context")]
        odata_context: Text<'a>,
        /// `@odata.type`
        #[serde(rename = "@odata.type")]
        odata_type: Text<'a>,
        /// `id`
        id: Text<'a>,
        /// `replyToId`: the parent message of a channel reply.
        reply_to_id: Text<'a>,
        /// `etag`
        etag: Text<'a>,
        /// `messageType`
        message_type: EnumValue<'a, MessageType>,
        /// `createdDateTime`: the order of messages in a chat.
        created_date_time: DateTime<'a>,
        /// `lastModifiedDateTime`: any change, reactions included.
        last_modified_date_time: DateTime<'a>,
        /// `lastEditedDateTime`: an edit of the content.
        last_edited_date_time: DateTime<'a>,
        /// `deletedDateTime`: set when the message was deleted.
        deleted_date_time: DateTime<'a>,
        /// `subject`
        subject: Text<'a>,
        /// `summary`
        summary: Text<'a>,
        /// `chatId`
        chat_id: Text<'a>,
        /// `importance`
        importance: EnumValue<'a, Importance>,
        /// `locale`
        locale: Text<'a>,
        /// `webUrl`
        web_url: Text<'a>,
        /// `channelIdentity`: the team and channel of a channel message.
        channel_identity: ChannelIdentity<'a>,
        /// `policyViolation`: a data loss prevention verdict.
        policy_violation: PolicyViolation<'a>,
        /// `eventDetail`: what a system event message reports.
        event_detail: EventDetail<'a>,
        /// `from`
        from: IdentitySet<'a>,
        /// `body`
        body: ItemBody<'a>,
        /// `attachments`
        attachments: Vec<Attachment<'a>>,
        /// `mentions`
        mentions: Vec<Mention<'a>>,
        /// `reactions`
        reactions: Vec<Reaction<'a>>,
        /// `messageHistory`
        message_history: Vec<MessageHistoryItem<'a>>,
        /// `replies`, kept as sent.
        replies: Json<'a>,
        /// `hostedContents`, kept as sent.
        hosted_contents: Json<'a>,
        /// `onBehalfOf`
        on_behalf_of: IdentitySet<'a>,
    }
}

impl<'a> ChatMessage<'a> {
    /// The data loss prevention action on the message, if any.
    pub fn dlp_action(&self) -> Option<&EnumValue<'a, DlpAction>> {
        self.policy_violation.get().and_then(|p| p.dlp_action.get())
    }

    /// Whether the message was deleted (`deletedDateTime` set).
    pub fn is_deleted(&self) -> bool {
        self.deleted_date_time.get().is_some()
    }
}

model! {
    /// `channelIdentity`.
    ChannelIdentity {
        /// `teamId`
        team_id: Text<'a>,
        /// `channelId`
        channel_id: Text<'a>,
    }
}

model! {
    /// An identity set: who sent, reacted, was mentioned.
    IdentitySet {
        /// `application`
        application: Identity<'a>,
        /// `device`
        device: Identity<'a>,
        /// `user`
        user: Identity<'a>,
        /// `conversation` (mentions of a channel or chat).
        conversation: Identity<'a>,
        /// `tag` (mentions of a tag).
        tag: Identity<'a>,
    }
}

model! {
    /// One identity: a user, an application, a device.
    Identity {
        /// `@odata.type`
        #[serde(rename = "@odata.type")]
        odata_type: Text<'a>,
        /// `id`
        id: Text<'a>,
        /// `displayName`
        display_name: Text<'a>,
        /// `userIdentityType` (`aadUser`, `anonymousGuest`, `federatedUser`...).
        user_identity_type: Text<'a>,
        /// `applicationIdentityType` (`bot`...).
        application_identity_type: Text<'a>,
        /// `conversationIdentityType` (`channel`, `chat`...).
        conversation_identity_type: Text<'a>,
        /// `tenantId`
        tenant_id: Text<'a>,
    }
}

model! {
    /// `body`: the message content. `Debug` shows its length, not its text.
    ItemBody {
        /// `contentType`
        content_type: EnumValue<'a, BodyType>,
        /// `content`
        content: RedactedText<'a>,
    }
}

/// Message content: a [`Text`] whose `Debug` shows only its length, so logging a model does not
/// log what people wrote.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent, bound(deserialize = "'de: 'a"))]
pub struct RedactedText<'a>(Text<'a>);

impl<'a> RedactedText<'a> {
    /// The text, whose `Debug` shows it: handle with care.
    pub fn as_text(&self) -> &Text<'a> {
        &self.0
    }

    /// The text, whose `Debug` shows it: handle with care.
    pub fn into_text(self) -> Text<'a> {
        self.0
    }
}

impl<'a> From<Text<'a>> for RedactedText<'a> {
    fn from(text: Text<'a>) -> Self {
        Self(text)
    }
}

impl std::ops::Deref for RedactedText<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedactedText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} bytes]", self.0.len())
    }
}

impl IntoOwned for RedactedText<'_> {
    type Owned = RedactedText<'static>;
    fn into_owned(self) -> RedactedText<'static> {
        RedactedText(self.0.into_owned())
    }
}

impl RedactDebug for RedactedText<'_> {
    /// Its own `Debug` shows only its length.
    fn fmt_redacted(&self, _: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

model! {
    /// `mentions[]`.
    Mention {
        /// `id`: the index of the `<at id="...">` tag in the body.
        id: i64,
        /// `mentionText`
        mention_text: Text<'a>,
        /// `mentioned`
        mentioned: IdentitySet<'a>,
    }
}

model! {
    /// `attachments[]`: a file, a card, a quoted reply, a meeting...
    Attachment {
        /// `id`
        id: Text<'a>,
        /// `contentType` (`reference`, `application/vnd.microsoft.card.adaptive`, `messageReference`...).
        content_type: Text<'a>,
        /// `contentUrl`
        content_url: Text<'a>,
        /// `content`: for cards and references, a JSON document in a string.
        content: RedactedText<'a>,
        /// `name`
        name: Text<'a>,
        /// `thumbnailUrl`
        thumbnail_url: Text<'a>,
        /// `teamsAppId`
        teams_app_id: Text<'a>,
    }
}

model! {
    /// `reactions[]`.
    Reaction {
        /// `reactionType`: `like`, `heart`... or an emoji.
        reaction_type: Text<'a>,
        /// `displayName`
        display_name: Text<'a>,
        /// `reactionContentUrl`: the image of a custom reaction.
        reaction_content_url: Text<'a>,
        /// `createdDateTime`
        created_date_time: DateTime<'a>,
        /// `user`
        user: IdentitySet<'a>,
    }
}

model! {
    /// `messageHistory[]`: edits and reactions over time.
    MessageHistoryItem {
        /// `modifiedDateTime`
        modified_date_time: DateTime<'a>,
        /// `actions` (`reactionAdded`, `reactionRemoved`, `actionUndefined`...).
        actions: Text<'a>,
        /// `reaction`
        reaction: Reaction<'a>,
    }
}

model! {
    /// `policyViolation`: the data loss prevention verdict on a message.
    PolicyViolation {
        /// `dlpAction`
        dlp_action: EnumValue<'a, DlpAction>,
        /// `justificationText`
        justification_text: Text<'a>,
        /// `policyTip`
        policy_tip: PolicyTip<'a>,
        /// `userAction` (`none`, `override`, `reportFalsePositive`).
        user_action: Text<'a>,
        /// `verdictDetails` (`none`, `allowFalsePositiveOverride`...).
        verdict_details: Text<'a>,
    }
}

model! {
    /// `policyTip`.
    PolicyTip {
        /// `complianceUrl`
        compliance_url: Text<'a>,
        /// `generalText`
        general_text: Text<'a>,
        /// `matchedConditionDescriptions`
        matched_condition_descriptions: Vec<Text<'a>>,
    }
}

model! {
    /// The fields of an `eventDetail`; which of them are set depends on the event.
    EventFields {
        /// `@odata.type`
        #[serde(rename = "@odata.type")]
        odata_type: Text<'a>,
        /// `members` (members added or deleted).
        members: Vec<Identity<'a>>,
        /// `initiator`
        initiator: IdentitySet<'a>,
        /// `visibleHistoryStartDateTime` (members added).
        visible_history_start_date_time: DateTime<'a>,
        /// `chatDisplayName` (chat renamed).
        chat_display_name: Text<'a>,
        /// `chatId`
        chat_id: Text<'a>,
        /// `callId` (calls).
        call_id: Text<'a>,
        /// `callDuration` (call ended), ISO 8601 duration.
        call_duration: Text<'a>,
        /// `callEventType` (`call`, `meeting`, `screenShare`...).
        call_event_type: Text<'a>,
        /// `callParticipants` (call ended), kept as sent.
        call_participants: Json<'a>,
    }
}

/// `eventDetail` of a system event message, by its `@odata.type`. Every variant holds the same
/// [`EventFields`], of which the event sets some; events this version does not know are
/// `Other`, with their fields kept.
///
/// `Debug` redacts content as the models do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventDetail<'a> {
    /// `#microsoft.graph.membersAddedEventMessageDetail`
    MembersAdded(Box<EventFields<'a>>),
    /// `#microsoft.graph.membersDeletedEventMessageDetail`
    MembersDeleted(Box<EventFields<'a>>),
    /// `#microsoft.graph.membersJoinedEventMessageDetail`
    MembersJoined(Box<EventFields<'a>>),
    /// `#microsoft.graph.membersLeftEventMessageDetail`
    MembersLeft(Box<EventFields<'a>>),
    /// `#microsoft.graph.chatRenamedEventMessageDetail`
    ChatRenamed(Box<EventFields<'a>>),
    /// `#microsoft.graph.callStartedEventMessageDetail`
    CallStarted(Box<EventFields<'a>>),
    /// `#microsoft.graph.callEndedEventMessageDetail`
    CallEnded(Box<EventFields<'a>>),
    /// Another event.
    Other(Box<EventFields<'a>>),
}

impl<'a> EventDetail<'a> {
    /// The event's fields.
    pub fn fields(&self) -> &EventFields<'a> {
        match self {
            Self::MembersAdded(f)
            | Self::MembersDeleted(f)
            | Self::MembersJoined(f)
            | Self::MembersLeft(f)
            | Self::ChatRenamed(f)
            | Self::CallStarted(f)
            | Self::CallEnded(f)
            | Self::Other(f) => f,
        }
    }

    fn from_fields(fields: EventFields<'a>) -> Self {
        let name = fields
            .odata_type
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('#')
            .to_ascii_lowercase();
        let name = name.strip_prefix("microsoft.graph.").unwrap_or(&name);
        let f = Box::new(fields);
        match name {
            "membersaddedeventmessagedetail" => Self::MembersAdded(f),
            "membersdeletedeventmessagedetail" => Self::MembersDeleted(f),
            "membersjoinedeventmessagedetail" => Self::MembersJoined(f),
            "memberslefteventmessagedetail" => Self::MembersLeft(f),
            "chatrenamedeventmessagedetail" => Self::ChatRenamed(f),
            "callstartedeventmessagedetail" => Self::CallStarted(f),
            "callendedeventmessagedetail" => Self::CallEnded(f),
            _ => Self::Other(f),
        }
    }
}

impl RedactDebug for EventDetail<'_> {
    fn fmt_redacted(&self, _: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl IntoOwned for EventDetail<'_> {
    type Owned = EventDetail<'static>;
    fn into_owned(self) -> EventDetail<'static> {
        let fields = self.fields().clone().into_owned();
        EventDetail::from_fields(fields)
    }
}

impl Serialize for EventDetail<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(s)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EventDetail<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let fields: EventFields<'a> = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| de::Error::custom(ModelError::from_json(e).nested()))?;
        Ok(Self::from_fields(fields))
    }
}
