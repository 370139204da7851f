//! [`ResourceKind`]: which resource a document is.

/// Which resource a JSON document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// `#microsoft.graph.chat`
    Chat,
    /// `#microsoft.graph.chatMessage`
    ChatMessage,
}

impl ResourceKind {
    /// From an `@odata.type` (any letter case, with or without `#`).
    pub fn from_odata_type(t: &str) -> Option<Self> {
        let t = t.trim_start_matches('#');
        if t.eq_ignore_ascii_case("microsoft.graph.chat") {
            Some(Self::Chat)
        } else if t.eq_ignore_ascii_case("microsoft.graph.chatMessage") {
            Some(Self::ChatMessage)
        } else {
            None
        }
    }
}
