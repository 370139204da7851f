//! `Debug` for models without their content.

use std::fmt;

use super::datetime::DateTime;
use super::enums::EnumValue;
use super::value::{Json, Prop, Text};

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
as_debug!(bool, i64, DateTime<'_>, Json<'_>);

impl<E> RedactDebug for EnumValue<'_, E> {
    fn fmt_redacted(&self, _: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
