//! Small borrowed-JSON helpers shared by the envelope parser and the decrypt core.
//!
//! Objects are read as a list of `(key, raw value)` pairs so that each field can be type-checked
//! on its own and reported by name, keys can be matched regardless of letter case (Graph sends
//! both `encryptedContent` and `EncryptedContent`), and values are never copied unless a JSON
//! escape forces it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A string that borrows from the input when it has no escapes.
pub(crate) struct BorrowedStr<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for BorrowedStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BorrowedStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of a JSON object, in order, duplicates kept.
pub(crate) struct Members<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8).min(32));
                while let Some(BorrowedStr(k)) = map.next_key::<BorrowedStr<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The JSON type of a raw value, judged from its first byte (raw values are already validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

pub(crate) fn kind(raw: &RawValue) -> Kind {
    match raw.get().as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        _ => Kind::Number,
    }
}

/// The members of `raw` if it is an object.
pub(crate) fn members(raw: &RawValue) -> Option<Members<'_>> {
    if kind(raw) != Kind::Object {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// The string value of `raw` if it is a string; borrowed unless it holds escapes.
pub(crate) fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if kind(raw) != Kind::String {
        return None;
    }
    let inner = &text[1..text.len() - 1];
    if !inner.contains('\\') {
        // A validated JSON string without escapes is its own value.
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// Whether arrays and objects in `bytes` nest deeper than `limit`. Strings are skipped, so
/// brackets inside them do not count. Runs before the parser so that a hostile body is refused
/// in one linear pass, with a typed error, whatever the parser's own recursion limit.
pub(crate) fn nests_deeper_than(bytes: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// `text` (valid JSON) without the white space between tokens, so it fits on one line.
/// Borrowed when there is none to remove; strings are copied as they are, escapes included.
pub fn compact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let mut out: Option<String> = None;
    let mut copied_to = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b' ' | b'\t' | b'\n' | b'\r' => {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                o.push_str(&text[copied_to..i]);
                copied_to = i + 1;
            }
            _ => {}
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied_to..]);
            Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        assert!(matches!(
            string(raw(r#""abc""#)),
            Some(Cow::Borrowed("abc"))
        ));
        let s = string(raw(r#""a\/b\u00e9""#)).unwrap();
        assert!(matches!(s, Cow::Owned(_)));
        assert_eq!(s, "a/bé");
        assert!(string(raw("12")).is_none());
        assert!(string(raw("null")).is_none());
    }

    #[test]
    fn members_keep_order_and_duplicates() {
        let m = members(raw(r#"{"a":1,"b":"x","a":[2]}"#)).unwrap().0;
        let keys: Vec<_> = m.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["a", "b", "a"]);
        assert_eq!(m[2].1.get(), "[2]");
        assert!(members(raw("[1]")).is_none());
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert!(!nests_deeper_than(br#"{"a":"[[[[[[[[[["}"#, 2));
        assert!(nests_deeper_than(br#"{"a":[[1]]}"#, 2));
        assert!(!nests_deeper_than(br#"{"a":[1],"b":[2]}"#, 2));
        assert!(!nests_deeper_than(br#"{"a":"\"[[[["}"#, 1));
    }

    #[test]
    fn compact_removes_only_insignificant_space() {
        assert_eq!(compact("{\n  \"a b\": [1, 2]\r\n}"), r#"{"a b":[1,2]}"#);
        assert_eq!(compact(r#"{"q":"\" x "}"#), r#"{"q":"\" x "}"#);
        assert!(matches!(compact(r#"{"a":1}"#), Cow::Borrowed(_)));
    }
}
