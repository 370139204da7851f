//! [`ModelError`]: which property failed and why, never the value it held.

use super::unique;

/// Why a resource could not be read as its model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", if path.is_empty() { "the resource" } else { path.as_str() })]
pub struct ModelError {
    path: String,
    reason: String,
}

impl ModelError {
    /// An error at `path` for `reason`.
    pub(crate) fn new(path: &str, reason: &str) -> Self {
        Self {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The JSON path of the property that failed (`from.user.displayName`,
    /// `mentions[0].mentioned`); empty for the resource as a whole.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What was wrong, without the offending value.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub(super) fn from_json(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        // `?` stands for a member whose name could not be read (a lone surrogate in it): the
        // error is then the containing object's.
        let path = path.strip_suffix('?').unwrap_or(&path);
        let path = path.strip_suffix('.').unwrap_or(path);
        let path = if path == "." {
            String::new()
        } else {
            path.to_string()
        };
        let inner = e.into_inner();
        let message = inner.to_string();
        // A duplicated member, named by serde's derive (a known property: "duplicate field
        // `body`") or by `unique` (an unknown one, or inside one: "duplicate member `x.y`"):
        // the error is at the member, under the object serde_path_to_error points at.
        let duplicated = message
            .strip_prefix("duplicate field `")
            .or_else(|| message.strip_prefix(unique::DUPLICATE))
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name);
        // An error from a value decoded on its own (`eventDetail`), at a path inside it.
        if let Some((inner, reason)) = message
            .strip_prefix(NESTED)
            .and_then(|rest| rest.split_once('`'))
        {
            let reason = reason.split(" at line ").next().unwrap_or(reason);
            return Self {
                path: match (path.is_empty(), inner.is_empty()) {
                    (_, true) => path,
                    (true, false) => inner.to_string(),
                    (false, false) => format!("{path}.{inner}"),
                },
                reason: reason.to_string(),
            };
        }
        if let Some(name) = duplicated {
            let name: String = name.chars().take(256).collect();
            return Self {
                path: if path.is_empty() {
                    name
                } else {
                    format!("{path}.{name}")
                },
                reason: "appears more than once".into(),
            };
        }
        // serde's messages may quote the offending value (plaintext); keep only what was expected.
        let reason = match message.split_once(", expected ") {
            Some((_, expected)) => {
                let expected = expected.split(" at line ").next().unwrap_or(expected);
                format!("expected {expected}")
            }
            None if message.starts_with("expected an ISO 8601") => {
                "expected an ISO 8601 date-time".into()
            }
            // serde_json's words for a `\uD800`-`\uDFFF` escape without its other half. As a
            // syntax error it would read "not valid JSON", which hides what is wrong.
            None if message.starts_with("lone leading surrogate in hex escape")
                || message.starts_with("unexpected end of hex escape") =>
            {
                "a \\u escape is a lone surrogate, not a character".into()
            }
            None => match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    "not valid JSON".into()
                }
                _ => message
                    .split(" at line ")
                    .next()
                    .filter(|m| !m.contains('"'))
                    .unwrap_or("invalid value")
                    .to_string(),
            },
        };
        Self { path, reason }
    }
}

/// The start of the message [`ModelError::nested`] writes, which [`ModelError::from_json`] reads.
const NESTED: &str = "model error at `";

impl ModelError {
    /// This error as a serde message for an enclosing decoder, which puts the path under its own.
    pub(crate) fn nested(&self) -> String {
        format!("{NESTED}{}`{}", self.path, self.reason)
    }
}
