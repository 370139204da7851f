//! The `chat` resource and what it holds.

use super::datetime::DateTime;
use super::enums::EnumValue;
use super::macros::{model, string_enum};
use super::message::{EventDetail, Identity, IdentitySet, ItemBody, MessageType};
use super::value::{Json, Text};

string_enum! {
    /// `chatType`.
    ChatType {
        /// `oneOnOne`
        OneOnOne = "oneOnOne",
        /// `group`
        Group = "group",
        /// `meeting`
        Meeting = "meeting",
        /// `unknownFutureValue`
        UnknownFutureValue = "unknownFutureValue",
    }
}

model! {
    /// A Teams chat (`#microsoft.graph.chat`). In a user-specific notification most properties
    /// are absent, meaning unchanged, and `viewpoint` is set.
    Chat {
        /// `@odata.context`
        #[serde(rename = "@odata.context")]
        odata_context: Text<'a>,
        /// `@odata.type`
        #[serde(rename = "@odata.type")]
        odata_type: Text<'a>,
        /// `id`, such as `19:...@thread.v2` or `19:{a}_{b}@unq.gbl.spaces`.
        id: Text<'a>,
        /// `topic`: the chat's title (group and meeting chats).
        topic: Text<'a>,
        /// `createdDateTime`
        created_date_time: DateTime<'a>,
        /// `lastUpdatedDateTime`
        last_updated_date_time: DateTime<'a>,
        /// `chatType`
        chat_type: EnumValue<'a, ChatType>,
        /// `webUrl`
        web_url: Text<'a>,
        /// `tenantId`
        tenant_id: Text<'a>,
        /// `isHiddenForAllMembers`
        is_hidden_for_all_members: bool,
        /// `lastMessagePreview`
        last_message_preview: LastMessagePreview<'a>,
        /// `onlineMeetingInfo` (meeting chats).
        online_meeting_info: OnlineMeetingInfo<'a>,
        /// `viewpoint`: the subscribing user's own view of the chat.
        viewpoint: ChatViewpoint<'a>,
        /// `members`
        members: Vec<ConversationMember<'a>>,
        /// `messages`, kept as sent.
        messages: Json<'a>,
        /// `installedApps`, kept as sent.
        installed_apps: Json<'a>,
        /// `tabs`, kept as sent.
        tabs: Json<'a>,
        /// `permissionGrants`, kept as sent.
        permission_grants: Json<'a>,
        /// `operations`, kept as sent.
        operations: Json<'a>,
        /// `pinnedMessages`, kept as sent.
        pinned_messages: Json<'a>,
        /// `assignedSensitivityLabel`, kept as sent.
        assigned_sensitivity_label: Json<'a>,
    }
}

model! {
    /// `viewpoint` (`chatViewpoint`): whether the chat is hidden for the user and when they last
    /// read it. A hidden chat shows again when a message newer than `lastMessageReadDateTime`
    /// arrives; Graph sends no `isHidden: false` for that (see [`chat_is_visible`](super::chat_is_visible)).
    ChatViewpoint {
        /// `isHidden`
        is_hidden: bool,
        /// `lastMessageReadDateTime`
        last_message_read_date_time: DateTime<'a>,
    }
}

model! {
    /// A chat member (`conversationMember`; usually `#microsoft.graph.aadUserConversationMember`).
    ConversationMember {
        /// `@odata.type`
        #[serde(rename = "@odata.type")]
        odata_type: Text<'a>,
        /// `id`
        id: Text<'a>,
        /// `displayName`
        display_name: Text<'a>,
        /// `roles` (`owner`, `guest`...).
        roles: Vec<Text<'a>>,
        /// `visibleHistoryStartDateTime`
        visible_history_start_date_time: DateTime<'a>,
        /// `userId`
        user_id: Text<'a>,
        /// `email`
        email: Text<'a>,
        /// `tenantId`
        tenant_id: Text<'a>,
    }
}

model! {
    /// `onlineMeetingInfo` of a meeting chat.
    OnlineMeetingInfo {
        /// `calendarEventId`
        calendar_event_id: Text<'a>,
        /// `joinWebUrl`
        join_web_url: Text<'a>,
        /// `organizer`: a user identity (`teamworkUserIdentity`), not an identity set.
        organizer: Identity<'a>,
    }
}

model! {
    /// `lastMessagePreview`: the newest message, briefly.
    LastMessagePreview {
        /// `id`
        id: Text<'a>,
        /// `createdDateTime`
        created_date_time: DateTime<'a>,
        /// `isDeleted`
        is_deleted: bool,
        /// `messageType`
        message_type: EnumValue<'a, MessageType>,
        /// `eventDetail`
        event_detail: EventDetail<'a>,
        /// `body`
        body: ItemBody<'a>,
        /// `from`
        from: IdentitySet<'a>,
    }
}
