//! Domain types of plugin calls, independent of the generated bindings.

/// An error a plugin reported for an operation (as opposed to a crash or timeout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestError {
    /// The request made no sense to the plugin.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Not implemented by the plugin or not offered by the BMC.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The BMC refused the credentials.
    #[error("unauthorized{}", detail(.0))]
    Unauthorized(Option<String>),
    /// The BMC could not be reached.
    #[error("unreachable{}", detail(.0))]
    Unreachable(Option<String>),
    /// The BMC answered with an error.
    #[error("BMC fault{}: {message}{}", http_status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), message_id.as_ref().map(|id| format!(" [{id}]")).unwrap_or_default())]
    BmcFault {
        /// HTTP status, if the fault came over HTTP.
        http_status: Option<u16>,
        /// Redfish message id, if the BMC sent one.
        message_id: Option<String>,
        /// The BMC's message.
        message: String,
    },
    /// Anything else.
    #[error("plugin error{}", detail(.0))]
    Other(Option<String>),
}

fn detail(text: &Option<String>) -> String {
    text.as_ref().map(|t| format!(": {t}")).unwrap_or_default()
}

/// A default credential to try on a BMC. Its `Debug` output hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DefaultCredential {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for DefaultCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How to talk to a BMC whose MAC matched the credential database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmcProfile {
    /// Manufacturer (informational).
    pub manufacturer: String,
    /// Protocol name, e.g. `Redfish`.
    pub protocol: String,
    /// `http` or `https`, if the database says.
    pub scheme: Option<String>,
    /// Management port.
    pub port: u16,
    /// Credentials to try, in order.
    pub default_credentials: Vec<DefaultCredential>,
    /// Console protocol, e.g. `SSH`.
    pub console_protocol: Option<String>,
    /// Console port.
    pub console_port: Option<u16>,
}
