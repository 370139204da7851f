//! [`decode`]: a resource's JSON to its model, chosen by the notification or by the document.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::chat::Chat;
use super::error::ModelError;
use super::kind::ResourceKind;
use super::message::ChatMessage;
use super::path::ResourcePath;
use super::value::{IntoOwned, Text};

/// A decoded resource.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChatOrMessage<'a> {
    /// A chat.
    Chat(Box<Chat<'a>>),
    /// A chat or channel message.
    ChatMessage(Box<ChatMessage<'a>>),
}

impl IntoOwned for ChatOrMessage<'_> {
    type Owned = ChatOrMessage<'static>;
    fn into_owned(self) -> ChatOrMessage<'static> {
        match self {
            Self::Chat(c) => ChatOrMessage::Chat(c.into_owned()),
            Self::ChatMessage(m) => ChatOrMessage::ChatMessage(m.into_owned()),
        }
    }
}

impl Serialize for ChatOrMessage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Chat(c) => c.serialize(s),
            Self::ChatMessage(m) => m.serialize(s),
        }
    }
}

/// Reads back what `Serialize` wrote, into owned data, so `ChatOrMessage<'static>` is
/// `DeserializeOwned`: for queues and caches. It reads JSON through serde_json (`from_str`,
/// `from_slice`, `from_reader`, or as a field of a larger document), and the model is chosen as
/// [`decode`] chooses it without a kind: `@odata.type`, then the document's shape.
///
/// ```
/// use graph_chat_notifications::model::{decode, ChatOrMessage, ResourceKind};
/// let json = r#"{"id":"1616990032035","createdDateTime":"2021-03-29T03:53:52.035Z","body":{"content":"Hi"}}"#;
/// let decoded = decode(json, Some(ResourceKind::ChatMessage))?;
/// let stored = serde_json::to_vec(&decoded).unwrap();
/// let back: ChatOrMessage<'static> = serde_json::from_reader(stored.as_slice()).unwrap();
/// assert_eq!(back, decoded);
/// # Ok::<(), graph_chat_notifications::model::ModelError>(())
/// ```
impl<'de> Deserialize<'de> for ChatOrMessage<'_> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        decode(raw.get(), None)
            .map(IntoOwned::into_owned)
            .map_err(de::Error::custom)
    }
}

/// Reads one `T` from `json`, with errors that name the property and never quote a value.
pub(crate) fn read<'a, T: Deserialize<'a>>(json: &'a str) -> Result<T, ModelError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(ModelError::from_json)?;
    de.end()
        .map_err(|_| ModelError::new("", "trailing characters after the resource"))?;
    Ok(value)
}

/// Decodes a resource. `kind` comes from the notification (`resourceData`'s `@odata.type`, or
/// the `resource` path: see [`resource_kind`]); without it, the document's own `@odata.type` decides,
/// then its shape (`chatType`, `viewpoint`, `members` or a `19:` id make a chat).
pub fn decode(json: &str, kind: Option<ResourceKind>) -> Result<ChatOrMessage<'_>, ModelError> {
    let kind = match kind {
        Some(k) => k,
        None => {
            #[derive(Deserialize)]
            struct Peek<'a> {
                #[serde(rename = "@odata.type", borrow)]
                odata_type: Option<Text<'a>>,
                #[serde(borrow)]
                id: Option<&'a RawValue>,
                #[serde(rename = "chatType", borrow)]
                chat_type: Option<&'a RawValue>,
                #[serde(borrow)]
                viewpoint: Option<&'a RawValue>,
                #[serde(borrow)]
                members: Option<&'a RawValue>,
            }
            let peek: Peek<'_> = read(json)?;
            // Chat ids look like `19:...@thread.v2`; message ids are numbers.
            let chat_id = peek.id.is_some_and(|id| id.get().starts_with("\"19:"));
            let chat_shaped = peek.chat_type.is_some()
                || peek.viewpoint.is_some()
                || peek.members.is_some()
                || chat_id;
            peek.odata_type
                .as_deref()
                .and_then(ResourceKind::from_odata_type)
                .unwrap_or(if chat_shaped {
                    ResourceKind::Chat
                } else {
                    ResourceKind::ChatMessage
                })
        }
    };
    Ok(match kind {
        ResourceKind::Chat => ChatOrMessage::Chat(Box::new(read(json)?)),
        ResourceKind::ChatMessage => ChatOrMessage::ChatMessage(Box::new(read(json)?)),
    })
}

/// The kind of resource a notification carries, from its `resourceData`'s `@odata.type` or,
/// failing that, its `resource` path (`ChangeNotification::resource_kind` reads both from a
/// notification).
pub fn resource_kind(
    resource_data: Option<&RawValue>,
    resource: Option<&str>,
) -> Option<ResourceKind> {
    #[derive(Deserialize)]
    struct Data<'a> {
        #[serde(rename = "@odata.type", borrow)]
        odata_type: Option<Text<'a>>,
    }
    let from_data = resource_data
        .and_then(|r| serde_json::from_str::<Data<'_>>(r.get()).ok())
        .and_then(|d| {
            d.odata_type
                .as_deref()
                .and_then(ResourceKind::from_odata_type)
        });
    from_data.or_else(|| {
        resource
            .and_then(|r| ResourcePath::parse(r).ok())
            .map(|p| p.kind())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_quote_values() {
        let e = decode(
            r#"{"id": 5, "body": {"content": 7}}"#,
            Some(ResourceKind::ChatMessage),
        )
        .unwrap_err();
        assert_eq!(e.path(), "id");
        assert_eq!(e.reason(), "expected a string");
        let e = decode(
            r#"{"subject": "x", "importance": ["secret words"]}"#,
            Some(ResourceKind::ChatMessage),
        )
        .unwrap_err();
        assert_eq!(e.path(), "importance");
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = decode(
            r#"{"createdDateTime": "secret words"}"#,
            Some(ResourceKind::ChatMessage),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert_eq!(
            e.to_string(),
            "createdDateTime: expected an ISO 8601 date-time"
        );
    }
}
