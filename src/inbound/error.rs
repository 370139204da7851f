//! Why a whole body was refused.

/// Why a whole notification body was refused.
///
/// A body is refused as a whole only when nothing in it can be trusted or located: it is not JSON,
/// it breaks a [`Limits`](crate::inbound::Limits) bound, or it is not a notification collection.
/// Anything wrong inside a single notification is an [`ItemError`](crate::ItemError) instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is empty (or only whitespace).
    #[error("the body is empty")]
    Empty,
    /// The body is larger than [`Limits::max_body_bytes`](crate::inbound::Limits::max_body_bytes).
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
    /// Arrays and objects nest deeper than [`Limits::max_depth`](crate::inbound::Limits::max_depth).
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
    /// [`Limits::max_items`](crate::inbound::Limits::max_items).
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
    /// The bytes given to [`Receiver::dangerous_open_admitted`](crate::inbound::Receiver::dangerous_open_admitted)
    /// are not an [`Admission`](crate::inbound::Admission) record.
    #[error("not an admission record: {reason}")]
    NotARecord {
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl BodyError {
    /// A stable name for the error (`tooLarge`, `token`, `missingValidationTokens`...): for
    /// metrics and alerts that count refusals by kind.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge { .. } => "tooLarge",
            Self::NotUtf8 { .. } => "notUtf8",
            Self::TooDeep { .. } => "tooDeep",
            Self::NotJson { .. } => "notJson",
            Self::NotACollection { .. } => "notACollection",
            Self::NotCloudEvents { .. } => "notCloudEvents",
            Self::TooManyItems { .. } => "tooManyItems",
            Self::MissingValidationTokens => "missingValidationTokens",
            Self::Token { .. } => "token",
            Self::BadValidationTokens { .. } => "badValidationTokens",
            Self::NotARecord { .. } => "notARecord",
        }
    }

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
