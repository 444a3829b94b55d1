//! BMC accounts: the account policy a driver reports and the password change it is asked to
//! make (`get-account-policy`, `set-account-password`).

use super::bindings::ferrometal::plugin::credentials::Credential;

/// A BMC's rules for accounts and logins (Redfish `AccountService`). `None` where the BMC
/// does not publish a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountPolicy {
    /// Failed logins that lock an account (`AccountLockoutThreshold`); 0: never.
    pub lockout_threshold: Option<u32>,
    /// How long a locked account stays locked, in seconds (`AccountLockoutDuration`); 0:
    /// until an administrator unlocks it.
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

/// The account whose password to set, as the host hands it over: the user name is readable,
/// the new password only through [`AccountPassword::reveal_password`] (which needs
/// `credentials/reveal`). Never put the password into an error, a log line or a URL.
pub struct AccountPassword<'a> {
    account: &'a Credential,
    /// Create the account with this role (Redfish `RoleId`, e.g. `Administrator`) when the BMC
    /// has none of that name and allows it; `None`: never create.
    pub create_with_role: Option<&'a str>,
}

impl<'a> AccountPassword<'a> {
    pub(super) fn new(account: &'a Credential, create_with_role: Option<&'a str>) -> Self {
        Self {
            account,
            create_with_role,
        }
    }

    /// The account's user name (Redfish `UserName`).
    pub fn username(&self) -> String {
        self.account.username()
    }

    /// The new password. Like [`super::Target::reveal_password`], only a driver granted
    /// `credentials/reveal` loads when it uses this.
    pub fn reveal_password(&self) -> String {
        super::bindings::ferrometal::plugin::reveal::password(self.account)
    }
}

/// What a password change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChange {
    /// The account on the BMC (Redfish `@odata.id` of the `ManagerAccount`).
    pub uri: String,
    /// Whether the call created the account.
    pub created: bool,
    /// The BMC's policy.
    pub policy: AccountPolicy,
}
