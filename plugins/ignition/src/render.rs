//! Settings and rendering, as pure functions (unit-tested natively).

use ferrometal_plugin_sdk::ignition_generator::IgnitionRequest;
use serde_json::{Value, json};

/// Where metalprobe is installed in the discovery system.
const PROBE_PATH: &str = "/usr/local/bin/metalprobe";
/// Where the per-boot token is stored (root only).
const TOKEN_PATH: &str = "/etc/metalprobe/token";

/// What the operator configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// URL of the metalprobe binary.
    pub metalprobe_url: String,
    /// Expected sha512 of it, hex.
    pub metalprobe_sha512: Option<String>,
    /// Debugging user.
    pub username: String,
    /// Crypt hash of the debugging user's password (console login).
    pub password_hash: Option<String>,
    /// SSH public keys of the debugging user, besides those the request carries.
    pub ssh_authorized_keys: Vec<String>,
}

impl Options {
    /// Reads and checks the settings.
    pub fn from_settings(settings: &[(String, String)]) -> Result<Self, String> {
        let mut options = Self {
            metalprobe_url: String::new(),
            metalprobe_sha512: None,
            username: String::from("metal"),
            password_hash: None,
            ssh_authorized_keys: Vec::new(),
        };
        for (key, value) in settings {
            match key.as_str() {
                "metalprobe-url" => options.metalprobe_url = value.clone(),
                "metalprobe-sha512" => options.metalprobe_sha512 = Some(value.to_ascii_lowercase()),
                "username" => options.username = value.clone(),
                "password-hash" => options.password_hash = Some(value.clone()),
                "ssh-authorized-keys" => {
                    options.ssh_authorized_keys = ssh_keys(value)?;
                }
                other => {
                    return Err(format!(
                        "unknown setting {other:?}; the ignition plugin takes metalprobe-url, metalprobe-sha512, username, password-hash and ssh-authorized-keys"
                    ));
                }
            }
        }
        if options.metalprobe_url.is_empty() {
            return Err(String::from(
                "the setting \"metalprobe-url\" (where the discovery system downloads metalprobe) is required",
            ));
        }
        check_url("metalprobe-url", &options.metalprobe_url)?;
        if let Some(hash) = &options.metalprobe_sha512
            && (hash.len() != 128 || !hash.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(String::from("metalprobe-sha512 must be 128 hex digits"));
        }
        let valid_user = !options.username.is_empty()
            && options.username.len() <= 32
            && options
                .username
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid_user {
            return Err(format!(
                "username {:?} must be 1-32 characters of a-z, 0-9, '_' or '-'",
                options.username
            ));
        }
        Ok(options)
    }
}

/// An http(s) URL without characters that would break a unit file or a shell.
fn check_url(what: &str, url: &str) -> Result<(), String> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let clean = url
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '`' | '$'));
    if scheme_ok && clean {
        Ok(())
    } else {
        Err(format!(
            "{what} {url:?} must be an http:// or https:// URL without quotes, spaces or shell characters"
        ))
    }
}

/// `%` is systemd's specifier character; a literal one is written `%%`.
fn systemd_escape(text: &str) -> String {
    text.replace('%', "%%")
}

/// An RFC 2397 data URL for `text`.
fn data_url(text: &str) -> String {
    let mut url = String::from("data:,");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

/// The `ssh-authorized-keys` setting: one OpenSSH public key per line (blank lines and
/// `#` comments skipped). A line that is not `<type> <base64> [comment]` is refused, naming
/// its line number, so a pasted private key or a truncated line never reaches a server.
fn ssh_keys(value: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    for (index, line) in value.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let blob = fields.next().unwrap_or_default();
        let known_kind =
            kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-");
        let base64 = !blob.is_empty()
            && blob
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
        if !known_kind || !base64 {
            return Err(format!(
                "ssh-authorized-keys line {}: expected an OpenSSH public key (\"ssh-ed25519 AAAA… comment\")",
                index + 1
            ));
        }
        keys.push(line.to_owned());
    }
    Ok(keys)
}

/// The Ignition document for `request`.
pub fn render(request: &IgnitionRequest, options: &Options) -> Result<String, String> {
    let uuid = &request.facts.system_uuid;
    let valid_uuid = uuid.len() == 36 && uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if !valid_uuid {
        return Err(format!("system UUID {uuid:?} is not a UUID"));
    }
    check_url("registry-url", &request.registry_url)?;
    if request.boot_token.is_empty() || request.boot_token.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(String::from(
            "the boot token must be non-empty printable ASCII",
        ));
    }
    let unit = format!(
        "[Unit]\n\
         Description=ferrometal hardware probe\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={PROBE_PATH} --registry-url={} --server-uuid={uuid} --token-file={TOKEN_PATH}\n\
         Restart=on-failure\n\
         RestartSec=20\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        systemd_escape(&request.registry_url),
    );
    let mut probe_contents = json!({ "source": options.metalprobe_url });
    if let Some(hash) = &options.metalprobe_sha512 {
        probe_contents["verification"] = json!({ "hash": format!("sha512-{hash}") });
    }
    let mut files = vec![
        json!({ "path": PROBE_PATH, "mode": 0o755, "overwrite": true, "contents": probe_contents }),
        json!({ "path": TOKEN_PATH, "mode": 0o600, "overwrite": true, "contents": { "source": data_url(&request.boot_token) } }),
    ];
    if let Some(hostname) = &request.facts.hostname {
        files.push(json!({ "path": "/etc/hostname", "mode": 0o644, "overwrite": true, "contents": { "source": data_url(hostname) } }));
    }
    let mut user = json!({ "name": options.username, "groups": ["wheel"] });
    let mut keys: Vec<&String> = request.ssh_authorized_keys.iter().collect();
    for key in &options.ssh_authorized_keys {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if !keys.is_empty() {
        user["sshAuthorizedKeys"] = json!(keys);
    }
    if let Some(hash) = &options.password_hash {
        user["passwordHash"] = json!(hash);
    }
    let document: Value = json!({
        "ignition": { "version": "3.4.0" },
        "passwd": { "users": [user] },
        "storage": { "files": files },
        "systemd": { "units": [{ "name": "metalprobe.service", "enabled": true, "contents": unit }] },
    });
    serde_json::to_string(&document).map_err(|error| format!("cannot encode the ignition: {error}"))
}

#[cfg(test)]
mod tests {
    use ferrometal_plugin_sdk::ignition_generator::ServerFacts;

    use super::*;

    fn request() -> IgnitionRequest {
        IgnitionRequest {
            facts: ServerFacts {
                system_uuid: String::from("8f0b8c34-2b1e-4c5e-9a61-0d9a3c2f7e01"),
                hostname: Some(String::from("node-1")),
                macs: vec![String::from("52:54:00:12:34:56")],
                labels: Vec::new(),
            },
            registry_url: String::from("http://10.0.0.1:8082/registry?x=%41"),
            boot_token: String::from("tok+en/1="),
            ssh_authorized_keys: vec![String::from("ssh-ed25519 AAAA admin@example")],
            settings: Vec::new(),
        }
    }

    fn options() -> Options {
        Options::from_settings(&[(
            String::from("metalprobe-url"),
            String::from("http://10.0.0.1:8082/metalprobe"),
        )])
        .expect("valid")
    }

    #[test]
    fn the_same_request_renders_the_same_bytes() {
        assert_eq!(
            render(&request(), &options()),
            render(&request(), &options())
        );
    }

    #[test]
    fn the_unit_runs_metalprobe_with_registry_uuid_and_token_file() {
        let document: Value =
            serde_json::from_str(&render(&request(), &options()).expect("render")).expect("json");
        let unit = document["systemd"]["units"][0]["contents"]
            .as_str()
            .expect("unit");
        assert!(unit.contains(
            "ExecStart=/usr/local/bin/metalprobe --registry-url=http://10.0.0.1:8082/registry?x=%%41 --server-uuid=8f0b8c34-2b1e-4c5e-9a61-0d9a3c2f7e01 --token-file=/etc/metalprobe/token"
        ), "{unit}");
        assert!(
            !unit.contains("tok+en"),
            "the token is not on the command line"
        );
    }

    #[test]
    fn the_token_is_a_root_only_file() {
        let document: Value =
            serde_json::from_str(&render(&request(), &options()).expect("render")).expect("json");
        let token = &document["storage"]["files"][1];
        assert_eq!(token["path"], TOKEN_PATH);
        assert_eq!(token["mode"], 0o600);
        assert_eq!(token["contents"]["source"], "data:,tok%2Ben%2F1%3D");
    }

    #[test]
    fn settings_are_checked() {
        for (settings, expected) in [
            (vec![], "metalprobe-url"),
            (
                vec![("metalprobe-url", "file:///x")],
                "must be an http:// or https:// URL",
            ),
            (
                vec![("metalprobe-url", "http://x/p"), ("colour", "blue")],
                "unknown setting \"colour\"",
            ),
            (
                vec![
                    ("metalprobe-url", "http://x/p"),
                    ("metalprobe-sha512", "abc"),
                ],
                "128 hex digits",
            ),
            (
                vec![("metalprobe-url", "http://x/p"), ("username", "Root User")],
                "username",
            ),
            (
                vec![
                    ("metalprobe-url", "http://x/p"),
                    (
                        "ssh-authorized-keys",
                        "ssh-ed25519 AAAA ok\n-----BEGIN OPENSSH PRIVATE KEY-----",
                    ),
                ],
                "ssh-authorized-keys line 2",
            ),
        ] {
            let settings: Vec<(String, String)> = settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let error = Options::from_settings(&settings).expect_err(expected);
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn keys_from_settings_join_the_requests_once() {
        let options = Options::from_settings(&[
            (
                String::from("metalprobe-url"),
                String::from("http://10.0.0.1:8082/metalprobe"),
            ),
            (
                String::from("ssh-authorized-keys"),
                String::from(
                    "# comment\n\nssh-ed25519 AAAA admin@example\necdsa-sha2-nistp256 AAAAE2 ops@example\n",
                ),
            ),
        ])
        .expect("valid");
        let document: Value =
            serde_json::from_str(&render(&request(), &options).expect("render")).expect("JSON");
        assert_eq!(
            document["passwd"]["users"][0]["sshAuthorizedKeys"],
            json!([
                "ssh-ed25519 AAAA admin@example",
                "ecdsa-sha2-nistp256 AAAAE2 ops@example"
            ])
        );
    }

    #[test]
    fn a_registry_url_that_could_break_the_unit_is_refused() {
        let mut request = request();
        request.registry_url = String::from("http://x/ $(reboot)");
        assert!(render(&request, &options()).is_err());
    }
}
