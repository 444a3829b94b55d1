//! Redfish accounts: the `AccountService`'s lockout policy and password rules, and setting a
//! `ManagerAccount`'s password (creating the account where asked and allowed).
//!
//! The new password appears in one request body only (the PATCH or POST); every error that
//! leaves this module has it removed, since BMCs echo refused values in their messages
//! (`Base.PropertyValueFormatError`).

use ferrometal_plugin_sdk::bmc_driver::http::{
    Method, Request, Response, Transport, check_status, decode, get_json,
};
use ferrometal_plugin_sdk::bmc_driver::{AccountChange, AccountPolicy};
use ferrometal_plugin_sdk::types::PluginError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::driver::ROOT;
use crate::model::{Collection, Link, Manager};
use crate::quirks::{Quirk, quirks_for};

/// `/redfish/v1` as far as accounts go.
#[derive(Debug, Deserialize)]
struct Root {
    #[serde(rename = "AccountService")]
    account_service: Option<Link>,
    #[serde(rename = "Managers")]
    managers: Option<Link>,
}

/// The `AccountService` resource.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AccountService {
    accounts: Option<Link>,
    account_lockout_threshold: Option<u32>,
    account_lockout_duration: Option<u64>,
    account_lockout_counter_reset_after: Option<u64>,
    account_lockout_counter_reset_enabled: Option<bool>,
    min_password_length: Option<u32>,
    max_password_length: Option<u32>,
    password_expiration_days: Option<u32>,
}

impl AccountService {
    fn policy(&self) -> AccountPolicy {
        AccountPolicy {
            lockout_threshold: self.account_lockout_threshold,
            lockout_duration_seconds: self.account_lockout_duration,
            lockout_counter_reset_after_seconds: self.account_lockout_counter_reset_after,
            lockout_counter_reset_enabled: self.account_lockout_counter_reset_enabled,
            min_password_length: self.min_password_length,
            max_password_length: self.max_password_length,
            password_expiration_days: self.password_expiration_days,
        }
    }
}

/// A `ManagerAccount`, with the ETag it was read with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    uri: String,
    id: Option<String>,
    user_name: String,
    etag: Option<String>,
}

/// The account service of the BMC: its path's document.
fn account_service(http: &impl Transport) -> Result<(Root, AccountService), PluginError> {
    let root: Root = get_json(http, ROOT)?;
    let link = root.account_service.as_ref().ok_or_else(|| {
        PluginError::Unsupported(String::from("the Redfish service has no AccountService"))
    })?;
    let service = get_json(http, &link.id)?;
    Ok((root, service))
}

/// The BMC's account and lockout policy.
pub fn account_policy(http: &impl Transport) -> Result<AccountPolicy, PluginError> {
    account_service(http).map(|(_, service)| service.policy())
}

/// Refuses a password the published rules would refuse, before the BMC sees it (a refusal
/// costs nothing then). The message names the rule, never the password or its length.
pub fn check_password(policy: &AccountPolicy, password: &str) -> Result<(), PluginError> {
    let length = password.chars().count();
    if let Some(min) = policy.min_password_length
        && length < min as usize
    {
        return Err(PluginError::InvalidInput(format!(
            "the new password is shorter than the BMC's minimum of {min} characters (AccountService MinPasswordLength)"
        )));
    }
    if let Some(max) = policy.max_password_length
        && max > 0
        && length > max as usize
    {
        return Err(PluginError::InvalidInput(format!(
            "the new password is longer than the BMC's maximum of {max} characters (AccountService MaxPasswordLength)"
        )));
    }
    Ok(())
}

/// The quirks of the BMC itself: its first manager's manufacturer, model and firmware.
fn manager_quirks(http: &impl Transport, root: &Root) -> Result<Vec<Quirk>, PluginError> {
    let Some(managers) = &root.managers else {
        return Ok(Vec::new());
    };
    let managers: Collection = get_json(http, &managers.id)?;
    let Some(first) = managers.members.first() else {
        return Ok(Vec::new());
    };
    let manager: Manager = get_json(http, &first.id)?;
    Ok(quirks_for(
        manager.manufacturer.as_deref(),
        manager.model.as_deref(),
        manager.firmware_version.as_deref(),
    ))
}

/// The ETag of a response: the header, else the body's `@odata.etag`.
fn etag(response: &Response, body: &Value) -> Option<String> {
    response
        .header("ETag")
        .map(str::to_owned)
        .or_else(|| body["@odata.etag"].as_str().map(str::to_owned))
        .filter(|tag| !tag.is_empty())
}

fn read_account(http: &impl Transport, uri: &str) -> Result<Account, PluginError> {
    let response = http.send(Request {
        method: Method::Get,
        path: uri.to_owned(),
        headers: vec![(String::from("Accept"), String::from("application/json"))],
        body: None,
    })?;
    let body: Value = decode(&response)?;
    Ok(Account {
        uri: uri.to_owned(),
        id: body["Id"].as_str().map(str::to_owned),
        user_name: body["UserName"].as_str().unwrap_or_default().to_owned(),
        etag: etag(&response, &body),
    })
}

/// The accounts of the collection at `path`, read until `user_name` is found: that account
/// (if any) and the empty slots seen on the way (`UserName` empty; a BMC with fixed slots
/// lists them, and its slot 1 is reserved).
fn find_account(
    http: &impl Transport,
    path: &str,
    user_name: &str,
) -> Result<(Option<Account>, Vec<Account>), PluginError> {
    let collection: Collection = get_json(http, path)?;
    let mut empty = Vec::new();
    for member in collection.members {
        let account = read_account(http, &member.id)?;
        if account.user_name == user_name {
            return Ok((Some(account), empty));
        }
        if account.user_name.is_empty() && account.id.as_deref() != Some("1") {
            empty.push(account);
        }
    }
    Ok((None, empty))
}

/// Sends `body` to `uri` with `method`, with `If-Match` when the account was read with an
/// ETag (vendors that check it refuse a PATCH without it).
fn write(
    http: &impl Transport,
    method: Method,
    uri: &str,
    etag: Option<&str>,
    body: &Value,
) -> Result<Response, PluginError> {
    let mut headers = vec![
        (
            String::from("Content-Type"),
            String::from("application/json"),
        ),
        (String::from("Accept"), String::from("application/json")),
    ];
    if let Some(etag) = etag {
        headers.push((String::from("If-Match"), etag.to_owned()));
    }
    let response = http.send(Request {
        method,
        path: uri.to_owned(),
        headers,
        body: Some(body.to_string().into_bytes()),
    })?;
    check_status(&response)?;
    Ok(response)
}

/// PATCHes `patch` onto `account`; when the ETag went stale in between (412), reads the
/// account again and tries once more.
fn patch_account(
    http: &impl Transport,
    account: &Account,
    patch: &Value,
) -> Result<(), PluginError> {
    match write(
        http,
        Method::Patch,
        &account.uri,
        account.etag.as_deref(),
        patch,
    ) {
        Err(PluginError::BmcFault {
            http_status: Some(412),
            ..
        }) => {
            let fresh = read_account(http, &account.uri)?;
            write(
                http,
                Method::Patch,
                &fresh.uri,
                fresh.etag.as_deref(),
                patch,
            )
            .map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

/// The body that creates `user_name`, with the vendor's additions.
fn new_account(user_name: &str, password: &str, role: &str, quirks: &[Quirk]) -> Value {
    let mut body = json!({
        "UserName": user_name,
        "Password": password,
        "RoleId": role,
        "Enabled": true,
    });
    if quirks.contains(&Quirk::HpeLoginName) {
        body["Oem"] = json!({ "Hpe": { "LoginName": user_name } });
    }
    body
}

/// Creates `user_name` in the first empty slot (a BMC with fixed account slots).
fn fill_slot(
    http: &impl Transport,
    slots: &[Account],
    body: &Value,
) -> Result<String, PluginError> {
    let slot = slots.first().ok_or_else(|| {
        PluginError::Unsupported(String::from(
            "the BMC has fixed account slots and none is free",
        ))
    })?;
    patch_account(http, slot, body)?;
    Ok(slot.uri.clone())
}

/// Creates an account with a POST to the collection; a BMC that refuses POST (405) but has
/// empty slots gets the account in a slot instead.
fn create(
    http: &impl Transport,
    collection: &str,
    slots: &[Account],
    body: &Value,
    quirks: &[Quirk],
) -> Result<String, PluginError> {
    if quirks.contains(&Quirk::AccountSlots) {
        return fill_slot(http, slots, body);
    }
    match write(http, Method::Post, collection, None, body) {
        Ok(response) => {
            let created: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            let uri = response
                .header("Location")
                .map(|location| match location.find("/redfish/") {
                    Some(start) => location[start..].to_owned(),
                    None => location.to_owned(),
                })
                .or_else(|| created["@odata.id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Ok(uri)
        }
        Err(PluginError::BmcFault {
            http_status: Some(405),
            ..
        }) if !slots.is_empty() => fill_slot(http, slots, body),
        Err(PluginError::BmcFault {
            http_status: Some(405),
            ..
        }) => Err(PluginError::Unsupported(String::from(
            "the BMC does not allow creating accounts (POST to its Accounts answered 405)",
        ))),
        Err(error) => Err(error),
    }
}

/// Sets the password of `user_name` (creating the account with `create_with_role` when it is
/// missing) and returns what changed and the BMC's policy. The password is removed from every
/// error.
pub fn set_password(
    http: &impl Transport,
    user_name: &str,
    password: &str,
    create_with_role: Option<&str>,
) -> Result<AccountChange, PluginError> {
    set_password_unredacted(http, user_name, password, create_with_role)
        .map_err(|error| redact(error, password))
}

fn set_password_unredacted(
    http: &impl Transport,
    user_name: &str,
    password: &str,
    create_with_role: Option<&str>,
) -> Result<AccountChange, PluginError> {
    if user_name.is_empty() {
        return Err(PluginError::InvalidInput(String::from(
            "the account's user name is empty",
        )));
    }
    let (root, service) = account_service(http)?;
    let policy = service.policy();
    check_password(&policy, password)?;
    let accounts = service.accounts.as_ref().ok_or_else(|| {
        PluginError::Unsupported(String::from(
            "the AccountService lists no Accounts collection",
        ))
    })?;
    let (found, slots) = find_account(http, &accounts.id, user_name)?;
    if let Some(account) = found {
        patch_account(http, &account, &json!({ "Password": password }))?;
        return Ok(AccountChange {
            uri: account.uri,
            created: false,
            policy,
        });
    }
    let Some(role) = create_with_role else {
        return Err(PluginError::InvalidInput(format!(
            "the BMC has no account {user_name:?} (give a role to create it)"
        )));
    };
    let quirks = manager_quirks(http, &root)?;
    let body = new_account(user_name, password, role, &quirks);
    let uri = create(http, &accounts.id, &slots, &body, &quirks)?;
    Ok(AccountChange {
        uri,
        created: true,
        policy,
    })
}

/// `error` with `secret` replaced wherever it carries text.
pub fn redact(error: PluginError, secret: &str) -> PluginError {
    if secret.is_empty() {
        return error;
    }
    let clean = |text: String| text.replace(secret, "<redacted>");
    match error {
        PluginError::InvalidInput(text) => PluginError::InvalidInput(clean(text)),
        PluginError::Unsupported(text) => PluginError::Unsupported(clean(text)),
        PluginError::Unauthorized(text) => PluginError::Unauthorized(text.map(clean)),
        PluginError::Unreachable(text) => PluginError::Unreachable(text.map(clean)),
        PluginError::BmcFault {
            http_status,
            message_id,
            message,
        } => PluginError::BmcFault {
            http_status,
            message_id: message_id.map(clean),
            message: clean(message),
        },
        PluginError::Other(text) => PluginError::Other(text.map(clean)),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use ferrometal_plugin_sdk::bmc_driver::http::HttpError;

    use super::*;

    /// A canned answer as written in a test: `METHOD path`, status, headers, body.
    type Canned<'a> = (&'a str, u16, &'a [(&'a str, &'a str)], &'a str);
    /// A stored answer: status, headers, body.
    type Answer = (u16, Vec<(String, String)>, String);

    /// Canned answers per `METHOD path` (each answer in turn, the last one repeated), with
    /// headers; records every request.
    struct Bmc {
        answers: RefCell<BTreeMap<String, Vec<Answer>>>,
        sent: RefCell<Vec<Request>>,
    }

    impl Bmc {
        fn new(answers: &[Canned<'_>]) -> Self {
            let mut map: BTreeMap<_, Vec<_>> = BTreeMap::new();
            for (key, status, headers, body) in answers {
                let headers = headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                map.entry((*key).to_owned()).or_default().push((
                    *status,
                    headers,
                    (*body).to_owned(),
                ));
            }
            Self {
                answers: RefCell::new(map),
                sent: RefCell::new(Vec::new()),
            }
        }

        fn writes(&self) -> Vec<(Method, String, Option<String>, Value)> {
            self.sent
                .borrow()
                .iter()
                .filter(|r| r.method != Method::Get)
                .map(|r| {
                    let if_match = r
                        .headers
                        .iter()
                        .find(|(k, _)| k == "If-Match")
                        .map(|(_, v)| v.clone());
                    let body = serde_json::from_slice(r.body.as_deref().unwrap_or_default())
                        .unwrap_or(Value::Null);
                    (r.method, r.path.clone(), if_match, body)
                })
                .collect()
        }
    }

    impl Transport for Bmc {
        fn send(&self, request: Request) -> Result<Response, HttpError> {
            let key = format!("{:?} {}", request.method, request.path);
            self.sent.borrow_mut().push(request);
            let mut answers = self.answers.borrow_mut();
            let queue = answers
                .get_mut(&key)
                .ok_or_else(|| HttpError::Other(Some(format!("unexpected {key}"))))?;
            let (status, headers, body) = if queue.len() > 1 {
                queue.remove(0)
            } else {
                queue[0].clone()
            };
            Ok(Response {
                status,
                headers,
                body: body.into_bytes(),
            })
        }
    }

    const ROOT_DOC: &str = r#"{"AccountService":{"@odata.id":"/redfish/v1/AccountService"},
        "Managers":{"@odata.id":"/redfish/v1/Managers"}}"#;
    const SERVICE: &str = r#"{"Accounts":{"@odata.id":"/redfish/v1/AccountService/Accounts"},
        "AccountLockoutThreshold":5,"AccountLockoutDuration":60,"AccountLockoutCounterResetAfter":30,
        "AccountLockoutCounterResetEnabled":true,"MinPasswordLength":8,"MaxPasswordLength":20}"#;
    const ACCOUNTS: &str = r#"{"Members":[{"@odata.id":"/redfish/v1/AccountService/Accounts/1"},
        {"@odata.id":"/redfish/v1/AccountService/Accounts/2"},{"@odata.id":"/redfish/v1/AccountService/Accounts/3"}]}"#;
    const NO_HEADERS: &[(&str, &str)] = &[];

    fn bmc(extra: &[Canned<'_>], manufacturer: &str) -> Bmc {
        let manager = format!(r#"{{"Manufacturer":"{manufacturer}","FirmwareVersion":"1.0"}}"#);
        let manager: &'static str = Box::leak(manager.into_boxed_str());
        let mut answers: Vec<Canned<'_>> = vec![
            ("Get /redfish/v1", 200, NO_HEADERS, ROOT_DOC),
            ("Get /redfish/v1/AccountService", 200, NO_HEADERS, SERVICE),
            (
                "Get /redfish/v1/AccountService/Accounts",
                200,
                NO_HEADERS,
                ACCOUNTS,
            ),
            (
                "Get /redfish/v1/AccountService/Accounts/1",
                200,
                NO_HEADERS,
                r#"{"Id":"1","UserName":""}"#,
            ),
            (
                "Get /redfish/v1/AccountService/Accounts/2",
                200,
                &[("ETag", "W/\"a2\"")],
                r#"{"Id":"2","UserName":"root"}"#,
            ),
            (
                "Get /redfish/v1/AccountService/Accounts/3",
                200,
                NO_HEADERS,
                r#"{"Id":"3","UserName":"","@odata.etag":"\"s3\""}"#,
            ),
            (
                "Get /redfish/v1/Managers",
                200,
                NO_HEADERS,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Managers/1"}]}"#,
            ),
            ("Get /redfish/v1/Managers/1", 200, NO_HEADERS, manager),
        ];
        answers.extend_from_slice(extra);
        Bmc::new(&answers)
    }

    #[test]
    fn the_policy_is_read_from_the_account_service() {
        let policy = account_policy(&bmc(&[], "Contoso")).expect("policy");
        assert_eq!(
            policy,
            AccountPolicy {
                lockout_threshold: Some(5),
                lockout_duration_seconds: Some(60),
                lockout_counter_reset_after_seconds: Some(30),
                lockout_counter_reset_enabled: Some(true),
                min_password_length: Some(8),
                max_password_length: Some(20),
                password_expiration_days: None,
            }
        );
    }

    #[test]
    fn an_existing_account_gets_one_patch_of_its_password_with_if_match() {
        let http = bmc(
            &[(
                "Patch /redfish/v1/AccountService/Accounts/2",
                204,
                NO_HEADERS,
                "",
            )],
            "Contoso",
        );
        let change = set_password(&http, "root", "n3w-Passw0rd", None).expect("set");
        assert_eq!(change.uri, "/redfish/v1/AccountService/Accounts/2");
        assert!(!change.created);
        assert_eq!(change.policy.lockout_threshold, Some(5));
        assert_eq!(
            http.writes(),
            [(
                Method::Patch,
                String::from("/redfish/v1/AccountService/Accounts/2"),
                Some(String::from("W/\"a2\"")),
                json!({"Password": "n3w-Passw0rd"})
            )]
        );
    }

    #[test]
    fn a_password_against_the_rules_is_refused_before_the_bmc_sees_it() {
        for password in ["short", "much-too-long-for-this-bmc-1234"] {
            let http = bmc(&[], "Contoso");
            let error = set_password(&http, "root", password, None).expect_err(password);
            let PluginError::InvalidInput(message) = &error else {
                panic!("{error:?}");
            };
            assert!(message.contains("PasswordLength"), "{message}");
            assert!(!message.contains(password), "{message}");
            assert!(http.writes().is_empty());
        }
    }

    #[test]
    fn a_stale_etag_is_read_again_once() {
        let http = bmc(
            &[
                (
                    "Patch /redfish/v1/AccountService/Accounts/2",
                    412,
                    NO_HEADERS,
                    "",
                ),
                (
                    "Patch /redfish/v1/AccountService/Accounts/2",
                    204,
                    NO_HEADERS,
                    "",
                ),
            ],
            "Contoso",
        );
        // The second read of account 2 answers a newer ETag.
        http.answers
            .borrow_mut()
            .get_mut("Get /redfish/v1/AccountService/Accounts/2")
            .expect("account 2")
            .push((
                200,
                vec![(String::from("ETag"), String::from("W/\"a3\""))],
                String::from(r#"{"Id":"2","UserName":"root"}"#),
            ));
        set_password(&http, "root", "n3w-Passw0rd", None).expect("set after 412");
        let tags: Vec<Option<String>> = http.writes().into_iter().map(|w| w.2).collect();
        assert_eq!(
            tags,
            [
                Some(String::from("W/\"a2\"")),
                Some(String::from("W/\"a3\""))
            ]
        );
    }

    #[test]
    fn a_missing_account_is_created_only_with_a_role() {
        let http = bmc(&[], "Contoso");
        let error = set_password(&http, "ops", "n3w-Passw0rd", None).expect_err("no role");
        assert!(matches!(&error, PluginError::InvalidInput(m) if m.contains("\"ops\"")));

        let http = bmc(
            &[(
                "Post /redfish/v1/AccountService/Accounts",
                201,
                &[(
                    "Location",
                    "https://10.0.0.5/redfish/v1/AccountService/Accounts/9",
                )],
                "{}",
            )],
            "Contoso",
        );
        let change = set_password(&http, "ops", "n3w-Passw0rd", Some("Operator")).expect("created");
        assert!(change.created);
        assert_eq!(change.uri, "/redfish/v1/AccountService/Accounts/9");
        assert_eq!(
            http.writes(),
            [(
                Method::Post,
                String::from("/redfish/v1/AccountService/Accounts"),
                None,
                json!({"UserName": "ops", "Password": "n3w-Passw0rd", "RoleId": "Operator", "Enabled": true})
            )]
        );
    }

    #[test]
    fn a_bmc_refusing_post_gets_the_account_in_a_free_slot_but_never_slot_1() {
        let slot = (
            "Patch /redfish/v1/AccountService/Accounts/3",
            200,
            NO_HEADERS,
            "{}",
        );
        let refused = (
            "Post /redfish/v1/AccountService/Accounts",
            405,
            NO_HEADERS,
            r#"{"error":{"code":"Base.1.8.GeneralError","message":"POST not allowed"}}"#,
        );
        let http = bmc(&[refused, slot], "Contoso");
        let change = set_password(&http, "ops", "n3w-Passw0rd", Some("Operator")).expect("slot");
        assert_eq!(change.uri, "/redfish/v1/AccountService/Accounts/3");
        let writes = http.writes();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(writes[1].1, "/redfish/v1/AccountService/Accounts/3");
        assert_eq!(writes[1].2.as_deref(), Some("\"s3\""));

        // iDRAC: the quirk goes to the slot at once, without the POST.
        let http = bmc(&[slot], "Dell Inc.");
        set_password(&http, "ops", "n3w-Passw0rd", Some("Operator")).expect("slot");
        let writes = http.writes();
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert_eq!(writes[0].0, Method::Patch);
        assert_eq!(writes[0].3["UserName"], "ops");
    }

    #[test]
    fn hpe_accounts_are_created_with_a_login_name() {
        let http = bmc(
            &[(
                "Post /redfish/v1/AccountService/Accounts",
                201,
                NO_HEADERS,
                r#"{"@odata.id":"/redfish/v1/AccountService/Accounts/4"}"#,
            )],
            "HPE",
        );
        let change =
            set_password(&http, "ops", "n3w-Passw0rd", Some("Administrator")).expect("created");
        assert_eq!(change.uri, "/redfish/v1/AccountService/Accounts/4");
        assert_eq!(http.writes()[0].3["Oem"]["Hpe"]["LoginName"], "ops");
    }

    #[test]
    fn a_bmc_echoing_the_password_in_its_error_never_gets_it_out() {
        let http = bmc(
            &[(
                "Patch /redfish/v1/AccountService/Accounts/2",
                400,
                NO_HEADERS,
                r#"{"error":{"code":"Base.1.8.GeneralError","message":"x","@Message.ExtendedInfo":[
                    {"MessageId":"Base.1.8.PropertyValueFormatError","Message":"The value n3w-Passw0rd for Password is not valid"}]}}"#,
            )],
            "Contoso",
        );
        let error = set_password(&http, "root", "n3w-Passw0rd", None).expect_err("400");
        let text = format!("{error:?}");
        assert!(!text.contains("n3w-Passw0rd"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(text.contains("PropertyValueFormatError"), "{text}");
    }

    #[test]
    fn a_bmc_without_an_account_service_says_so() {
        let http = Bmc::new(&[("Get /redfish/v1", 200, NO_HEADERS, "{}")]);
        assert!(matches!(
            account_policy(&http),
            Err(PluginError::Unsupported(m)) if m.contains("AccountService")
        ));
    }
}
