//! Which Microsoft cloud a deployment runs in: the Graph host requests go to, and the identity
//! platform hosts that issue and sign `validationTokens`.
//!
//! The values are those of Microsoft's "Microsoft Graph national cloud deployments" page. Each
//! national cloud is its own instance: an app registered in one cannot call another, tokens are
//! signed with that cloud's keys (fetch [`Cloud::jwks_url`]), and not every change-notification
//! feature of the global service exists in every national cloud (check that page for the
//! resources and delivery channels you need).
//!
//! ```
//! use graph_chat_notifications::Cloud;
//! assert_eq!(Cloud::default(), Cloud::Global);
//! assert_eq!(Cloud::UsGovernmentDod.graph_url(), "https://dod-graph.microsoft.us");
//! assert_eq!(
//!     Cloud::China.jwks_url(),
//!     "https://login.chinacloudapi.cn/common/discovery/v2.0/keys"
//! );
//! ```

/// A Microsoft cloud. The default is the global service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Cloud {
    /// The global service: `graph.microsoft.com`, `login.microsoftonline.com`.
    #[default]
    Global,
    /// Microsoft Cloud for US Government L4 (GCC High): `graph.microsoft.us`,
    /// `login.microsoftonline.us`.
    UsGovernment,
    /// Microsoft Cloud for US Government L5 (DoD): `dod-graph.microsoft.us`,
    /// `login.microsoftonline.us`.
    UsGovernmentDod,
    /// Microsoft Azure and Microsoft 365 operated by 21Vianet in China:
    /// `microsoftgraph.chinacloudapi.cn`, `login.chinacloudapi.cn`.
    China,
}

impl Cloud {
    /// Every cloud, for tests and configuration parsing.
    pub const ALL: [Cloud; 4] = [
        Cloud::Global,
        Cloud::UsGovernment,
        Cloud::UsGovernmentDod,
        Cloud::China,
    ];

    /// Microsoft Graph's service root, without a trailing slash: `https://graph.microsoft.com`.
    pub fn graph_url(self) -> &'static str {
        match self {
            Self::Global => "https://graph.microsoft.com",
            Self::UsGovernment => "https://graph.microsoft.us",
            Self::UsGovernmentDod => "https://dod-graph.microsoft.us",
            Self::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The identity platform's host (token endpoint, v2.0 issuer, JWKS).
    pub fn login_host(self) -> &'static str {
        match self {
            Self::Global => "login.microsoftonline.com",
            Self::UsGovernment | Self::UsGovernmentDod => "login.microsoftonline.us",
            Self::China => "login.chinacloudapi.cn",
        }
    }

    /// The identity platform's base URL, without a trailing slash:
    /// `https://login.microsoftonline.com`. Its OAuth 2.0 endpoints are
    /// `{login_url}/{tenant}/oauth2/v2.0/authorize` and `.../token`.
    pub fn login_url(self) -> String {
        format!("https://{}", self.login_host())
    }

    /// The host of the v1.0 token issuer (`https://{host}/{tenant}/`). The US Government
    /// clouds issue v1.0 tokens under the global service's `sts.windows.net`.
    pub fn v1_issuer_host(self) -> &'static str {
        match self {
            Self::Global | Self::UsGovernment | Self::UsGovernmentDod => "sts.windows.net",
            Self::China => "sts.chinacloudapi.cn",
        }
    }

    /// Where the identity platform publishes its signing keys (the `jwks_uri` of its OpenID
    /// configuration): fetch it and hand the bytes to
    /// [`TokenValidator::update_jwks`](crate::tokens::TokenValidator::update_jwks).
    pub fn jwks_url(self) -> String {
        format!("https://{}/common/discovery/v2.0/keys", self.login_host())
    }
}
