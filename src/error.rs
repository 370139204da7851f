//! The per-notification error, shared by the decrypt core and the inbound side: an
//! [`ItemError`] names the notification (its index) and the field; its neighbours are
//! unaffected. Each other boundary owns its error type: `inbound::BodyError` (a whole body
//! refused), `crypto::KeyError` (a key or certificate that cannot be loaded),
//! `inbound::KeyUpdateError`, `tokens::TokenError` and `tokens::JwksError`,
//! `outbound::RequestError`, `model::ModelError`. This module imports nothing of the
//! crate but `model::ModelError`, which an item error can carry.
//!
//! No error carries secret material: no key bytes, no clientState, no plaintext, no token. Failures
//! of the authenticated decryption (RSA-OAEP unwrap, HMAC check, AES padding) are one opaque
//! [`ItemErrorKind::Decrypt`], so error values cannot be used as a padding or signature oracle.

use std::fmt;

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

/// For a batch's results on a queue or in a log: `{"index":2,"field":"encryptedContent.dataKey",
/// "kind":"notBase64","message":"notification 2: encryptedContent.dataKey: not valid base64"}`.
/// Like the error itself, it carries no secret and no content.
impl serde::Serialize for ItemError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ItemError", 4)?;
        st.serialize_field("index", &self.index)?;
        st.serialize_field("field", self.field)?;
        st.serialize_field("kind", self.kind.code())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

impl ItemErrorKind {
    /// A stable name for the kind (`clientStateMismatch`, `decrypt`, `tooLarge`...): for
    /// metrics and alerts that count failures by kind, and for serialized results.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::WrongType { .. } => "wrongType",
            Self::Duplicate => "duplicate",
            Self::NotBase64 => "notBase64",
            Self::WrongLength { .. } => "wrongLength",
            Self::NotBlockAligned { .. } => "notBlockAligned",
            Self::TooLarge { .. } => "tooLarge",
            Self::UnknownCertificate => "unknownCertificate",
            Self::ThumbprintMismatch => "thumbprintMismatch",
            Self::TenantNotVouched => "tenantNotVouched",
            Self::ClientStateMismatch => "clientStateMismatch",
            Self::TenantNotAllowed => "tenantNotAllowed",
            Self::NoProvider => "noProvider",
            Self::Decrypt => "decrypt",
            Self::PlaintextNotUtf8 => "plaintextNotUtf8",
            Self::Model(_) => "model",
            Self::PlaintextNotJson { .. } => "plaintextNotJson",
        }
    }
}

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
    /// The notification's `tenantId` (or, for a CloudEvent, the tenant its `source` names) is
    /// not one of the tenants the receiver serves
    /// ([`ReceiverBuilder::allowed_tenants`](crate::inbound::ReceiverBuilder::allowed_tenants)).
    #[error("is not a tenant the receiver serves")]
    TenantNotAllowed,
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
    /// or a time that is not a time. The [`ModelError`](crate::model::ModelError) names the
    /// property's path (`from.user.displayName`) and what was wrong, never the value.
    #[error("the decrypted resource does not fit its model: {0}")]
    Model(crate::model::ModelError),
    /// The decrypted resource is not JSON.
    #[error("the decrypted resource is not JSON (line {line}, column {column})")]
    PlaintextNotJson {
        /// 1-based line of the syntax error in the decrypted resource.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
    },
}
