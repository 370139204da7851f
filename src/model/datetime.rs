//! Graph's timestamps: [`DateTime`] keeps the text as sent and the time it names.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;

use super::value::{IntoOwned, Text};

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
}
