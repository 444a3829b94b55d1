//! Redfish sessions: log in once per call, reuse the token for every request of the call, and
//! always log out.

use ferrometal_plugin_sdk::bmc_driver::http::{Method, Request, Response, Transport, check_status};
use ferrometal_plugin_sdk::types::PluginError;
use serde_json::json;

/// An open session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `X-Auth-Token`.
    pub token: String,
    /// Where to DELETE to log out.
    pub location: String,
}

/// Creates a session at `sessions` (usually `/redfish/v1/SessionService/Sessions`).
pub fn login(
    http: &impl Transport,
    sessions: &str,
    username: &str,
    password: &str,
) -> Result<Session, PluginError> {
    let body = json!({ "UserName": username, "Password": password }).to_string();
    let response = http.send(Request {
        method: Method::Post,
        path: sessions.to_owned(),
        headers: vec![(
            String::from("Content-Type"),
            String::from("application/json"),
        )],
        body: Some(body.into_bytes()),
    })?;
    check_status(&response)?;
    let token = response
        .header("X-Auth-Token")
        .ok_or_else(|| fault(&response, "the session response has no X-Auth-Token"))?
        .to_owned();
    let location = response
        .header("Location")
        .ok_or_else(|| fault(&response, "the session response has no Location"))?;
    // Some BMCs answer with an absolute URL; only its path is ours to use.
    let location = match location.find("/redfish/") {
        Some(start) => location[start..].to_owned(),
        None => location.to_owned(),
    };
    Ok(Session { token, location })
}

fn fault(response: &Response, message: &str) -> PluginError {
    PluginError::BmcFault {
        http_status: Some(response.status),
        message_id: None,
        message: message.to_owned(),
    }
}

/// Deletes the session. Failures are ignored: the BMC expires sessions by itself, and the
/// call's result matters more than a failed logout.
pub fn logout(http: &impl Transport, session: &Session) {
    let _ = http.send(Request {
        method: Method::Delete,
        path: session.location.clone(),
        headers: Vec::new(),
        body: None,
    });
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use ferrometal_plugin_sdk::bmc_driver::http::HttpError;

    use super::*;

    struct Bmc {
        sent: RefCell<Vec<Request>>,
        location: &'static str,
    }

    impl Transport for Bmc {
        fn send(&self, request: Request) -> Result<Response, HttpError> {
            self.sent.borrow_mut().push(request);
            Ok(Response {
                status: 201,
                headers: vec![
                    (String::from("X-Auth-Token"), String::from("tok")),
                    (String::from("Location"), String::from(self.location)),
                ],
                body: Vec::new(),
            })
        }
    }

    #[test]
    fn login_takes_token_and_location_and_logout_deletes_it() {
        let bmc = Bmc {
            sent: RefCell::new(Vec::new()),
            location: "https://10.0.0.5/redfish/v1/SessionService/Sessions/7",
        };
        let session =
            login(&bmc, "/redfish/v1/SessionService/Sessions", "admin", "pw").expect("login");
        assert_eq!(session.token, "tok");
        assert_eq!(session.location, "/redfish/v1/SessionService/Sessions/7");
        logout(&bmc, &session);
        let sent = bmc.sent.borrow();
        assert_eq!(
            sent[0].body.as_deref(),
            Some(&br#"{"Password":"pw","UserName":"admin"}"#[..])
        );
        assert_eq!(sent[1].method, Method::Delete);
        assert_eq!(sent[1].path, "/redfish/v1/SessionService/Sessions/7");
    }
}
