//! The decrypt-and-verify core: Graph's scheme for `encryptedContent`, in the order that keeps
//! forged input away from the expensive and sensitive steps.
//!
//! 1. Checks that need no secret: certificate id known, thumbprint matches, base64 well formed,
//!    lengths right, size within the limit. These errors name the field.
//! 2. RSA-OAEP (SHA-1) unwrap of `dataKey` to exactly 32 bytes.
//! 3. HMAC-SHA256 of the ciphertext under that key, compared in constant time with
//!    `dataSignature`, **before** any AES.
//! 4. AES-256-CBC with IV = the key's first 16 bytes, PKCS#7 padding removed.
//!
//! Steps 2 to 4 fail with one opaque [`ItemErrorKind::Decrypt`]. The plaintext must then be
//! UTF-8 JSON.

use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::KeyStore;
use crate::error::ItemErrorKind;

/// One notification's `encryptedContent`, as the decrypt core reads it: borrowed text, still
/// base64 as sent. The inbound parsers make one from what they parsed, whatever the channel.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Sealed<'a> {
    /// `data`: base64 of the AES-256-CBC ciphertext.
    pub data: &'a str,
    /// `dataKey`: base64 of the RSA-OAEP-wrapped symmetric key.
    pub data_key: &'a str,
    /// `dataSignature`: base64 of HMAC-SHA256 over the ciphertext.
    pub data_signature: &'a str,
    /// `encryptionCertificateId`.
    pub certificate_id: &'a str,
    /// `encryptionCertificateThumbprint`, if sent.
    pub certificate_thumbprint: Option<&'a str>,
}

impl std::fmt::Debug for Sealed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("data_len", &self.data.len())
            .field("certificate_id", &self.certificate_id)
            .finish_non_exhaustive()
    }
}

/// Standard alphabet; padding optional; non-canonical trailing bits accepted (the HMAC, not the
/// encoding, protects the bytes).
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Reusable buffers for decrypting notifications: keep one per thread and pass it to every call.
/// The crate's own buffers (decoded key, signature and ciphertext, and the plaintext, decrypted in
/// place) stop growing once they fit the largest notification seen; the RSA backend may still
/// allocate inside its own arithmetic.
///
/// The plaintext buffer is zeroized before reuse and on drop. `Debug` shows capacities only.
#[derive(Default)]
pub struct DecryptBuffer {
    wrapped_key: Vec<u8>,
    signature: Vec<u8>,
    data: Zeroizing<Vec<u8>>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for DecryptBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptBuffer")
            .field("data_capacity", &self.data.capacity())
            .finish_non_exhaustive()
    }
}

impl DecryptBuffer {
    /// Empty buffers; they grow on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

type Failure = (&'static str, ItemErrorKind);

const F_ID: &str = "encryptedContent.encryptionCertificateId";
const F_THUMB: &str = "encryptedContent.encryptionCertificateThumbprint";
const F_KEY: &str = "encryptedContent.dataKey";
const F_SIG: &str = "encryptedContent.dataSignature";
const F_DATA: &str = "encryptedContent.data";
const F_CONTENT: &str = "encryptedContent";

/// Decodes base64 `text` into `out` (cleared first). ASCII white space, which some encoders wrap
/// lines with, is skipped.
fn decode(
    text: &str,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    field: &'static str,
) -> Result<(), Failure> {
    out.clear();
    let input = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        scratch.clear();
        scratch.extend(text.bytes().filter(|b| !b.is_ascii_whitespace()));
        scratch.as_slice()
    } else {
        text.as_bytes()
    };
    B64.decode_vec(input, out)
        .map_err(|_| (field, ItemErrorKind::NotBase64))
}

/// How many bytes base64 `text` decodes to, if it is valid: counted without decoding or
/// allocating (white space and padding do not count), so that an oversized field is refused
/// before it can grow a thread's reusable buffers.
fn decoded_len(text: &str) -> usize {
    let symbols = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .count();
    symbols / 4 * 3 + (symbols % 4 * 3) / 4
}

/// Decodes a field whose decoded length is known in advance, refusing a longer one before
/// decoding it.
fn decode_exact(
    text: &str,
    expected: usize,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    field: &'static str,
) -> Result<(), Failure> {
    let actual = decoded_len(text);
    if actual > expected {
        return Err((field, ItemErrorKind::WrongLength { expected, actual }));
    }
    decode(text, out, scratch, field)?;
    if out.len() != expected {
        return Err((
            field,
            ItemErrorKind::WrongLength {
                expected,
                actual: out.len(),
            },
        ));
    }
    Ok(())
}

/// Whether `hex` (either case) spells `bytes`, without allocating.
fn hex_matches(hex: &str, bytes: &[u8]) -> bool {
    let digit = |c: u8| (c as char).to_digit(16);
    hex.len() == bytes.len() * 2
        && hex.as_bytes().chunks(2).zip(bytes).all(|(pair, &b)| {
            matches!((digit(pair[0]), digit(pair[1])), (Some(h), Some(l)) if h * 16 + l == u32::from(b))
        })
}

/// Decrypts and verifies one notification's `encryptedContent`; returns the resource JSON, which
/// borrows from `buf`.
pub(crate) fn decrypt<'b>(
    keys: &KeyStore,
    content: &Sealed<'_>,
    max_item_bytes: usize,
    buf: &'b mut DecryptBuffer,
) -> Result<&'b str, Failure> {
    let entry = keys
        .get(content.certificate_id)
        .ok_or((F_ID, ItemErrorKind::UnknownCertificate))?;
    if let (Some(expected), Some(sent)) = (entry.thumbprint, content.certificate_thumbprint) {
        if !hex_matches(sent.trim(), &expected) {
            return Err((F_THUMB, ItemErrorKind::ThumbprintMismatch));
        }
    }

    let DecryptBuffer {
        wrapped_key,
        signature,
        data,
        scratch,
    } = buf;
    decode_exact(
        content.data_key,
        entry.modulus_len,
        wrapped_key,
        scratch,
        F_KEY,
    )?;
    decode_exact(content.data_signature, 32, signature, scratch, F_SIG)?;
    // The size check comes before decoding, from the base64 length alone.
    let estimate = content.data.len() / 4 * 3;
    if estimate > max_item_bytes.saturating_add(64) {
        return Err((
            F_DATA,
            ItemErrorKind::TooLarge {
                size: estimate,
                limit: max_item_bytes,
            },
        ));
    }
    data.zeroize();
    decode(content.data, data, scratch, F_DATA)?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err((F_DATA, ItemErrorKind::NotBlockAligned { len: data.len() }));
    }

    let provider = keys.provider();
    let mut key = Zeroizing::new([0u8; 32]);
    entry
        .key
        .unwrap_key(wrapped_key, &mut key)
        .map_err(|_| (F_CONTENT, ItemErrorKind::Decrypt))?;
    let tag = Zeroizing::new((provider.hmac_sha256)(key.as_slice(), data));
    if !bool::from(tag.as_slice().ct_eq(signature)) {
        return Err((F_CONTENT, ItemErrorKind::Decrypt));
    }
    // The IV is half the key: as secret as the rest.
    let mut iv = Zeroizing::new([0u8; 16]);
    iv.copy_from_slice(&key[..16]);
    let len = (provider.aes256_cbc_decrypt)(&key, &iv, data)
        .map_err(|_| (F_CONTENT, ItemErrorKind::Decrypt))?;
    if len > max_item_bytes {
        return Err((
            F_DATA,
            ItemErrorKind::TooLarge {
                size: len,
                limit: max_item_bytes,
            },
        ));
    }
    data.truncate(len);

    let text = std::str::from_utf8(data).map_err(|_| (F_DATA, ItemErrorKind::PlaintextNotUtf8))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // serde_json would allocate a stack for this on every item; the crate's validator does not.
    crate::json::validate(text).map_err(|at| {
        let (line, column) = crate::json::line_column(text, at);
        (F_DATA, ItemErrorKind::PlaintextNotJson { line, column })
    })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::{decoded_len, hex_matches, B64};
    use base64::Engine as _;

    #[test]
    fn decoded_length_is_counted_exactly() {
        for n in 0..70 {
            let bytes = vec![0xa5u8; n];
            let padded = B64.encode(&bytes);
            assert_eq!(decoded_len(&padded), n, "{padded}");
            assert_eq!(decoded_len(padded.trim_end_matches('=')), n);
            let wrapped: String = padded
                .as_bytes()
                .chunks(8)
                .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
                .collect();
            assert_eq!(decoded_len(&wrapped), n);
        }
    }

    #[test]
    fn hex_matching() {
        assert!(hex_matches("4B95", &[0x4b, 0x95]));
        assert!(hex_matches("4b95", &[0x4b, 0x95]));
        assert!(!hex_matches("4B96", &[0x4b, 0x95]));
        assert!(!hex_matches("4B9", &[0x4b, 0x95]));
        assert!(!hex_matches("4G95", &[0x4b, 0x95]));
        assert!(!hex_matches("", &[0x4b]));
    }
}
