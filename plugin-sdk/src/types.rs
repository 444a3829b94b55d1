//! Types shared by every world, independent of the generated bindings.

/// Why a plugin operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The request made no sense (bad settings, malformed input).
    InvalidInput(String),
    /// Not implemented by this plugin, or not offered by the BMC.
    Unsupported(String),
    /// The BMC refused the credentials.
    Unauthorized(Option<String>),
    /// The BMC could not be reached.
    Unreachable(Option<String>),
    /// The BMC answered with an error.
    BmcFault {
        /// HTTP status, if the fault came over HTTP.
        http_status: Option<u16>,
        /// Redfish message id, if the BMC sent one.
        message_id: Option<String>,
        /// The BMC's message.
        message: String,
    },
    /// Anything else; the text is for logs.
    Other(Option<String>),
}

impl PluginError {
    /// An `Unsupported` error naming the operation a plugin does not implement.
    pub fn unsupported(operation: &str) -> Self {
        Self::Unsupported(format!("{operation} is not implemented by this plugin"))
    }
}

/// Plugin settings as key/value pairs.
pub type Settings = [(String, String)];
