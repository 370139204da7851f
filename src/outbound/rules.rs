//! Graph's rules that several requests share: ids in paths, object ids, and how Graph writes
//! a time.

use std::time::SystemTime;

use time::OffsetDateTime;

use super::error::RequestError;

/// ISO 8601 in UTC with seven fractional digits, as Graph writes it: `2019-09-19T11:00:00.0000000Z`.
pub fn format_time(t: SystemTime) -> Result<String, RequestError> {
    // `OffsetDateTime::from(SystemTime)` panics past year 9999: convert with a checked add.
    let t = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => time::Duration::try_from(after)
            .ok()
            .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_add(d)),
        Err(before) => time::Duration::try_from(before.duration())
            .ok()
            .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_sub(d)),
    }
    .ok_or(RequestError::TimeOutOfRange)?;
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
    );
    t.format(&format).map_err(|_| RequestError::TimeOutOfRange)
}

pub(super) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(super) fn check_path_id(what: &'static str, id: &str) -> Result<(), RequestError> {
    // `.` and `..` are dot segments, which URL parsers remove (`chats/../members` is `members`),
    // and a `%` would let the server decode a `/` or a `..` out of the id.
    let bad = id.is_empty()
        || id == "."
        || id == ".."
        || id
            .chars()
            .any(|c| c.is_whitespace() || "/?#&%'\"\\".contains(c));
    if bad {
        return Err(RequestError::BadId {
            what,
            id: id.to_string(),
        });
    }
    Ok(())
}

/// Whether `url` names this machine: an absolute URL whose host is `localhost`, an address in
/// `127.0.0.0/8`, or `::1`. The one test of "on loopback" the workspace makes: for `http://`
/// notification URLs on a local Graph, a JWKS fetched over `http://` from this machine, and a
/// local Graph's links.
///
/// ```
/// use graph_chat_notifications::outbound::is_loopback_url;
/// assert!(is_loopback_url("http://127.0.0.2:8080/notifications"));
/// assert!(is_loopback_url("http://[::1]/keys"));
/// assert!(is_loopback_url("http://LOCALHOST:1/"));
/// assert!(!is_loopback_url("http://example.com/"));
/// assert!(!is_loopback_url("http://127.0.0.1.example.com/"));
/// assert!(!is_loopback_url("not a url"));
/// ```
pub fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|url| host_is_loopback(&url))
}

/// [`is_loopback_url`] for a URL already parsed.
pub(crate) fn host_is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_have_seven_fractional_digits() {
        let t = std::time::UNIX_EPOCH + Duration::new(1_568_890_800, 123_456_789);
        assert_eq!(format_time(t).unwrap(), "2019-09-19T11:00:00.1234567Z");
    }

    #[test]
    fn guids() {
        assert!(is_guid("9a6eb4d1-826b-48b1-9627-b50836c8fee9"));
        assert!(!is_guid("9a6eb4d1-826b-48b1-9627-b50836c8fee"));
        assert!(!is_guid(
            "9a6eb4d1-826b-48b1-9627-b50836c8fee9') or true or ('"
        ));
    }
}
