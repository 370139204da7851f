//! The two macros that declare the models: `string_enum!` for Graph's string enumerations and
//! `model!` for resources (every field a `Prop`, unknown properties kept, `Debug` without
//! content).

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

/// Declares a model struct: every field a [`Prop`](crate::model::Prop), unknown properties kept
/// in `other`, and its [`IntoOwned`](crate::model::IntoOwned) conversion.
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
