//! HTTP to the BMC of the current call, and JSON helpers over it.
//!
//! Driver logic should take `&impl Transport` rather than a [`BmcHttp`], so that it can be
//! unit-tested natively with a transport that replays canned responses.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Credential;
use super::bindings::ferrometal::plugin::bmc_http as wit;
use crate::types::PluginError;

/// Request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

/// A request to the BMC. `path` is an absolute path plus query (`/redfish/v1/Systems`),
/// never a URL: the host fixes the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Extra headers (the host refuses `Host` and, when it authenticates, `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Option<Vec<u8>>,
}

/// The BMC's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body (capped by the host).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why a request did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused the request (e.g. a path that is not absolute).
    Denied(String),
    /// The call's deadline passed.
    Timeout,
    /// No connection.
    Connect(String),
    /// TLS failed (untrusted certificate, ...).
    Tls(String),
    /// The response exceeded the host's cap of this many bytes.
    ResponseTooLarge(u64),
    /// Anything else.
    Other(Option<String>),
}

impl From<HttpError> for PluginError {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::Denied(why) => {
                PluginError::Other(Some(format!("request denied by the host: {why}")))
            }
            HttpError::Timeout => PluginError::Unreachable(Some(String::from("request timed out"))),
            HttpError::Connect(why) => PluginError::Unreachable(Some(why)),
            HttpError::Tls(why) => PluginError::Unreachable(Some(format!("TLS: {why}"))),
            HttpError::ResponseTooLarge(cap) => PluginError::BmcFault {
                http_status: None,
                message_id: None,
                message: format!("response larger than {cap} bytes"),
            },
            HttpError::Other(why) => PluginError::Other(why),
        }
    }
}

/// Sends requests to a BMC. Implemented by [`BmcHttp`] in plugins, and by test doubles in
/// authors' native unit tests.
pub trait Transport {
    /// Sends one request.
    fn send(&self, request: Request) -> Result<Response, HttpError>;
}

/// How [`BmcHttp`] authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No authentication.
    None,
    /// HTTP Basic with the call's credential, added by the host.
    Basic,
    /// A session token the driver obtained (the host sends it as `X-Auth-Token`, Redfish's
    /// session header).
    Bearer(String),
}

/// The host's HTTP client for the BMC of the current call.
pub struct BmcHttp<'a> {
    credential: &'a Credential,
    auth: Auth,
}

impl<'a> BmcHttp<'a> {
    pub(super) fn new(credential: &'a Credential, auth: Auth) -> Self {
        Self { credential, auth }
    }

    /// The same client with other authentication.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
}

impl Transport for BmcHttp<'_> {
    fn send(&self, request: Request) -> Result<Response, HttpError> {
        let auth = match &self.auth {
            Auth::None => wit::Auth::None,
            Auth::Basic => wit::Auth::Basic(self.credential),
            Auth::Bearer(token) => wit::Auth::Bearer(token.clone()),
        };
        let request = wit::Request {
            method: match request.method {
                Method::Get => wit::Method::Get,
                Method::Head => wit::Method::Head,
                Method::Post => wit::Method::Post,
                Method::Put => wit::Method::Put,
                Method::Patch => wit::Method::Patch,
                Method::Delete => wit::Method::Delete,
            },
            path_and_query: request.path,
            headers: request.headers,
            body: request.body,
            auth,
        };
        wit::send(&request)
            .map(|response| Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
            })
            .map_err(|error| match error {
                wit::HttpError::Denied(why) => HttpError::Denied(why),
                wit::HttpError::Timeout => HttpError::Timeout,
                wit::HttpError::Connect(why) => HttpError::Connect(why),
                wit::HttpError::Tls(why) => HttpError::Tls(why),
                wit::HttpError::ResponseTooLarge(cap) => HttpError::ResponseTooLarge(cap),
                wit::HttpError::Other(why) => HttpError::Other(why),
            })
    }
}

/// GETs `path` and decodes the JSON body.
pub fn get_json<T: DeserializeOwned>(
    transport: &impl Transport,
    path: &str,
) -> Result<T, PluginError> {
    let response = transport.send(Request {
        method: Method::Get,
        path: path.to_owned(),
        headers: vec![(String::from("Accept"), String::from("application/json"))],
        body: None,
    })?;
    decode(&response)
}

/// Sends `body` as JSON with `method` (POST, PATCH, PUT) and returns the response if its
/// status is a success; errors are mapped like [`get_json`]'s.
pub fn send_json<B: Serialize>(
    transport: &impl Transport,
    method: Method,
    path: &str,
    body: &B,
) -> Result<Response, PluginError> {
    let body = serde_json::to_vec(body)
        .map_err(|error| PluginError::InvalidInput(format!("cannot encode request: {error}")))?;
    let response = transport.send(Request {
        method,
        path: path.to_owned(),
        headers: vec![
            (
                String::from("Content-Type"),
                String::from("application/json"),
            ),
            (String::from("Accept"), String::from("application/json")),
        ],
        body: Some(body),
    })?;
    check_status(&response)?;
    Ok(response)
}

/// Fails with the matching [`PluginError`] unless the status is 2xx: 401/403 →
/// `Unauthorized`, anything else → `BmcFault` with the Redfish message id when the body has
/// one.
pub fn check_status(response: &Response) -> Result<(), PluginError> {
    match response.status {
        200..=299 => Ok(()),
        401 | 403 => Err(PluginError::Unauthorized(Some(format!(
            "the BMC answered {}",
            response.status
        )))),
        status => {
            let (message_id, message) = redfish_message(&response.body);
            Err(PluginError::BmcFault {
                http_status: Some(status),
                message_id,
                message: message.unwrap_or_else(|| body_excerpt(&response.body)),
            })
        }
    }
}

/// Decodes a successful JSON response; an HTML or otherwise non-JSON body is a BMC fault.
pub fn decode<T: DeserializeOwned>(response: &Response) -> Result<T, PluginError> {
    check_status(response)?;
    serde_json::from_slice(&response.body).map_err(|error| PluginError::BmcFault {
        http_status: Some(response.status),
        message_id: None,
        message: format!(
            "the BMC did not answer with the expected JSON ({error}): {}",
            body_excerpt(&response.body)
        ),
    })
}

/// The Redfish error's first `MessageId` and message, if the body is a Redfish error.
fn redfish_message(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let error = &value["error"];
    let info = &error["@Message.ExtendedInfo"][0];
    let message_id = info["MessageId"]
        .as_str()
        .or_else(|| error["code"].as_str())
        .map(str::to_owned);
    let message = info["Message"]
        .as_str()
        .or_else(|| error["message"].as_str())
        .map(str::to_owned);
    (message_id, message)
}

fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![(
                String::from("Content-Type"),
                String::from("application/json"),
            )],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_redfish_error_becomes_a_bmc_fault_with_its_message_id() {
        let body = r#"{"error":{"code":"Base.1.8.GeneralError","message":"x","@Message.ExtendedInfo":[{"MessageId":"Base.1.8.PropertyValueNotInList","Message":"The value Foo is not in the list"}]}}"#;
        let error = check_status(&response(400, body)).expect_err("400");
        assert_eq!(
            error,
            PluginError::BmcFault {
                http_status: Some(400),
                message_id: Some(String::from("Base.1.8.PropertyValueNotInList")),
                message: String::from("The value Foo is not in the list"),
            }
        );
    }

    #[test]
    fn unauthorized_statuses_map_to_unauthorized() {
        assert!(matches!(
            check_status(&response(401, "")),
            Err(PluginError::Unauthorized(_))
        ));
        assert!(matches!(
            check_status(&response(403, "")),
            Err(PluginError::Unauthorized(_))
        ));
    }

    #[test]
    fn an_html_body_is_a_bmc_fault_not_a_panic() {
        let error =
            decode::<serde_json::Value>(&response(200, "<html>Login</html>")).expect_err("html");
        match error {
            PluginError::BmcFault { message, .. } => {
                assert!(message.contains("<html>Login</html>"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_header_is_found_case_insensitively() {
        let response = response(200, "{}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.header("location"), None);
    }
}
