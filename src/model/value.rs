//! The values every model is made of: [`Text`] borrowed from the JSON, [`Prop`] (absent, `null`
//! or a value), untouched [`Json`] subtrees, and the [`IntoOwned`] conversion to `'static`.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

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
