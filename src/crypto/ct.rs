//! Comparisons whose time does not depend on the secret compared.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeLess};
use zeroize::Zeroizing;

/// The longest `clientState` in bytes: Graph takes up to 128 characters, and a character is at
/// most 4 bytes of UTF-8. Every comparison covers this many bytes, whatever the lengths.
const MAX_CLIENT_STATE_BYTES: usize = 128 * 4;

/// Whether `sent` (a notification's `clientState`) equals one of the `expected` values, in a time
/// that depends neither on which one matched nor on their lengths or contents: every expected
/// value is compared, each over [`MAX_CLIENT_STATE_BYTES`] positions, its length folded into the
/// result instead of tested first. (`ct_eq` on two slices returns at once when their lengths
/// differ, which tells a sender the length of the secret.) A value longer than
/// `MAX_CLIENT_STATE_BYTES` matches nothing.
///
/// The time does depend on how many values are expected, which is configuration, not a secret.
pub(crate) fn client_state_matches(expected: &[Zeroizing<String>], sent: &[u8]) -> bool {
    let sent_fits = (sent.len() as u64).ct_lt(&(MAX_CLIENT_STATE_BYTES as u64 + 1));
    let mut matched = Choice::from(0);
    for value in expected {
        let value = value.as_bytes();
        let mut equal = (value.len() as u64).ct_eq(&(sent.len() as u64)) & sent_fits;
        for i in 0..MAX_CLIENT_STATE_BYTES {
            equal &= byte_at(value, i).ct_eq(&byte_at(sent, i));
        }
        matched |= equal;
    }
    bool::from(matched)
}

/// `bytes[i]`, or 0 past the end, read without a branch on `bytes.len()`: past the end it still
/// reads a byte (the last) and discards it, so every position costs the same.
fn byte_at(bytes: &[u8], i: usize) -> u8 {
    let len = bytes.len() as u64;
    let inside = (i as u64).ct_lt(&len);
    // `len - 1` wraps for an empty slice; `get` then finds nothing and `inside` is false anyway.
    let at = u64::conditional_select(&len.wrapping_sub(1), &(i as u64), inside);
    let byte = usize::try_from(at)
        .ok()
        .and_then(|at| bytes.get(at))
        .copied()
        .unwrap_or(0);
    u8::conditional_select(&0, &byte, inside)
}

#[cfg(test)]
mod tests {
    use super::{byte_at, client_state_matches, MAX_CLIENT_STATE_BYTES};
    use zeroize::Zeroizing;

    fn states(values: &[&str]) -> Vec<Zeroizing<String>> {
        values
            .iter()
            .map(|v| Zeroizing::new(v.to_string()))
            .collect()
    }

    #[test]
    fn matches_exactly_one_of_the_expected_values() {
        let expected = states(&["old-secret", "new-secret-longer"]);
        assert!(client_state_matches(&expected, b"old-secret"));
        assert!(client_state_matches(&expected, b"new-secret-longer"));
        for wrong in [
            &b""[..],
            b"old-secre",
            b"old-secretx",
            b"old-secret\0",
            b"Old-secret",
            b"new-secret",
            b"new-secret-longe",
            b"xold-secret",
        ] {
            assert!(!client_state_matches(&expected, wrong), "{wrong:?}");
        }
        assert!(!client_state_matches(&[], b"old-secret"));
        assert!(!client_state_matches(&[], b""));
    }

    /// Padding with zeros must not make a shorter value equal a longer one that ends in zeros.
    #[test]
    fn trailing_zeros_do_not_match() {
        let expected = states(&["abc"]);
        assert!(!client_state_matches(&expected, b"abc\0"));
        assert!(!client_state_matches(&expected, b"abc\0\0\0"));
        let with_zero = states(&["abc\0"]);
        assert!(!client_state_matches(&with_zero, b"abc"));
        assert!(client_state_matches(&with_zero, b"abc\0"));
    }

    #[test]
    fn the_longest_values_compare_over_every_byte() {
        // 128 four-byte characters: Graph's longest clientState, 512 bytes.
        let longest = "\u{1F600}".repeat(128);
        assert_eq!(longest.len(), MAX_CLIENT_STATE_BYTES);
        let expected = states(&[&longest]);
        assert!(client_state_matches(&expected, longest.as_bytes()));
        let mut last_differs = longest.clone().into_bytes();
        *last_differs.last_mut().unwrap() ^= 1;
        assert!(!client_state_matches(&expected, &last_differs));
        // Longer than any clientState can be: matches nothing, even an equal expected value
        // (which the receiver's builder refuses anyway).
        let too_long = "a".repeat(MAX_CLIENT_STATE_BYTES + 1);
        assert!(!client_state_matches(
            &states(&[&too_long]),
            too_long.as_bytes()
        ));
        assert!(!client_state_matches(&expected, &vec![b'a'; 100_000]));
    }

    #[test]
    fn bytes_past_the_end_read_as_zero() {
        assert_eq!(byte_at(b"ab", 0), b'a');
        assert_eq!(byte_at(b"ab", 1), b'b');
        assert_eq!(byte_at(b"ab", 2), 0);
        assert_eq!(byte_at(b"ab", 511), 0);
        assert_eq!(byte_at(b"", 0), 0);
        assert_eq!(byte_at(b"", usize::MAX), 0);
    }
}
