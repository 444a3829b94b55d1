//! BMC accounts: the domain types of `get-account-policy` and `set-account-password`, and the
//! redaction that keeps a new password out of every error and log line of its call.

use super::error::{CallError, CallErrorKind};
use super::types::GuestError;

/// What replaces a secret in errors and plugin log lines.
pub const REDACTED: &str = "<redacted>";

/// A BMC's rules for accounts and logins (Redfish `AccountService`). `None`: the BMC does not
/// publish it, and a caller that must not lock an account out assumes the worst.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountPolicy {
    /// Failed logins that lock an account (`AccountLockoutThreshold`); 0: never.
    pub lockout_threshold: Option<u32>,
    /// How long a locked account stays locked, in seconds (`AccountLockoutDuration`); 0: until
    /// an administrator unlocks it.
    pub lockout_duration_seconds: Option<u64>,
    /// Seconds after the last failed login at which the failure counter goes back to 0
    /// (`AccountLockoutCounterResetAfter`).
    pub lockout_counter_reset_after_seconds: Option<u64>,
    /// Whether the failure counter resets at all (`AccountLockoutCounterResetEnabled`).
    pub lockout_counter_reset_enabled: Option<bool>,
    /// Shortest password accepted (`MinPasswordLength`).
    pub min_password_length: Option<u32>,
    /// Longest password accepted (`MaxPasswordLength`).
    pub max_password_length: Option<u32>,
    /// Days before a password expires (`PasswordExpirationDays`).
    pub password_expiration_days: Option<u32>,
}

/// A password to set on a BMC account. Its `Debug` output hides the password; it never
/// serialises.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountPassword {
    /// The account's user name (Redfish `UserName`).
    pub username: String,
    /// The new password.
    pub password: String,
    /// Create the account with this role (Redfish `RoleId`) when the BMC has none of that
    /// name and allows it; `None`: never create.
    pub create_with_role: Option<String>,
}

impl std::fmt::Debug for AccountPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountPassword")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .field("create_with_role", &self.create_with_role)
            .finish()
    }
}

/// What `set-account-password` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountChange {
    /// The account on the BMC (Redfish `@odata.id`).
    pub uri: String,
    /// Whether the call created it.
    pub created: bool,
    /// The BMC's policy.
    pub policy: AccountPolicy,
}

/// `text` with every occurrence of `secret` replaced by [`REDACTED`]. An empty secret
/// changes nothing.
pub(crate) fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, REDACTED)
    }
}

fn redact_option(text: Option<String>, secret: &str) -> Option<String> {
    text.map(|text| redact(&text, secret))
}

impl GuestError {
    /// The same error with `secret` removed from every text it carries (a BMC may echo a
    /// refused value in its message, a plugin may be careless).
    pub fn redacted(self, secret: &str) -> Self {
        match self {
            Self::InvalidInput(text) => Self::InvalidInput(redact(&text, secret)),
            Self::Unsupported(text) => Self::Unsupported(redact(&text, secret)),
            Self::Unauthorized(text) => Self::Unauthorized(redact_option(text, secret)),
            Self::Unreachable(text) => Self::Unreachable(redact_option(text, secret)),
            Self::BmcFault {
                http_status,
                message_id,
                message,
            } => Self::BmcFault {
                http_status,
                message_id: redact_option(message_id, secret),
                message: redact(&message, secret),
            },
            Self::Other(text) => Self::Other(redact_option(text, secret)),
        }
    }
}

impl CallError {
    /// The same error with `secret` removed from the plugin's error and panic message.
    pub fn redacted(self, secret: &str) -> Self {
        let kind = match self.kind {
            CallErrorKind::Plugin(error) => CallErrorKind::Plugin(error.redacted(secret)),
            CallErrorKind::Crashed {
                reason,
                panic,
                backtrace,
            } => CallErrorKind::Crashed {
                reason: redact(&reason, secret),
                panic: redact_option(panic, secret),
                backtrace,
            },
            CallErrorKind::Host(text) => CallErrorKind::Host(redact(&text, secret)),
            other => other,
        };
        Self { kind, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown_by_debug() {
        let account = AccountPassword {
            username: String::from("ops"),
            password: String::from("s3cret-Pa55"),
            create_with_role: None,
        };
        let shown = format!("{account:?}");
        assert!(!shown.contains("s3cret-Pa55"), "{shown}");
        assert!(shown.contains("ops"), "{shown}");
    }

    #[test]
    fn a_bmc_that_echoes_the_password_has_it_removed_from_the_error() {
        let error = GuestError::BmcFault {
            http_status: Some(400),
            message_id: Some(String::from("Base.1.8.PropertyValueFormatError")),
            message: String::from("The value s3cret for the property Password is invalid"),
        }
        .redacted("s3cret");
        assert_eq!(
            error.to_string(),
            "BMC fault (HTTP 400): The value <redacted> for the property Password is invalid [Base.1.8.PropertyValueFormatError]"
        );
        assert_eq!(
            GuestError::Other(Some(String::from("x"))).redacted(""),
            GuestError::Other(Some(String::from("x"))),
            "an empty secret changes nothing"
        );
    }
}
