//! A simulated BMC's `AccountService`: accounts with passwords and roles, password rules,
//! failed logins counted against a lockout threshold, and lockout for a duration. Pure state:
//! every operation takes the time it happens at, so tests need no sleeping.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where the simulated BMCs keep their accounts.
pub const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";

/// Roles a simulated BMC knows (Redfish's standard `RoleId`s).
pub const ROLES: [&str; 3] = ["Administrator", "Operator", "ReadOnly"];

/// Most accounts a simulated BMC holds.
const MAX_ACCOUNTS: usize = 16;

/// The lockout policy and password rules a BMC publishes and enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPolicy {
    /// Failed logins of one account in a row that lock it (`AccountLockoutThreshold`); 0:
    /// never.
    pub lockout_threshold: u32,
    /// How long a locked account stays locked (`AccountLockoutDuration`); zero: until an
    /// administrator PATCHes `Locked: false`.
    pub lockout_duration: Duration,
    /// The failure count of an account goes back to 0 this long after its last failure
    /// (`AccountLockoutCounterResetAfter`).
    pub counter_reset_after: Duration,
    /// Shortest password accepted (`MinPasswordLength`).
    pub min_password_length: usize,
    /// Longest password accepted (`MaxPasswordLength`).
    pub max_password_length: usize,
}

impl Default for AccountPolicy {
    /// Ten failures in a row lock an account for a minute; passwords of 8 to 20 characters
    /// (iDRAC's and OpenBMC's range). Generous enough that trying a database's default
    /// credentials in order never locks the simulated fleet.
    fn default() -> Self {
        Self {
            lockout_threshold: 10,
            lockout_duration: Duration::from_secs(60),
            counter_reset_after: Duration::from_secs(60),
            min_password_length: 8,
            max_password_length: 20,
        }
    }
}

/// Failed logins a BMC has seen, for tests that must prove nobody was locked out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginStats {
    /// Logins refused: wrong password, unknown user, disabled or locked account.
    pub failed_logins: u64,
    /// Times an account was locked.
    pub lockouts: u64,
}

/// What a login attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// The credentials are right.
    Accepted,
    /// Wrong user name or password, or a disabled account.
    Refused,
    /// The account is locked; even the right password is refused.
    LockedOut,
}

/// A Redfish error: status, `MessageId` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Redfish `MessageId`.
    pub message_id: &'static str,
    /// Message; never contains a password.
    pub message: String,
}

fn refusal(status: u16, message_id: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message_id,
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
struct Account {
    id: u32,
    user_name: String,
    password: String,
    role: String,
    enabled: bool,
    /// Failures in a row, and when the last one happened.
    failures: u32,
    last_failure: Option<Instant>,
    locked_until: Option<Instant>,
    /// Bumped by every change; the ETag is `W/"<version>"`.
    version: u64,
}

impl Account {
    fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }

    fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }
}

/// The accounts of one BMC.
#[derive(Debug, Clone)]
pub struct Accounts {
    policy: AccountPolicy,
    accounts: Vec<Account>,
    next_id: u32,
    stats: LoginStats,
}

impl Accounts {
    /// One administrator account, `user_name` with `password`.
    pub fn new(policy: AccountPolicy, user_name: &str, password: &str) -> Self {
        Self {
            policy,
            accounts: vec![Account {
                id: 1,
                user_name: user_name.to_owned(),
                password: password.to_owned(),
                role: String::from("Administrator"),
                enabled: true,
                failures: 0,
                last_failure: None,
                locked_until: None,
                version: 1,
            }],
            next_id: 2,
            stats: LoginStats::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &AccountPolicy {
        &self.policy
    }

    /// Replaces the policy (a vendor profile's); accounts and counters stay.
    pub fn set_policy(&mut self, policy: AccountPolicy) {
        self.policy = policy;
    }

    /// Failed logins and lockouts so far.
    pub fn stats(&self) -> LoginStats {
        self.stats
    }

    /// Whether `user_name` is locked at `now`.
    pub fn is_locked(&self, user_name: &str, now: Instant) -> bool {
        self.accounts
            .iter()
            .any(|a| a.user_name == user_name && a.locked(now))
    }

    /// Checks a login (Basic auth or a session) and counts a failure against the account.
    pub fn login(&mut self, user_name: &str, password: &str, now: Instant) -> Login {
        let policy = self.policy.clone();
        let Some(account) = self
            .accounts
            .iter_mut()
            .find(|a| a.user_name == user_name && !user_name.is_empty())
        else {
            self.stats.failed_logins += 1;
            return Login::Refused;
        };
        if account.locked(now) {
            self.stats.failed_logins += 1;
            return Login::LockedOut;
        }
        if account.locked_until.take().is_some()
            || account.last_failure.is_some_and(|last| {
                now.saturating_duration_since(last) >= policy.counter_reset_after
            })
        {
            account.failures = 0;
        }
        if account.enabled && account.password == password {
            account.failures = 0;
            return Login::Accepted;
        }
        self.stats.failed_logins += 1;
        account.failures += 1;
        account.last_failure = Some(now);
        if policy.lockout_threshold > 0 && account.failures >= policy.lockout_threshold {
            let duration = if policy.lockout_duration.is_zero() {
                // Until an administrator unlocks it.
                Duration::from_secs(100 * 365 * 24 * 3600)
            } else {
                policy.lockout_duration
            };
            account.locked_until = Some(now + duration);
            account.failures = 0;
            account.version += 1;
            self.stats.lockouts += 1;
        }
        Login::Refused
    }

    /// The `AccountService` document.
    pub fn service_document(&self) -> Value {
        json!({
            "@odata.id": "/redfish/v1/AccountService",
            "@odata.type": "#AccountService.v1_12_0.AccountService",
            "Id": "AccountService",
            "Name": "Account Service",
            "ServiceEnabled": true,
            "AccountLockoutThreshold": self.policy.lockout_threshold,
            "AccountLockoutDuration": self.policy.lockout_duration.as_secs(),
            "AccountLockoutCounterResetAfter": self.policy.counter_reset_after.as_secs(),
            "AccountLockoutCounterResetEnabled": true,
            "MinPasswordLength": self.policy.min_password_length,
            "MaxPasswordLength": self.policy.max_password_length,
            "Accounts": {"@odata.id": ACCOUNTS},
            "Roles": {"@odata.id": "/redfish/v1/AccountService/Roles"},
        })
    }

    /// The `Accounts` collection.
    pub fn collection_document(&self) -> Value {
        let members: Vec<Value> = self
            .accounts
            .iter()
            .map(|a| json!({"@odata.id": format!("{ACCOUNTS}/{}", a.id)}))
            .collect();
        json!({
            "@odata.id": ACCOUNTS,
            "Name": "Accounts Collection",
            "Members@odata.count": members.len(),
            "Members": members,
        })
    }

    /// One account's document (never with its password: Redfish reads it back as null).
    pub fn account_document(&self, id: &str, now: Instant) -> Option<Value> {
        let account = self.find(id)?;
        Some(json!({
            "@odata.id": format!("{ACCOUNTS}/{}", account.id),
            "@odata.type": "#ManagerAccount.v1_9_0.ManagerAccount",
            "@odata.etag": account.etag(),
            "Id": account.id.to_string(),
            "Name": "User Account",
            "UserName": account.user_name,
            "Password": null,
            "RoleId": account.role,
            "Enabled": account.enabled,
            "Locked": account.locked(now),
        }))
    }

    fn find(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id.to_string() == id)
    }

    fn check_password(&self, password: &str) -> Result<(), Refusal> {
        let length = password.chars().count();
        if length < self.policy.min_password_length || length > self.policy.max_password_length {
            return Err(refusal(
                400,
                "Base.1.8.PropertyValueFormatError",
                format!(
                    "The value for the property Password does not meet the password rules: {} to {} characters.",
                    self.policy.min_password_length, self.policy.max_password_length
                ),
            ));
        }
        Ok(())
    }

    fn check_role(role: &str) -> Result<(), Refusal> {
        if ROLES.contains(&role) {
            Ok(())
        } else {
            Err(refusal(
                400,
                "Base.1.8.PropertyValueNotInList",
                format!("{role} is not a valid value of RoleId"),
            ))
        }
    }

    /// `PATCH` of account `id`: `Password`, `RoleId`, `Enabled`, `UserName`, or `Locked:
    /// false` (unlock). `if_match`, when given, must be the account's ETag.
    pub fn patch(&mut self, id: &str, if_match: Option<&str>, body: &[u8]) -> Result<(), Refusal> {
        let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(body) else {
            return Err(refusal(
                400,
                "Base.1.8.MalformedJSON",
                "the request body is not a JSON object",
            ));
        };
        let Some(account) = self.find(id) else {
            return Err(refusal(
                404,
                "Base.1.8.ResourceMissingAtURI",
                format!("no account {id}"),
            ));
        };
        if let Some(tag) = if_match
            && tag != "*"
            && tag != account.etag()
        {
            return Err(refusal(
                412,
                "Base.1.8.PreconditionFailed",
                "the ETag in If-Match is not the account's",
            ));
        }
        let mut changed = account.clone();
        for (key, value) in &patch {
            match (key.as_str(), value) {
                ("Password", Value::String(password)) => {
                    self.check_password(password)?;
                    changed.password = password.clone();
                }
                ("UserName", Value::String(name)) => {
                    if self
                        .accounts
                        .iter()
                        .any(|a| &a.user_name == name && a.id != changed.id)
                    {
                        return Err(refusal(
                            400,
                            "Base.1.8.ResourceAlreadyExists",
                            format!("an account {name} exists"),
                        ));
                    }
                    changed.user_name = name.clone();
                }
                ("RoleId", Value::String(role)) => {
                    Self::check_role(role)?;
                    changed.role = role.clone();
                }
                ("Enabled", Value::Bool(enabled)) => changed.enabled = *enabled,
                ("Locked", Value::Bool(false)) => {
                    changed.locked_until = None;
                    changed.failures = 0;
                }
                ("Locked", _) => {
                    return Err(refusal(
                        400,
                        "Base.1.8.PropertyValueNotInList",
                        "Locked can only be set to false",
                    ));
                }
                (key, _) => {
                    return Err(refusal(
                        400,
                        "Base.1.8.PropertyUnknown",
                        format!("{key} cannot be patched on an account"),
                    ));
                }
            }
        }
        changed.version += 1;
        if let Some(slot) = self.accounts.iter_mut().find(|a| a.id == changed.id) {
            *slot = changed;
        }
        Ok(())
    }

    /// `POST` to the collection: a new account (`UserName`, `Password`, `RoleId`, optional
    /// `Enabled`); returns its path.
    pub fn create(&mut self, body: &[u8]) -> Result<String, Refusal> {
        let Ok(new) = serde_json::from_slice::<Value>(body) else {
            return Err(refusal(
                400,
                "Base.1.8.MalformedJSON",
                "the request body is not JSON",
            ));
        };
        let (Some(user_name), Some(password), Some(role)) = (
            new["UserName"].as_str().filter(|name| !name.is_empty()),
            new["Password"].as_str(),
            new["RoleId"].as_str(),
        ) else {
            return Err(refusal(
                400,
                "Base.1.8.PropertyMissing",
                "UserName, Password and RoleId are required",
            ));
        };
        if self.accounts.iter().any(|a| a.user_name == user_name) {
            return Err(refusal(
                400,
                "Base.1.8.ResourceAlreadyExists",
                format!("an account {user_name} exists"),
            ));
        }
        if self.accounts.len() >= MAX_ACCOUNTS {
            return Err(refusal(
                400,
                "Base.1.8.CreateLimitReachedForResource",
                "no more accounts can be created",
            ));
        }
        self.check_password(password)?;
        Self::check_role(role)?;
        let id = self.next_id;
        self.next_id += 1;
        self.accounts.push(Account {
            id,
            user_name: user_name.to_owned(),
            password: password.to_owned(),
            role: role.to_owned(),
            enabled: new["Enabled"].as_bool().unwrap_or(true),
            failures: 0,
            last_failure: None,
            locked_until: None,
            version: 1,
        });
        Ok(format!("{ACCOUNTS}/{id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts::new(
            AccountPolicy {
                lockout_threshold: 3,
                lockout_duration: Duration::from_secs(60),
                counter_reset_after: Duration::from_secs(30),
                ..AccountPolicy::default()
            },
            "admin",
            "sim-password",
        )
    }

    fn secs(start: Instant, s: u64) -> Instant {
        start + Duration::from_secs(s)
    }

    #[test]
    fn the_threshold_locks_an_account_until_the_duration_passes() {
        let mut accounts = accounts();
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(accounts.login("admin", "wrong", t0), Login::Refused);
        }
        assert_eq!(accounts.stats().lockouts, 0);
        assert_eq!(accounts.login("admin", "wrong", t0), Login::Refused);
        assert_eq!(
            accounts.stats(),
            LoginStats {
                failed_logins: 3,
                lockouts: 1
            }
        );
        assert!(accounts.is_locked("admin", secs(t0, 1)));
        assert_eq!(
            accounts.login("admin", "sim-password", secs(t0, 59)),
            Login::LockedOut,
            "even the right password"
        );
        assert_eq!(
            accounts.login("admin", "sim-password", secs(t0, 60)),
            Login::Accepted
        );
        assert_eq!(
            accounts.stats(),
            LoginStats {
                failed_logins: 4,
                lockouts: 1
            }
        );
    }

    #[test]
    fn failures_are_forgotten_after_the_reset_time_and_after_a_success() {
        let mut accounts = accounts();
        let t0 = Instant::now();
        accounts.login("admin", "wrong", t0);
        accounts.login("admin", "wrong", t0);
        accounts.login("admin", "wrong", secs(t0, 31));
        assert_eq!(accounts.stats().lockouts, 0, "the first two were forgotten");
        accounts.login("admin", "sim-password", secs(t0, 32));
        accounts.login("admin", "wrong", secs(t0, 33));
        accounts.login("admin", "wrong", secs(t0, 33));
        assert_eq!(accounts.stats().lockouts, 0, "a success resets the count");
        assert_eq!(accounts.login("nobody", "x", t0), Login::Refused);
        assert_eq!(accounts.stats().failed_logins, 6);
    }

    #[test]
    fn a_patched_password_replaces_the_old_one_and_the_rules_hold() {
        let mut accounts = accounts();
        let now = Instant::now();
        let refused = accounts
            .patch("1", None, br#"{"Password":"short"}"#)
            .expect_err("too short");
        assert_eq!(
            (refused.status, refused.message_id),
            (400, "Base.1.8.PropertyValueFormatError")
        );
        assert!(!refused.message.contains("short"), "{}", refused.message);
        let etag = accounts.account_document("1", now).expect("account")["@odata.etag"]
            .as_str()
            .expect("etag")
            .to_owned();
        let stale = accounts.patch("1", Some("W/\"0\""), br#"{"Password":"n3w-Passw0rd"}"#);
        assert_eq!(stale.expect_err("stale").status, 412);
        accounts
            .patch("1", Some(&etag), br#"{"Password":"n3w-Passw0rd"}"#)
            .expect("patched");
        assert_eq!(accounts.login("admin", "sim-password", now), Login::Refused);
        assert_eq!(
            accounts.login("admin", "n3w-Passw0rd", now),
            Login::Accepted
        );
        assert_eq!(
            accounts.account_document("1", now).expect("account")["Password"],
            Value::Null
        );
    }

    #[test]
    fn accounts_are_created_once_with_a_known_role_and_unlocked_by_patch() {
        let mut accounts = accounts();
        let now = Instant::now();
        let body = br#"{"UserName":"ops","Password":"0ps-Passw0rd","RoleId":"Operator"}"#;
        assert_eq!(
            accounts.create(body).expect("created"),
            format!("{ACCOUNTS}/2")
        );
        assert_eq!(
            accounts.create(body).expect_err("twice").message_id,
            "Base.1.8.ResourceAlreadyExists"
        );
        let bad_role = br#"{"UserName":"x","Password":"0ps-Passw0rd","RoleId":"God"}"#;
        assert_eq!(
            accounts.create(bad_role).expect_err("role").message_id,
            "Base.1.8.PropertyValueNotInList"
        );
        assert_eq!(accounts.login("ops", "0ps-Passw0rd", now), Login::Accepted);
        for _ in 0..3 {
            accounts.login("ops", "wrong", now);
        }
        assert!(accounts.is_locked("ops", now));
        assert_eq!(
            accounts.account_document("2", now).expect("ops")["Locked"],
            true
        );
        accounts
            .patch("2", None, br#"{"Locked":false}"#)
            .expect("unlock");
        assert_eq!(accounts.login("ops", "0ps-Passw0rd", now), Login::Accepted);
        assert_eq!(accounts.collection_document()["Members@odata.count"], 2);
    }
}
