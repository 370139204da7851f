//! Who an API call acts as, and what the identity platform keeps at run time (codes waiting to
//! be redeemed, tokens already checked). A leaf below `store` and `identity`.

use std::collections::HashMap;

tokio::task_local! {
    /// Who the API call being served acts as: set by the HTTP layer around each call to Graph's
    /// API, read by `Graph::me`. Outside a call (controls, the ticker) it is unset.
    pub(crate) static CALLER: Caller;
}

/// Who an API call acts as.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// Any bearer is accepted: the signed-in user of the configuration.
    Anyone,
    /// A delegated token: its user, when it was issued and when it expires (milliseconds).
    User {
        oid: String,
        issued_ms: i64,
        expires_ms: i64,
    },
    /// An app token (client credentials): what the app's permissions allow.
    App,
}

/// The identity platform's run-time state: codes waiting to be redeemed and tokens checked.
#[derive(Default)]
pub(crate) struct Platform {
    pub codes: HashMap<String, CodeGrant>,
    pub checked: HashMap<String, Checked>,
}

#[derive(Clone)]
pub(super) struct Checked {
    pub oid: Option<String>,
    pub issued_ms: i64,
    pub expires_ms: i64,
}

pub(super) struct CodeGrant {
    pub user_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub issued_ms: i64,
}
