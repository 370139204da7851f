//! Errors, one type per boundary.
//!
//! * [`BodyError`]: the whole POST body is refused (not JSON, over a limit, not a notification
//!   collection). Nothing in it is processed.
//! * [`ItemError`]: one notification of a batch failed; it names the notification (its index in
//!   `value`) and the field. Its neighbours are unaffected.
//! * [`KeyError`]: a private key, certificate or PKCS#12 file could not be loaded.
//!
//! No error carries secret material: no key bytes, no clientState, no plaintext, no token. Failures
//! of the authenticated decryption (RSA-OAEP unwrap, HMAC check, AES padding) are one opaque
//! [`ItemErrorKind::Decrypt`], so error values cannot be used as a padding or signature oracle.

use std::fmt;

/// Why a whole notification body was refused.
///
/// A body is refused as a whole only when nothing in it can be trusted or located: it is not JSON,
/// it breaks a [`Limits`](crate::webhook::Limits) bound, or it is not a notification collection.
/// Anything wrong inside a single notification is an [`ItemError`] instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is empty (or only whitespace).
    #[error("the body is empty")]
    Empty,
    /// The body is larger than [`Limits::max_body_bytes`](crate::webhook::Limits::max_body_bytes).
    #[error("the body is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the body in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The body is not valid UTF-8.
    #[error("the body is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// Arrays and objects nest deeper than [`Limits::max_depth`](crate::webhook::Limits::max_depth).
    #[error("the body nests arrays and objects deeper than {limit} levels")]
    TooDeep {
        /// The configured limit.
        limit: usize,
    },
    /// The body is not well-formed JSON.
    #[error("the body is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
    },
    /// The body is JSON but not a notification collection (`{"value": [...]}`).
    #[error("the body is not a notification collection: {reason}")]
    NotACollection {
        /// What is wrong with its shape.
        reason: &'static str,
    },
    /// The receiver reads Event Grid deliveries, and the body is not one CloudEvent or a JSON
    /// array of them.
    #[error("the body is not CloudEvents: {reason}")]
    NotCloudEvents {
        /// What it is instead.
        reason: &'static str,
    },
    /// `value` holds more notifications than
    /// [`Limits::max_items`](crate::webhook::Limits::max_items).
    ///
    /// Counting stops at the limit, so the rest of `value` is not read.
    #[error("the body carries more than {limit} notifications")]
    TooManyItems {
        /// The configured limit.
        limit: usize,
    },
    /// The body carries `encryptedContent` but no `validationTokens` (or an empty array): nothing
    /// proves it comes from Graph, so nothing in it is decrypted.
    #[error("the body carries encrypted content but no validationTokens")]
    MissingValidationTokens,
    /// A validation token failed; every token must pass, so nothing in the body is decrypted.
    #[error("validationTokens[{index}]: {error}")]
    Token {
        /// Position of the failing token in `validationTokens`.
        index: usize,
        /// Why it failed.
        error: crate::tokens::TokenError,
    },
    /// `validationTokens` is present but is not an array of strings.
    #[error("validationTokens: {reason}")]
    BadValidationTokens {
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl BodyError {
    /// Whether fetching the identity platform's JWKS again may let this body through: a token
    /// names a signing key the validator does not hold yet. Rate-limit the fetches.
    pub fn wants_jwks_refresh(&self) -> bool {
        matches!(self, Self::Token { error, .. } if error.wants_jwks_refresh())
    }

    /// The `kid` a token named that the validator does not hold (`""` when no JWKS is loaded):
    /// what to ask [`JwksRefresh::on_unknown_key`](crate::tokens::JwksRefresh::on_unknown_key).
    pub fn unknown_key(&self) -> Option<&str> {
        match self {
            Self::Token { error, .. } => error.unknown_key(),
            _ => None,
        }
    }
}

/// One notification of a batch failed. The others are unaffected.
///
/// `Display` reads `notification 2: encryptedContent.dataKey: not valid base64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    index: usize,
    field: &'static str,
    kind: ItemErrorKind,
}

impl ItemError {
    /// An error for notification `index` (its position in `value`), at `field`: `field` is the
    /// JSON path inside the notification, such as `encryptedContent.dataKey`, or `""` for the
    /// notification as a whole. Only the crate makes these, so an `ItemError` always comes from
    /// the checks.
    pub(crate) fn new(index: usize, field: &'static str, kind: ItemErrorKind) -> Self {
        Self { index, field, kind }
    }

    /// Position of the notification in the body's `value` array (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The field that failed, as a JSON path inside the notification (for example
    /// `encryptedContent.dataSignature`); empty when the notification as a whole is at fault.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What went wrong.
    pub fn kind(&self) -> &ItemErrorKind {
        &self.kind
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "notification {}: {}", self.index, self.kind)
        } else {
            write!(
                f,
                "notification {}: {}: {}",
                self.index, self.field, self.kind
            )
        }
    }
}

impl std::error::Error for ItemError {}

/// What went wrong with one notification. See [`ItemError`] for where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ItemErrorKind {
    /// A required field is absent (or `null`).
    #[error("missing")]
    Missing,
    /// A field has the wrong JSON type.
    #[error("expected {expected}")]
    WrongType {
        /// The JSON type that was expected, for example `a string`.
        expected: &'static str,
    },
    /// The same field appears more than once (in any letter case).
    #[error("appears more than once")]
    Duplicate,
    /// The field is not valid base64.
    #[error("not valid base64")]
    NotBase64,
    /// The field decodes to the wrong number of bytes.
    #[error("decodes to {actual} bytes, expected {expected}")]
    WrongLength {
        /// Expected length in bytes.
        expected: usize,
        /// Actual length in bytes.
        actual: usize,
    },
    /// The ciphertext is empty or not a whole number of 16-byte AES blocks.
    #[error("decodes to {len} bytes, not a whole number of 16-byte AES blocks")]
    NotBlockAligned {
        /// Decoded length in bytes.
        len: usize,
    },
    /// The field is larger than the configured per-item limit.
    #[error("is about {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size in bytes (decoded, estimated from the base64 length).
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// No private key is configured for this `encryptionCertificateId`.
    #[error("no key is configured for this certificate id")]
    UnknownCertificate,
    /// `encryptionCertificateThumbprint` does not match the certificate configured for the id.
    #[error("does not match the certificate configured for this id")]
    ThumbprintMismatch,
    /// Validation tokens vouched for the batch, but none of them was issued for the tenant this
    /// notification names in `tenantId` (Graph sends a token for every tenant in a batch).
    #[error("no validation token of the batch was issued for this tenant")]
    TenantNotVouched,
    /// The notification's `clientState` is not one of the expected values.
    #[error("does not match the expected clientState")]
    ClientStateMismatch,
    /// The notification carries `encryptedContent` but the receiver has no crypto provider.
    #[error("encrypted content cannot be decrypted: no crypto provider is configured")]
    NoProvider,
    /// Authenticated decryption failed: the key unwrap, the HMAC-SHA256 check of
    /// `dataSignature`, or the AES padding. Deliberately one kind: which step failed is not said.
    #[error("decryption failed (wrong key, forged or corrupted content)")]
    Decrypt,
    /// The decrypted resource is not UTF-8.
    #[error("the decrypted resource is not UTF-8")]
    PlaintextNotUtf8,
    /// The decrypted resource is JSON but does not fit its model: a property of the wrong type,
    /// or a time that is not a time.
    #[error("the decrypted resource does not fit its model: {path}: {reason}")]
    Model {
        /// The property's JSON path inside the resource (`from.user.displayName`).
        path: String,
        /// What was wrong, without the offending value.
        reason: String,
    },
    /// The decrypted resource is not JSON.
    #[error("the decrypted resource is not JSON (line {line}, column {column})")]
    PlaintextNotJson {
        /// 1-based line of the syntax error in the decrypted resource.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
    },
}

/// A private key, certificate or PKCS#12 file could not be loaded, or a key store entry was
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not a PEM, PKCS#8 DER, PKCS#1 DER or PKCS#12 key.
    #[error("not a recognised key format (expected PKCS#8 or PKCS#1 PEM, PKCS#8 DER or PKCS#12)")]
    UnrecognizedFormat,
    /// The PEM holds a password-protected `ENCRYPTED PRIVATE KEY`.
    #[error("the PEM key is encrypted; decrypt it first or use a PKCS#12 file with its password")]
    EncryptedPem,
    /// The input holds no private key (for example a PEM with only certificates).
    #[error("no private key found")]
    NoPrivateKey,
    /// The input holds more than one private key.
    #[error("more than one private key found; give one key per certificate id")]
    SeveralPrivateKeys,
    /// The key is not an RSA key.
    #[error("not an RSA key (Graph wraps keys with RSA-OAEP)")]
    NotRsa,
    /// The key is malformed.
    #[error("malformed RSA private key: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The key size is outside what the crate accepts (2048 to 16384 bits).
    #[error("RSA key of {bits} bits; 2048 to 16384 bits are accepted")]
    UnsupportedKeySize {
        /// Size of the modulus in bits.
        bits: usize,
    },
    /// The certificate is malformed or not an X.509 certificate.
    #[error("malformed certificate: {reason}")]
    BadCertificate {
        /// What is wrong.
        reason: &'static str,
    },
    /// The certificate's public key does not belong to the private key.
    #[error("the certificate's public key does not match the private key")]
    CertificateMismatch,
    /// The PKCS#12 file is malformed or uses an unsupported algorithm.
    #[error("PKCS#12: {reason}")]
    Pkcs12 {
        /// What is wrong.
        reason: &'static str,
    },
    /// The PKCS#12 password is wrong (its integrity MAC or decryption failed).
    #[error("PKCS#12: wrong password or corrupted file")]
    Pkcs12Password,
    /// The `encryptionCertificateId` is empty or longer than 128 characters.
    #[error("a certificate id must be 1 to 128 characters, got {len}")]
    BadCertificateId {
        /// Its length in characters.
        len: usize,
    },
    /// The receiver has no key store to change: it was built without keys and without a
    /// default crypto provider. Give it one with `ReceiverBuilder::keys`.
    #[error("the receiver has no key store (build it with keys, or with a crypto provider)")]
    NoKeyStore,
    /// The change would let a receiver that checks no validation tokens decrypt: configure a
    /// token validator, or opt out with `ReceiverBuilder::dangerous_skip_token_validation`.
    #[error("the receiver checks no validation tokens, so it may hold no keys")]
    TokenValidationNotConfigured,
    /// The crypto provider refused the key.
    #[error("the crypto provider refused the key: {reason}")]
    Provider {
        /// The provider's reason.
        reason: &'static str,
    },
}
