//! Graph's string enumerations: [`GraphEnum`] for the members a version of the crate knows,
//! [`EnumValue`] for a value as sent, known or not.

use std::fmt;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize, Serializer};

use super::value::{IntoOwned, Prop, Text};

/// One of Graph's string enumerations (`messageType`, `chatType`...): its documented members,
/// each with the spelling the Graph docs give it. Models hold values of these as
/// [`EnumValue`], which keeps the text as sent.
pub trait GraphEnum: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// Every member, with its spelling in the Graph docs.
    const MEMBERS: &'static [(Self, &'static str)];

    /// The member `text` names, in any letter case (`Message` and `message` alike); `None` for
    /// a value this version of the crate does not know.
    fn parse(text: &str) -> Option<Self> {
        Self::MEMBERS
            .iter()
            .find(|(_, spelling)| spelling.eq_ignore_ascii_case(text))
            .map(|(member, _)| *member)
    }

    /// The member's spelling in the Graph docs.
    fn as_str(self) -> &'static str {
        Self::MEMBERS
            .iter()
            .find(|(member, _)| *member == self)
            .map_or("", |(_, spelling)| spelling)
    }
}

/// A value of one of Graph's string enumerations, exactly as sent, and the member it names.
///
/// Graph adds values over time (`unknownFutureValue` says so), and its docs and payloads do not
/// always agree on letter case (`BlockAccess` in the docs, `blockAccess` in JSON). So the text
/// is kept as it came, and is what serializes: a model gives back the JSON it was read from.
/// [`known`](Self::known) is the typed view: the member, matched in any letter case, or `None`
/// for a value this version does not know.
///
/// ```
/// use graph_chat_notifications::model::{EnumValue, MessageType};
/// let v: EnumValue<MessageType> = serde_json::from_str(r#""SystemEventMessage""#).unwrap();
/// assert_eq!(v.known(), Some(MessageType::SystemEventMessage));
/// assert_eq!(v.as_str(), "SystemEventMessage");
/// assert_eq!(serde_json::to_string(&v).unwrap(), r#""SystemEventMessage""#);
///
/// let new: EnumValue<MessageType> = serde_json::from_str(r#""brandNewKind""#).unwrap();
/// assert_eq!(new.known(), None);
/// assert_eq!(new.as_str(), "brandNewKind");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EnumValue<'a, E> {
    text: Text<'a>,
    known: Option<E>,
}

impl<'a, E: GraphEnum> EnumValue<'a, E> {
    /// The value of `text`: the member it names, if any, with the text kept as given.
    pub fn new(text: impl Into<Text<'a>>) -> Self {
        let text = text.into();
        Self {
            known: E::parse(&text),
            text,
        }
    }

    /// The member this value names (in any letter case), or `None` for a value this version of
    /// the crate does not know.
    pub fn known(&self) -> Option<E> {
        self.known
    }

    /// Whether this value names `member`.
    pub fn is(&self, member: E) -> bool {
        self.known == Some(member)
    }

    /// The text as sent.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl<E: GraphEnum> From<E> for EnumValue<'static, E> {
    /// The member, spelled as the Graph docs spell it.
    fn from(member: E) -> Self {
        Self {
            text: Text::from(member.as_str()),
            known: Some(member),
        }
    }
}

impl<E: GraphEnum> PartialEq<E> for EnumValue<'_, E> {
    fn eq(&self, member: &E) -> bool {
        self.is(*member)
    }
}

impl<E> fmt::Debug for EnumValue<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl<E: GraphEnum> IntoOwned for EnumValue<'_, E> {
    type Owned = EnumValue<'static, E>;
    fn into_owned(self) -> EnumValue<'static, E> {
        EnumValue {
            text: self.text.into_owned(),
            known: self.known,
        }
    }
}

impl<E> Serialize for EnumValue<'_, E> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de: 'a, 'a, E: GraphEnum> Deserialize<'de> for EnumValue<'a, E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Text::deserialize(d).map(Self::new)
    }
}

impl<E: GraphEnum> Prop<EnumValue<'_, E>> {
    /// The member the property names, if it holds a value this version knows
    /// (`message.message_type.known() == Some(MessageType::Message)`).
    pub fn known(&self) -> Option<E> {
        self.get().and_then(EnumValue::known)
    }
}
