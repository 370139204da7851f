//! Small borrowed-JSON helpers shared by the envelope parser and the decrypt core.
//!
//! Objects are read as a list of `(key, raw value)` pairs so that each field can be type-checked
//! on its own and reported by name, keys can be matched regardless of letter case (Graph sends
//! both `encryptedContent` and `EncryptedContent`), and values are never copied unless a JSON
//! escape forces it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// An object key: borrowed from the input unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Why a streaming walk over a JSON object or array stopped early.
pub(crate) enum Walk<E> {
    /// The text is not of the expected JSON shape (not an object, not an array, not JSON).
    Shape(serde_json::Error),
    /// The callback refused an entry.
    Stopped(E),
}

/// Calls `f` with each member of the JSON object `text`, in order, duplicates included, without
/// collecting them: memory stays constant however many members the object has. Values stay raw
/// (borrowed); keys borrow unless they hold escapes. `f` may stop the walk with an error.
pub(crate) fn for_each_member<'a, E>(
    text: &'a str,
    f: impl FnMut(Cow<'a, str>, &'a RawValue) -> Result<(), E>,
) -> Result<(), Walk<E>> {
    struct V<F, E> {
        f: F,
        stopped: Option<E>,
    }
    impl<'de, E, F: FnMut(Cow<'de, str>, &'de RawValue) -> Result<(), E>> Visitor<'de>
        for &mut V<F, E>
    {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                let v: &'de RawValue = map.next_value()?;
                if let Err(e) = (self.f)(k, v) {
                    self.stopped = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    let mut v = V { f, stopped: None };
    let mut de = serde_json::Deserializer::from_str(text);
    let walked = de.deserialize_map(&mut v).and_then(|()| de.end());
    walk_result(v.stopped, walked)
}

/// A walk's outcome: the callback's refusal first (the parser only saw "stopped"), then the
/// parser's own error.
fn walk_result<E>(
    stopped: Option<E>,
    walked: Result<(), serde_json::Error>,
) -> Result<(), Walk<E>> {
    match (stopped, walked) {
        (Some(e), _) => Err(Walk::Stopped(e)),
        (None, Err(e)) => Err(Walk::Shape(e)),
        (None, Ok(())) => Ok(()),
    }
}

/// Calls `f` with each element of the JSON array `text`, in order, without collecting them.
/// `f` may stop the walk with an error (for example past a count limit), and the rest of the
/// array is then not read.
pub(crate) fn for_each_element<'a, E>(
    text: &'a str,
    f: impl FnMut(&'a RawValue) -> Result<(), E>,
) -> Result<(), Walk<E>> {
    struct V<F, E> {
        f: F,
        stopped: Option<E>,
    }
    impl<'de, E, F: FnMut(&'de RawValue) -> Result<(), E>> Visitor<'de> for &mut V<F, E> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(v) = seq.next_element::<&'de RawValue>()? {
                if let Err(e) = (self.f)(v) {
                    self.stopped = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    let mut v = V { f, stopped: None };
    let mut de = serde_json::Deserializer::from_str(text);
    let walked = de.deserialize_seq(&mut v).and_then(|()| de.end());
    walk_result(v.stopped, walked)
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
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string in one search per escape, not a branch per byte: base64
                // strings make up most of a notification body.
                i += 1;
                loop {
                    let next = bytes
                        .get(i..)
                        .and_then(|rest| rest.iter().position(|&b| b == b'"' || b == b'\\'));
                    match next {
                        None => return false,
                        Some(at) if bytes[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
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
    fn members_stream_in_order_with_duplicates() {
        let mut seen = Vec::new();
        let walked = for_each_member(r#"{"a":1,"b":"x","a":[2]}"#, |k, v| {
            seen.push((k.into_owned(), v.get().to_string()));
            Ok::<(), ()>(())
        });
        assert!(walked.is_ok());
        let keys: Vec<_> = seen.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "a"]);
        assert_eq!(seen[2].1, "[2]");
        let not_object = for_each_member("[1]", |_, _| Ok::<(), ()>(()));
        assert!(matches!(not_object, Err(Walk::Shape(_))));
        let trailing = for_each_member("{} x", |_, _| Ok::<(), ()>(()));
        assert!(matches!(trailing, Err(Walk::Shape(_))));
        // A callback's refusal stops the walk: later members are not visited.
        let mut visited = 0;
        let stopped = for_each_member(r#"{"a":1,"b":2,"c":3}"#, |k, _| {
            visited += 1;
            if k == "b" {
                Err("b")
            } else {
                Ok(())
            }
        });
        assert!(matches!(stopped, Err(Walk::Stopped("b"))));
        assert_eq!(visited, 2);
    }

    #[test]
    fn elements_stream_and_stop_early() {
        let mut n = 0;
        let stopped = for_each_element("[1,2,3,oops", |_| {
            n += 1;
            if n > 2 {
                Err(n)
            } else {
                Ok(())
            }
        });
        assert!(matches!(stopped, Err(Walk::Stopped(3))));
        assert!(matches!(
            for_each_element("{}", |_| Ok::<(), ()>(())),
            Err(Walk::Shape(_))
        ));
        let mut all = Vec::new();
        assert!(for_each_element(r#"[1,"a",{"b":[]}]"#, |v| {
            all.push(v.get());
            Ok::<(), ()>(())
        })
        .is_ok());
        assert_eq!(all, ["1", r#""a""#, r#"{"b":[]}"#]);
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert!(!nests_deeper_than(br#"{"a":"[[[[[[[[[["}"#, 2));
        assert!(nests_deeper_than(br#"{"a":[[1]]}"#, 2));
        assert!(!nests_deeper_than(br#"{"a":[1],"b":[2]}"#, 2));
        assert!(!nests_deeper_than(br#"{"a":"\"[[[["}"#, 1));
        // Unterminated strings, an escape as the very last byte: no panic, no false alarm.
        for tail in [&b"\"\\"[..], b"\"abc\\", b"\"", b"[\"\\\\\\", b"\\"] {
            assert!(!nests_deeper_than(tail, 0) || tail.starts_with(b"["));
        }
    }

    #[test]
    fn compact_removes_only_insignificant_space() {
        assert_eq!(compact("{\n  \"a b\": [1, 2]\r\n}"), r#"{"a b":[1,2]}"#);
        assert_eq!(compact(r#"{"q":"\" x "}"#), r#"{"q":"\" x "}"#);
        assert!(matches!(compact(r#"{"a":1}"#), Cow::Borrowed(_)));
    }
}

/// The deepest nesting serde_json decodes into values (its recursion limit of 128 refuses the
/// 128th level), so that whatever [`validate`] accepts, the typed models can decode.
pub(crate) const MAX_VALIDATE_DEPTH: usize = 127;

/// Checks that `text` is one JSON value (RFC 8259) with optional surrounding white space,
/// nested at most [`MAX_VALIDATE_DEPTH`] deep, without allocating. On failure, the byte offset
/// where it stopped making sense.
pub(crate) fn validate(text: &str) -> Result<(), usize> {
    let b = text.as_bytes();
    let mut i = 0;
    // One bit per open container: 1 for an object, 0 for an array.
    let mut stack = [0u64; MAX_VALIDATE_DEPTH.div_ceil(64)];
    let mut depth = 0usize;
    let ws = |i: &mut usize| {
        while matches!(b.get(*i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            *i += 1;
        }
    };
    let in_object = |stack: &[u64; MAX_VALIDATE_DEPTH.div_ceil(64)], depth: usize| {
        depth > 0 && stack[(depth - 1) / 64] >> ((depth - 1) % 64) & 1 == 1
    };
    loop {
        // A value is expected here.
        ws(&mut i);
        match b.get(i) {
            Some(b'{' | b'[') => {
                let object = b[i] == b'{';
                if depth == MAX_VALIDATE_DEPTH {
                    return Err(i);
                }
                let (word, bit) = (depth / 64, depth % 64);
                stack[word] = (stack[word] & !(1 << bit)) | (u64::from(object) << bit);
                depth += 1;
                i += 1;
                ws(&mut i);
                if b.get(i) == Some(if object { &b'}' } else { &b']' }) {
                    depth -= 1;
                    i += 1;
                } else {
                    if object {
                        i = key(b, i)?;
                    }
                    continue;
                }
            }
            Some(b'"') => i = json_string(b, i)?,
            Some(b't') if b[i..].starts_with(b"true") => i += 4,
            Some(b'f') if b[i..].starts_with(b"false") => i += 5,
            Some(b'n') if b[i..].starts_with(b"null") => i += 4,
            Some(b'-' | b'0'..=b'9') => i = number(b, i)?,
            _ => return Err(i),
        }
        // After a value: a separator, a closer, or the end.
        loop {
            ws(&mut i);
            if depth == 0 {
                return if i == b.len() { Ok(()) } else { Err(i) };
            }
            let object = in_object(&stack, depth);
            match b.get(i) {
                Some(b',') => {
                    i += 1;
                    if object {
                        ws(&mut i);
                        i = key(b, i)?;
                    }
                    break;
                }
                Some(b'}') if object => {
                    depth -= 1;
                    i += 1;
                }
                Some(b']') if !object => {
                    depth -= 1;
                    i += 1;
                }
                _ => return Err(i),
            }
        }
    }
}

/// An object key and its colon, starting at `i`; returns where the value starts.
fn key(b: &[u8], i: usize) -> Result<usize, usize> {
    if b.get(i) != Some(&b'"') {
        return Err(i);
    }
    let mut i = json_string(b, i)?;
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    if b.get(i) != Some(&b':') {
        return Err(i);
    }
    Ok(i + 1)
}

/// A string starting at the quote at `i`; returns the index after its closing quote.
fn json_string(b: &[u8], mut i: usize) -> Result<usize, usize> {
    i += 1;
    loop {
        match b.get(i) {
            None => return Err(i),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match b.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => match unicode_escape(b, i) {
                    // A surrogate pair: one character.
                    Some(0xd800..=0xdbff) => match unicode_escape(b, i + 6) {
                        Some(0xdc00..=0xdfff) => i += 12,
                        // A leading surrogate alone is no character: serde_json refuses it in
                        // every string it decodes, so the validator does too.
                        _ => return Err(i),
                    },
                    Some(0xdc00..=0xdfff) | None => return Err(i),
                    Some(_) => i += 6,
                },
                _ => return Err(i),
            },
            Some(0..=0x1f) => return Err(i),
            Some(_) => i += 1,
        }
    }
}

/// The code unit of the `\\uXXXX` escape at `i`, if there is one.
fn unicode_escape(b: &[u8], i: usize) -> Option<u16> {
    if b.get(i..i + 2) != Some(b"\\u") {
        return None;
    }
    let hex = b.get(i + 2..i + 6)?;
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// A number starting at `i`; returns the index after it.
fn number(b: &[u8], mut i: usize) -> Result<usize, usize> {
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return Err(i),
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return Err(i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return Err(i);
        }
    }
    Ok(i)
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&c| c != b'\n').count() + 1;
    (line, column)
}

#[cfg(test)]
mod validate_tests {
    use super::*;

    /// serde_json's verdict when it decodes the document (`IgnoredAny` would skip strings
    /// without checking their escapes, and accept lone surrogates that every typed decoding
    /// refuses).
    fn serde_ok(s: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(s).is_ok()
    }

    #[test]
    fn agrees_with_serde_json() {
        let cases = [
            "{}",
            "[]",
            " {\"a\" : [1, -2.5e+10, true, false, null, \"x\\u00e9\\n\"]} ",
            "0",
            "-0",
            "1.0",
            "\"\"",
            "[[[[]]]]",
            "{\"a\":{\"b\":{}}}",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "1e+",
            "[1 2]",
            "{\"a\" 1}",
            "{1:2}",
            "\"\\x\"",
            "\"\\u12G4\"",
            "\"tab\there\"",
            "tru",
            "nul",
            "[",
            "]",
            "{",
            "}",
            "",
            " ",
            "[]]",
            "{}x",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\ud800\\ud800\"",
            "\"\\ud800\\n\"",
            "\"\\ud800x\"",
            "\"\\ud83d\\ude00\"",
            "\"\\uD83D\\uDE00\"",
            "\"\\udbff\\udfff\"",
            "\"\\ud83d\\ude00\\ud83d\"",
            "{\"\\ud800\":1}",
            "{\"a\":\"x\",\"\\udfff\":1}",
            "[\"\\ud800\\u",
            "\"\\uffff\\ue000\"",
            "[\"a\",{\"b\":[null]}]",
            "[-]",
            "{\"a\":}",
            "[,1]",
            "{,}",
            "\"unterminated",
            "1 2",
            "[1,[2,[3]],{}]",
            "{\"\":\"\"}",
            "1E5",
            "-1.5E-3",
            "[true false]",
            "nulll",
            "[nul]",
            "{\"a\":1 \"b\":2}",
        ];
        for c in cases {
            assert_eq!(validate(c).is_ok(), serde_ok(c), "{c:?}");
        }
        // The limit is serde_json's own when it builds values (skipping and raw values have
        // none): the deepest document one accepts, the other decodes too.
        for depth in [
            MAX_VALIDATE_DEPTH - 1,
            MAX_VALIDATE_DEPTH,
            MAX_VALIDATE_DEPTH + 1,
        ] {
            for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
                let inner = if open == "[" { "" } else { "1" };
                let doc = format!("{}{inner}{}", open.repeat(depth), close.repeat(depth));
                let ours = validate(&doc).is_ok();
                assert_eq!(ours, depth <= MAX_VALIDATE_DEPTH, "depth {depth}");
                assert_eq!(
                    ours,
                    serde_json::from_str::<serde_json::Value>(&doc).is_ok(),
                    "depth {depth}"
                );
            }
        }
        let mixed = format!("{}1{}", "[{\"a\":".repeat(60), "}]".repeat(60));
        assert!(validate(&mixed).is_ok() && serde_ok(&mixed));
    }

    proptest::proptest! {
        /// Equally correct: the validator accepts exactly what serde_json's own pass accepts
        /// within the nesting serde_json decodes (benches/json_validate.rs measures both).
        #[test]
        fn same_verdict_as_serde_json_with_the_depth_rule(
            parts in proptest::collection::vec(proptest::sample::select(&[
                "{", "}", "[", "]", ",", ":", "\"a\"", "\"\\u00e9\"", "\"\\x\"", "1", "-0.5e3",
                "01", "true", "nul", " ", "\"", "\\", "null", "1.", "\"\\ud800\"",
                "\\ud83d", "\\ude00", "\"\\ud83d\\ude00\"", "\\u0041",
            ][..]), 0..40),
            depth in 0usize..2,
        ) {
            let body: String = parts.concat();
            let text = if depth == 1 {
                format!("{}{body}{}", "[".repeat(MAX_VALIDATE_DEPTH - 1), "]".repeat(MAX_VALIDATE_DEPTH - 1))
            } else {
                body
            };
            let serde = serde_ok(&text) && !nests_deeper_than(text.as_bytes(), MAX_VALIDATE_DEPTH);
            proptest::prop_assert_eq!(validate(&text).is_ok(), serde, "{:?}", text);
        }
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("x", 0), (1, 1));
    }
}
