//! The Teams chat and chatMessage resources a subscription can watch, and what Graph supports on
//! each: API version, query options, permissions.

use std::fmt;

/// Which API version a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// `https://graph.microsoft.com/v1.0`
    V1_0,
    /// `https://graph.microsoft.com/beta`
    Beta,
}

impl ApiVersion {
    /// The path segment: `v1.0` or `beta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_0 => "v1.0",
            Self::Beta => "beta",
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The licensing and payment model of a metered Teams API (`model=A` or `model=B`). Without one,
/// Graph uses evaluation mode, which is capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// `model=A`: security and compliance scenarios, for users with the required licences.
    A,
    /// `model=B`: other scenarios; metered per notification.
    B,
}

impl Model {
    /// `A` or `B`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
        }
    }
}

/// The least-privileged permissions first, as the Graph docs list them. Those marked `*` in the
/// docs (resource-specific consent) end in `.Chat` or `.Group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Permissions {
    /// Application permissions, least privileged first.
    pub application: &'static [&'static str],
    /// Delegated (work or school account) permissions, least privileged first; empty when the
    /// resource does not support delegated access.
    pub delegated: &'static [&'static str],
}

/// What Graph accepts on a resource (the support matrix of the Graph docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Support {
    /// The API version the resource is documented under.
    pub version: ApiVersion,
    /// The `model` values accepted; empty when the resource takes no `model`.
    pub models: &'static [Model],
    /// Whether `$search` is accepted.
    pub search: bool,
    /// Whether the mentions `$filter` is accepted.
    pub mentions_filter: bool,
    /// Whether `notifyOnUserSpecificProperties` is accepted (delegated access only).
    pub user_specific_properties: bool,
    /// Whether `notifyOnUserSpecificProperties` needs the beta API.
    pub user_specific_properties_beta: bool,
    /// Whether notifications can include resource data.
    pub resource_data: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    AllChats,
    Chat(String),
    UserChats(String),
    MyChats,
    AppInstalledChats(String),
    AllChannelMessages,
    AllChatMessages,
    ChannelMessages(String, String),
    ChatMessages(String),
    UserChatMessages(String),
    AppInstalledChatMessages(String),
}

/// A Teams chat or chatMessage resource to subscribe to. Ids are checked when the request is
/// built.
///
/// ```
/// use graph_chat_notifications::outbound::{ApiVersion, Model, Resource};
/// let r = Resource::chat_messages("19:abc@thread.v2");
/// assert_eq!(r.path(), "/chats/19:abc@thread.v2/messages");
/// assert!(r.support().search && r.support().mentions_filter);
/// assert_eq!(r.permissions().application, ["ChatMessage.Read.Chat", "Chat.Read.All"]);
/// assert_eq!(Resource::user_chats("u1").support().version, ApiVersion::Beta);
/// assert_eq!(Resource::all_chat_messages().support().models, [Model::A, Model::B]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource(Kind);

const ALL: Support = Support {
    version: ApiVersion::V1_0,
    models: &[],
    search: false,
    mentions_filter: false,
    user_specific_properties: false,
    user_specific_properties_beta: false,
    resource_data: true,
};

impl Resource {
    /// `/chats`: every chat in the tenant (application access).
    pub fn all_chats() -> Self {
        Self(Kind::AllChats)
    }
    /// `/chats/{chatId}`: one chat.
    pub fn chat(chat_id: impl Into<String>) -> Self {
        Self(Kind::Chat(chat_id.into()))
    }
    /// `/users/{userId}/chats`: every chat a user is part of (beta).
    pub fn user_chats(user_id: impl Into<String>) -> Self {
        Self(Kind::UserChats(user_id.into()))
    }
    /// `/me/chats`: every chat the signed-in user is part of (beta, delegated).
    pub fn my_chats() -> Self {
        Self(Kind::MyChats)
    }
    /// `/appCatalogs/teamsApps/{teamsAppId}/installedToChats`: every chat an app is installed in.
    pub fn app_installed_chats(teams_app_id: impl Into<String>) -> Self {
        Self(Kind::AppInstalledChats(teams_app_id.into()))
    }
    /// `/teams/getAllMessages`: every channel message in the tenant.
    pub fn all_channel_messages() -> Self {
        Self(Kind::AllChannelMessages)
    }
    /// `/chats/getAllMessages`: every chat message in the tenant.
    pub fn all_chat_messages() -> Self {
        Self(Kind::AllChatMessages)
    }
    /// `/teams/{teamId}/channels/{channelId}/messages`: messages and replies in one channel.
    pub fn channel_messages(team_id: impl Into<String>, channel_id: impl Into<String>) -> Self {
        Self(Kind::ChannelMessages(team_id.into(), channel_id.into()))
    }
    /// `/chats/{chatId}/messages`: messages in one chat.
    pub fn chat_messages(chat_id: impl Into<String>) -> Self {
        Self(Kind::ChatMessages(chat_id.into()))
    }
    /// `/users/{userId}/chats/getAllMessages`: messages in every chat a user is part of.
    pub fn user_chat_messages(user_id: impl Into<String>) -> Self {
        Self(Kind::UserChatMessages(user_id.into()))
    }
    /// `/appCatalogs/teamsApps/{teamsAppId}/installedToChats/getAllMessages`: messages in every
    /// chat an app is installed in.
    pub fn app_installed_chat_messages(teams_app_id: impl Into<String>) -> Self {
        Self(Kind::AppInstalledChatMessages(teams_app_id.into()))
    }

    /// The resource path, without query options.
    pub fn path(&self) -> String {
        match &self.0 {
            Kind::AllChats => "/chats".into(),
            Kind::Chat(c) => format!("/chats/{c}"),
            Kind::UserChats(u) => format!("/users/{u}/chats"),
            Kind::MyChats => "/me/chats".into(),
            Kind::AppInstalledChats(a) => format!("/appCatalogs/teamsApps/{a}/installedToChats"),
            Kind::AllChannelMessages => "/teams/getAllMessages".into(),
            Kind::AllChatMessages => "/chats/getAllMessages".into(),
            Kind::ChannelMessages(t, c) => format!("/teams/{t}/channels/{c}/messages"),
            Kind::ChatMessages(c) => format!("/chats/{c}/messages"),
            Kind::UserChatMessages(u) => format!("/users/{u}/chats/getAllMessages"),
            Kind::AppInstalledChatMessages(a) => {
                format!("/appCatalogs/teamsApps/{a}/installedToChats/getAllMessages")
            }
        }
    }

    /// The ids in the path, with what each is, for checking.
    pub(crate) fn ids(&self) -> Vec<(&'static str, &str)> {
        match &self.0 {
            Kind::Chat(c) | Kind::ChatMessages(c) => vec![("chat id", c)],
            Kind::UserChats(u) | Kind::UserChatMessages(u) => vec![("user id", u)],
            Kind::AppInstalledChats(a) | Kind::AppInstalledChatMessages(a) => {
                vec![("Teams app id", a)]
            }
            Kind::ChannelMessages(t, c) => vec![("team id", t), ("channel id", c)],
            _ => vec![],
        }
    }

    /// What Graph accepts on this resource.
    pub fn support(&self) -> Support {
        match &self.0 {
            Kind::AllChats => ALL,
            Kind::Chat(_) => Support {
                user_specific_properties: true,
                user_specific_properties_beta: true,
                ..ALL
            },
            Kind::UserChats(_) | Kind::MyChats => Support {
                version: ApiVersion::Beta,
                models: &[Model::B],
                user_specific_properties: true,
                ..ALL
            },
            Kind::AppInstalledChats(_) | Kind::AppInstalledChatMessages(_) => Support {
                models: &[Model::B],
                ..ALL
            },
            Kind::AllChannelMessages | Kind::AllChatMessages => Support {
                models: &[Model::A, Model::B],
                ..ALL
            },
            Kind::ChannelMessages(..) | Kind::ChatMessages(_) => Support {
                search: true,
                mentions_filter: true,
                ..ALL
            },
            Kind::UserChatMessages(_) => Support {
                models: &[Model::B],
                search: true,
                ..ALL
            },
        }
    }

    /// The permissions that allow the subscription, least privileged first.
    pub fn permissions(&self) -> Permissions {
        const CHAT_BASIC_ALL: &[&str] =
            &["Chat.ReadBasic.All", "Chat.Read.All", "Chat.ReadWrite.All"];
        const CHAT_BASIC: &[&str] = &["Chat.ReadBasic", "Chat.Read", "Chat.ReadWrite"];
        match &self.0 {
            Kind::AllChats => Permissions {
                application: CHAT_BASIC_ALL,
                delegated: &[],
            },
            Kind::Chat(_) => Permissions {
                application: &[
                    "ChatSettings.Read.Chat",
                    "ChatSettings.ReadWrite.Chat",
                    "Chat.Manage.Chat",
                    "Chat.ReadBasic.All",
                    "Chat.Read.All",
                    "Chat.ReadWrite.All",
                ],
                delegated: CHAT_BASIC,
            },
            Kind::UserChats(_) => Permissions {
                application: CHAT_BASIC_ALL,
                delegated: CHAT_BASIC,
            },
            Kind::MyChats => Permissions {
                application: &[],
                delegated: CHAT_BASIC,
            },
            Kind::AppInstalledChats(_) => Permissions {
                application: &[
                    "Chat.ReadBasic.WhereInstalled",
                    "Chat.Read.WhereInstalled",
                    "Chat.ReadWrite.WhereInstalled",
                ],
                delegated: &[],
            },
            Kind::AllChannelMessages => Permissions {
                application: &["ChannelMessage.Read.All"],
                delegated: &[],
            },
            Kind::AllChatMessages => Permissions {
                application: &["Chat.Read.All"],
                delegated: &[],
            },
            Kind::ChannelMessages(..) => Permissions {
                application: &["ChannelMessage.Read.Group", "ChannelMessage.Read.All"],
                delegated: &["ChannelMessage.Read.All"],
            },
            Kind::ChatMessages(_) => Permissions {
                application: &["ChatMessage.Read.Chat", "Chat.Read.All"],
                delegated: &["Chat.Read"],
            },
            Kind::UserChatMessages(_) => Permissions {
                application: &["Chat.Read.All", "Chat.ReadWrite.All"],
                delegated: &["Chat.Read", "Chat.ReadWrite"],
            },
            Kind::AppInstalledChatMessages(_) => Permissions {
                application: &["Chat.Read.WhereInstalled", "Chat.ReadWrite.WhereInstalled"],
                delegated: &[],
            },
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}
