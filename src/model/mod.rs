//! Typed `chat` and `chatMessage` resources: borrowed from the decrypted buffer, lossless, and
//! strict where it matters.
//!
//! * **Borrowed**: strings borrow from the JSON they were read from unless an escape forces a
//!   copy; [`IntoOwned::into_owned`] makes a `'static` copy for queues and caches.
//! * **Lossless**: every property is a [`Prop`], which tells an absent property (in a
//!   user-specific chat notification, "unchanged") from `null` and from a value; properties this
//!   version does not model are kept in `other`; enum values it does not know are kept as
//!   `Other`. Serializing a model gives back the JSON it was read from (as a JSON value: key order
//!   may differ).
//! * **Strict**: a property of the wrong JSON type, or a time that is not a time, fails with a
//!   [`ModelError`] naming the property's path (`from.user.displayName`).
//!
//! ```
//! use graph_chat_notifications::model::{decode, ChatOrMessage, ResourceKind};
//! let json = r#"{"id":"1616990032035","messageType":"message","createdDateTime":"2021-03-29T03:53:52.035Z",
//!   "lastEditedDateTime":null,"body":{"contentType":"html","content":"<p>Hi</p>"},"newProperty":[1]}"#;
//! let ChatOrMessage::ChatMessage(m) = decode(json, Some(ResourceKind::ChatMessage))? else { unreachable!() };
//! assert_eq!(m.id.as_deref(), Some("1616990032035"));
//! assert!(m.last_edited_date_time.is_null());      // null, not absent
//! assert!(m.deleted_date_time.is_absent());        // absent, not null
//! let back: serde_json::Value = serde_json::to_value(&m).unwrap();
//! assert_eq!(back, serde_json::from_str::<serde_json::Value>(json).unwrap());
//!
//! let err = decode(r#"{"id":"1","createdDateTime":"yesterday"}"#, Some(ResourceKind::ChatMessage)).unwrap_err();
//! assert_eq!(err.path(), "createdDateTime");
//! # Ok::<(), graph_chat_notifications::model::ModelError>(())
//! ```

mod chat;
mod message;
mod path;
mod timeline;

pub use chat::{
    Chat, ChatType, ChatViewpoint, ConversationMember, LastMessagePreview, OnlineMeetingInfo,
};
pub use message::{
    Attachment, BodyType, ChannelIdentity, ChatMessage, DlpAction, EventDetail, EventFields,
    Identity, IdentitySet, Importance, ItemBody, Mention, MessageHistoryItem, MessageType,
    PolicyTip, PolicyViolation, Reaction, RedactedText,
};
pub use path::{ResourcePath, ResourcePathError};
pub use timeline::{
    chat_is_visible, metered_cost_usd, ChatTimeline, MessageVersion, TimelineEntry,
    METERED_PRICE_MICRO_USD,
};

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

mod change;
pub use change::{ChangeType, LifecycleEvent};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

/// Converts a borrowed model into one that owns its data (`'static`).
pub trait IntoOwned {
    /// The owned type.
    type Owned;
    /// Copies whatever is borrowed.
    fn into_owned(self) -> Self::Owned;
}

macro_rules! owned_as_is {
    ($($t:ty),*) => {
        $(impl IntoOwned for $t {
            type Owned = $t;
            fn into_owned(self) -> $t {
                self
            }
        })*
    };
}
owned_as_is!(bool, i64, u64, f64, serde_json::Map<String, serde_json::Value>, serde_json::Value);

impl<T: IntoOwned> IntoOwned for Vec<T> {
    type Owned = Vec<T::Owned>;
    fn into_owned(self) -> Self::Owned {
        self.into_iter().map(IntoOwned::into_owned).collect()
    }
}

impl<T: IntoOwned> IntoOwned for Box<T> {
    type Owned = Box<T::Owned>;
    fn into_owned(self) -> Self::Owned {
        Box::new((*self).into_owned())
    }
}

/// A string, borrowed from the JSON it was read from unless it held escapes.
///
/// ```
/// use graph_chat_notifications::model::Text;
/// let t = Text::from("hello");
/// assert!(t.is_borrowed());
/// assert_eq!(t.as_str(), "hello");
/// let owned: String = t.into_cow().into_owned();
/// # assert_eq!(owned, "hello");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Text<'a>(Cow<'a, str>);

impl<'a> Text<'a> {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the string borrows from the JSON it was read from (false when escapes had to
    /// be decoded, or after [`IntoOwned::into_owned`]).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }

    /// The string, borrowed or owned as it is.
    pub fn into_cow(self) -> Cow<'a, str> {
        self.0
    }
}

impl<'a> From<Cow<'a, str>> for Text<'a> {
    fn from(s: Cow<'a, str>) -> Self {
        Text(s)
    }
}

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text(Cow::Borrowed(s))
    }
}

impl From<String> for Text<'static> {
    fn from(s: String) -> Self {
        Text(Cow::Owned(s))
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl IntoOwned for Text<'_> {
    type Owned = Text<'static>;
    fn into_owned(self) -> Text<'static> {
        Text(Cow::Owned(self.0.into_owned()))
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A property of a Graph resource: absent, `null`, or a value. The three are different things:
/// in a user-specific chat notification an absent property means "unchanged", and a message
/// whose `deletedDateTime` is `null` is one that is not deleted.
#[derive(Clone, PartialEq, Default)]
pub enum Prop<T> {
    /// Not in the JSON.
    #[default]
    Absent,
    /// `null` in the JSON.
    Null,
    /// A value.
    Value(T),
}

impl<T: fmt::Debug> fmt::Debug for Prop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("Absent"),
            Self::Null => f.write_str("Null"),
            Self::Value(v) => v.fmt(f),
        }
    }
}

impl<T> Prop<T> {
    /// Whether the property is not in the JSON.
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
    /// Whether the property is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
    /// The value, if there is one.
    pub fn get(&self) -> Option<&T> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }
    /// The value, if there is one, by value.
    pub fn into_option(self) -> Option<T> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<T: Deref> Prop<T> {
    /// The value, dereferenced (`Prop<Text>` to `Option<&str>`).
    pub fn as_deref(&self) -> Option<&T::Target> {
        self.get().map(Deref::deref)
    }
}

impl<T: IntoOwned> IntoOwned for Prop<T> {
    type Owned = Prop<T::Owned>;
    fn into_owned(self) -> Prop<T::Owned> {
        match self {
            Self::Absent => Prop::Absent,
            Self::Null => Prop::Null,
            Self::Value(v) => Prop::Value(v.into_owned()),
        }
    }
}

impl<T: Serialize> Serialize for Prop<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Value(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Prop<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Self::Null,
            Some(v) => Self::Value(v),
        })
    }
}

/// A JSON subtree the models do not interpret (navigation arrays such as `messages` or
/// `installedApps`), kept as it was sent.
#[derive(Clone)]
pub enum Json<'a> {
    /// Borrowed from the input.
    Borrowed(&'a RawValue),
    /// Owned.
    Owned(Box<RawValue>),
}

impl Json<'_> {
    /// The JSON text.
    pub fn get(&self) -> &str {
        match self {
            Self::Borrowed(r) => r.get(),
            Self::Owned(r) => r.get(),
        }
    }
}

impl PartialEq for Json<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Json({} bytes)", self.get().len())
    }
}

impl IntoOwned for Json<'_> {
    type Owned = Json<'static>;
    fn into_owned(self) -> Json<'static> {
        match self {
            Self::Borrowed(r) => Json::Owned(r.to_owned()),
            Self::Owned(r) => Json::Owned(r),
        }
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Borrowed(r) => r.serialize(s),
            Self::Owned(r) => r.serialize(s),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(Json::Borrowed)
    }
}

/// A Graph timestamp: kept as sent (for lossless output) and parsed. Accepts 0 to 9 fractional
/// digits, `Z` or an offset (`+05:30`), no offset (read as UTC), and year 1.
#[derive(Clone)]
pub struct DateTime<'a> {
    raw: Text<'a>,
    at: OffsetDateTime,
}

impl DateTime<'_> {
    /// The time.
    pub fn at(&self) -> OffsetDateTime {
        self.at
    }
    /// The text as sent.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl PartialEq for DateTime<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl fmt::Debug for DateTime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.raw, f)
    }
}

impl IntoOwned for DateTime<'_> {
    type Owned = DateTime<'static>;
    fn into_owned(self) -> DateTime<'static> {
        DateTime {
            raw: self.raw.into_owned(),
            at: self.at,
        }
    }
}

/// Parses a Graph timestamp.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    // Lower-case `t`/`z` and a missing offset occur in the wild; read the latter as UTC.
    let upper = s.to_ascii_uppercase();
    if let Ok(t) = OffsetDateTime::parse(&upper, &Rfc3339) {
        return Some(t);
    }
    let has_offset = upper.ends_with('Z')
        || upper
            .get(upper.len().saturating_sub(6)..)
            .is_some_and(|t| t.starts_with(['+', '-']) && t.as_bytes().get(3) == Some(&b':'));
    if has_offset {
        return None;
    }
    OffsetDateTime::parse(&format!("{upper}Z"), &Rfc3339).ok()
}

impl Serialize for DateTime<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for DateTime<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Text::deserialize(d)?;
        let at =
            parse_time(&raw).ok_or_else(|| de::Error::custom("expected an ISO 8601 date-time"))?;
        Ok(DateTime { raw, at })
    }
}

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

/// Declares the members of one of Graph's string enumerations and their spellings.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        ///
        /// Models hold it as an [`EnumValue`](crate::model::EnumValue), which keeps the text as
        /// sent and tells values this version does not know.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vm])* $variant,)*
        }

        impl $crate::model::GraphEnum for $name {
            const MEMBERS: &'static [(Self, &'static str)] = &[$((Self::$variant, $text),)*];
        }
    };
}
pub(crate) use string_enum;

/// Declares a model struct: every field a [`Prop`], unknown properties kept in `other`, and its
/// [`IntoOwned`] conversion.
macro_rules! model {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        ///
        /// `Debug` shows ids, kinds, times and sizes, never content: names, subjects, message
        /// text and unknown properties' values stay out of logs.
        #[derive(Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
        #[non_exhaustive]
        pub struct $name<'a> {
            $(
                $(#[$fm])*
                #[serde(default, skip_serializing_if = "crate::model::Prop::is_absent")]
                pub $field: crate::model::Prop<$ty>,
            )*
            /// Properties this version of the crate does not model, kept as sent.
            #[serde(flatten, deserialize_with = "crate::model::unique::members")]
            pub other: serde_json::Map<String, serde_json::Value>,
            #[serde(skip)]
            _borrow: std::marker::PhantomData<&'a ()>,
        }

        impl std::fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut d = f.debug_struct(stringify!($name));
                $(
                    if !self.$field.is_absent() {
                        d.field(
                            stringify!($field),
                            &$crate::model::redact::Field(stringify!($field), &self.$field),
                        );
                    }
                )*
                if !self.other.is_empty() {
                    d.field("other", &$crate::model::redact::UnknownKeys(&self.other));
                }
                d.finish_non_exhaustive()
            }
        }

        impl $crate::model::redact::RedactDebug for $name<'_> {
            fn fmt_redacted(&self, _: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self, f)
            }
        }

        impl $crate::model::IntoOwned for $name<'_> {
            type Owned = $name<'static>;
            fn into_owned(self) -> $name<'static> {
                $name {
                    $($field: $crate::model::IntoOwned::into_owned(self.$field),)*
                    other: self.other,
                    _borrow: std::marker::PhantomData,
                }
            }
        }
    };
}
pub(crate) use model;

/// `Debug` for models without their content.
pub(crate) mod redact {
    use std::fmt;

    use super::{DateTime, EnumValue, Json, Prop, RedactedText, Text};

    /// Whether a property by this (snake case) name holds an identifier or a kind, which
    /// `Debug` may show, rather than content.
    fn shows(name: &str) -> bool {
        name == "id"
            || name.ends_with("_id")
            || matches!(
                name,
                "odata_type" | "etag" | "user_identity_type" | "locale"
            )
    }

    /// How a property's value prints in a model's `Debug`, given the property's name.
    pub(crate) trait RedactDebug {
        fn fmt_redacted(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    }

    /// A property's value with its name, printed by [`RedactDebug`].
    pub(crate) struct Field<'a, T: ?Sized>(pub(crate) &'static str, pub(crate) &'a T);

    impl<T: RedactDebug + ?Sized> fmt::Debug for Field<'_, T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.1.fmt_redacted(self.0, f)
        }
    }

    /// Unknown properties: their names and how many, never their values.
    pub(crate) struct UnknownKeys<'a>(pub(crate) &'a serde_json::Map<String, serde_json::Value>);

    impl fmt::Debug for UnknownKeys<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_set().entries(self.0.keys()).finish()
        }
    }

    impl RedactDebug for Text<'_> {
        fn fmt_redacted(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if shows(name) {
                fmt::Debug::fmt(&**self, f)
            } else {
                write!(f, "[{} bytes]", self.len())
            }
        }
    }

    impl<T: RedactDebug> RedactDebug for Prop<T> {
        fn fmt_redacted(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::Absent => f.write_str("Absent"),
                Self::Null => f.write_str("Null"),
                Self::Value(v) => v.fmt_redacted(name, f),
            }
        }
    }

    impl<T: RedactDebug> RedactDebug for Vec<T> {
        fn fmt_redacted(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            struct Item<'a, T>(&'a str, &'a T);
            impl<T: RedactDebug> fmt::Debug for Item<'_, T> {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    self.1.fmt_redacted(self.0, f)
                }
            }
            f.debug_list()
                .entries(self.iter().map(|v| Item(name, v)))
                .finish()
        }
    }

    impl<T: RedactDebug> RedactDebug for Box<T> {
        fn fmt_redacted(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            (**self).fmt_redacted(name, f)
        }
    }

    /// Types whose own `Debug` already shows no content: times, kinds, sizes, flags.
    macro_rules! as_debug {
        ($($t:ty),*) => {$(
            impl RedactDebug for $t {
                fn fmt_redacted(&self, _: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    fmt::Debug::fmt(self, f)
                }
            }
        )*};
    }
    as_debug!(bool, i64, DateTime<'_>, Json<'_>, RedactedText<'_>);

    impl<E> RedactDebug for EnumValue<'_, E> {
        fn fmt_redacted(&self, _: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Debug::fmt(self, f)
        }
    }
}

/// Duplicated members refused everywhere in a model, as serde's derive refuses a duplicated
/// known property: in the properties a model does not know (which serde would collect into
/// `other` keeping the last) and in the JSON values they hold.
pub(crate) mod unique {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Number, Value};

    /// One step of the path from a model's unknown properties down to a value.
    enum Step<'a> {
        Key(&'a str),
        Index(usize),
    }

    /// Where a value is, as a list of steps on the stack: built into a string only for an error.
    struct At<'a> {
        parent: Option<&'a At<'a>>,
        step: Step<'a>,
    }

    /// The longest member name an error repeats, in characters.
    const MAX_NAME: usize = 64;

    impl At<'_> {
        fn path(&self) -> String {
            let mut steps = Vec::new();
            let mut at = Some(self);
            while let Some(a) = at {
                steps.push(&a.step);
                at = a.parent;
            }
            let mut out = String::new();
            for step in steps.into_iter().rev() {
                match step {
                    Step::Key(k) => {
                        if !out.is_empty() {
                            out.push('.');
                        }
                        out.extend(k.chars().take(MAX_NAME));
                    }
                    Step::Index(i) => out.push_str(&format!("[{i}]")),
                }
            }
            out
        }
    }

    /// The message [`ModelError`](super::ModelError) reads back: the duplicated member's path,
    /// relative to the object that holds the model's unknown properties.
    pub(super) const DUPLICATE: &str = "duplicate member `";

    fn duplicate<E: de::Error>(at: &At<'_>) -> E {
        E::custom(format_args!("{DUPLICATE}{}`", at.path()))
    }

    /// A model's unknown properties: like `serde_json::Map`'s own deserialization, but a name
    /// that appears twice, there or in any object they hold, is an error naming it.
    pub(crate) fn members<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
        d.deserialize_map(ValueSeed { at: None }).map(|v| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        })
    }

    /// A JSON value at `at` (`None`: the unknown properties themselves).
    #[derive(Clone, Copy)]
    struct ValueSeed<'a> {
        at: Option<&'a At<'a>>,
    }

    impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for ValueSeed<'_> {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::Number(v.into()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::Number(v.into()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            // As serde_json's own `Value` does: JSON has no NaN or infinity to read.
            Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            loop {
                let at = At {
                    parent: self.at,
                    step: Step::Index(out.len()),
                };
                match seq.next_element_seed(ValueSeed { at: Some(&at) })? {
                    Some(v) => out.push(v),
                    None => return Ok(Value::Array(out)),
                }
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let at = At {
                    parent: self.at,
                    step: Step::Key(&key),
                };
                if out.contains_key(&key) {
                    return Err(duplicate(&at));
                }
                let value = map.next_value_seed(ValueSeed { at: Some(&at) })?;
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }
    }
}

/// Why a resource could not be read as its model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", if path.is_empty() { "the resource" } else { path.as_str() })]
pub struct ModelError {
    path: String,
    reason: String,
}

impl ModelError {
    /// An error at `path` for `reason`.
    pub(crate) fn new(path: &str, reason: &str) -> Self {
        Self {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The JSON path of the property that failed (`from.user.displayName`,
    /// `mentions[0].mentioned`); empty for the resource as a whole.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What was wrong, without the offending value.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    fn from_json(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        // `?` stands for a member whose name could not be read (a lone surrogate in it): the
        // error is then the containing object's.
        let path = path.strip_suffix('?').unwrap_or(&path);
        let path = path.strip_suffix('.').unwrap_or(path);
        let path = if path == "." {
            String::new()
        } else {
            path.to_string()
        };
        let inner = e.into_inner();
        let message = inner.to_string();
        // A duplicated member, named by serde's derive (a known property: "duplicate field
        // `body`") or by `unique` (an unknown one, or inside one: "duplicate member `x.y`"):
        // the error is at the member, under the object serde_path_to_error points at.
        let duplicated = message
            .strip_prefix("duplicate field `")
            .or_else(|| message.strip_prefix(unique::DUPLICATE))
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name);
        // An error from a value decoded on its own (`eventDetail`), at a path inside it.
        if let Some((inner, reason)) = message
            .strip_prefix(NESTED)
            .and_then(|rest| rest.split_once('`'))
        {
            let reason = reason.split(" at line ").next().unwrap_or(reason);
            return Self {
                path: match (path.is_empty(), inner.is_empty()) {
                    (_, true) => path,
                    (true, false) => inner.to_string(),
                    (false, false) => format!("{path}.{inner}"),
                },
                reason: reason.to_string(),
            };
        }
        if let Some(name) = duplicated {
            let name: String = name.chars().take(256).collect();
            return Self {
                path: if path.is_empty() {
                    name
                } else {
                    format!("{path}.{name}")
                },
                reason: "appears more than once".into(),
            };
        }
        // serde's messages may quote the offending value (plaintext); keep only what was expected.
        let reason = match message.split_once(", expected ") {
            Some((_, expected)) => {
                let expected = expected.split(" at line ").next().unwrap_or(expected);
                format!("expected {expected}")
            }
            None if message.starts_with("expected an ISO 8601") => {
                "expected an ISO 8601 date-time".into()
            }
            // serde_json's words for a `\uD800`-`\uDFFF` escape without its other half. As a
            // syntax error it would read "not valid JSON", which hides what is wrong.
            None if message.starts_with("lone leading surrogate in hex escape")
                || message.starts_with("unexpected end of hex escape") =>
            {
                "a \\u escape is a lone surrogate, not a character".into()
            }
            None => match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    "not valid JSON".into()
                }
                _ => message
                    .split(" at line ")
                    .next()
                    .filter(|m| !m.contains('"'))
                    .unwrap_or("invalid value")
                    .to_string(),
            },
        };
        Self { path, reason }
    }
}

/// The start of the message [`ModelError::nested`] writes, which [`ModelError::from_json`] reads.
const NESTED: &str = "model error at `";

impl ModelError {
    /// This error as a serde message for an enclosing decoder, which puts the path under its own.
    pub(crate) fn nested(&self) -> String {
        format!("{NESTED}{}`{}", self.path, self.reason)
    }
}

/// Which resource a JSON document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// `#microsoft.graph.chat`
    Chat,
    /// `#microsoft.graph.chatMessage`
    ChatMessage,
}

impl ResourceKind {
    /// From an `@odata.type` (any letter case, with or without `#`).
    pub fn from_odata_type(t: &str) -> Option<Self> {
        let t = t.trim_start_matches('#');
        if t.eq_ignore_ascii_case("microsoft.graph.chat") {
            Some(Self::Chat)
        } else if t.eq_ignore_ascii_case("microsoft.graph.chatMessage") {
            Some(Self::ChatMessage)
        } else {
            None
        }
    }
}

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

pub(crate) fn read<'a, T: Deserialize<'a>>(json: &'a str) -> Result<T, ModelError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(ModelError::from_json)?;
    de.end().map_err(|_| ModelError {
        path: String::new(),
        reason: "trailing characters after the resource".into(),
    })?;
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
    fn times_graph_sends() {
        for ok in [
            "2021-06-03T14:25:04+05:30",
            "2023-01-10T11:03:37.0068432-08:00",
            "0001-01-01T00:00:00Z",
            "2021-03-29T03:53:52.035Z",
            "2021-03-29T03:53:52Z",
            "2021-03-29T03:53:52.1234567",
            "2021-03-29t03:53:52z",
        ] {
            assert!(parse_time(ok).is_some(), "{ok}");
        }
        for bad in [
            "yesterday",
            "2021-13-01T00:00:00Z",
            "2021-03-29",
            "2021-03-29T03:53:52+25:00",
            "",
        ] {
            assert!(parse_time(bad).is_none(), "{bad}");
        }
        let a = parse_time("2021-06-03T14:25:04+05:30").unwrap();
        let b = parse_time("2021-06-03T08:55:04Z").unwrap();
        assert_eq!(a, b);
    }

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
