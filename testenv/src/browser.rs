//! A real browser for tests of web pages: Debian's headless Chromium driven through
//! chromedriver's WebDriver protocol (a handful of JSON-over-HTTP calls on loopback, so no
//! client crate is needed).
//!
//! The browser is kept off every network but loopback: its background services (updates,
//! safe browsing, sync, metrics) are turned off, and every request to anything but loopback
//! goes to a proxy address where nothing listens. Its own log of the network requests a page
//! made ([`Browser::requests`]) lets a test check where a page went.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::net::free_port;
use crate::process::Program;
use crate::{Error, Result};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A request the browser made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What was requested.
    pub url: String,
    /// The document that asked.
    pub document: String,
}

/// A headless Chromium session. Dropping it (a failed test included) ends the browser:
/// Chromium does not die with chromedriver, so its processes are found by their profile
/// directory, which is this session's own.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    profile: PathBuf,
    // Kept last: the driver goes after the browser.
    _driver: Program,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .arg("-KILL")
            .args(["-f", "--"])
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .status();
    }
}

fn browser_error(what: impl std::fmt::Display) -> Error {
    Error::Browser(what.to_string())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a `width`×`height` window.
    pub async fn start(width: u32, height: u32) -> Result<Self> {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            if !Path::new(path).exists() {
                return Err(browser_error(format!(
                    "{path} is missing: `cargo xtask setup` installs Debian's {package}"
                )));
            }
        }
        let port = free_port()?;
        let mut command = Command::new(CHROMEDRIVER);
        command.arg(format!("--port={port}"));
        let mut driver = Program::start("chromedriver", command)?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(Error::HttpClient)?;
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if http
                .get(format!("{base}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            driver.ensure_running()?;
            if started.elapsed() > Duration::from_secs(20) {
                return Err(browser_error(format!(
                    "chromedriver did not answer within 20 s:\n{}",
                    driver.log_tail(20)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = driver.run_dir().join("profile");
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:loggingPrefs": { "performance": "ALL" },
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        format!("--window-size={width},{height}"),
                        format!("--user-data-dir={}", profile.display()),
                        // Nothing but loopback: background services off, and anything that
                        // is not loopback goes to a proxy where nothing listens.
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-default-apps",
                        "--disable-sync",
                        "--disable-domain-reliability",
                        "--disable-client-side-phishing-detection",
                        "--no-first-run",
                        "--no-pings",
                        "--dns-prefetch-disable",
                        "--metrics-recording-only",
                        "--proxy-server=http://127.0.0.1:9",
                        "--proxy-bypass-list=127.0.0.1;localhost",
                    ],
                },
            }},
        });
        let answer: Value = post(&http, &format!("{base}/session"), &capabilities).await?;
        let session = answer["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| browser_error(format!("no session in {answer}")))?
            .to_owned();
        Ok(Self {
            http,
            base,
            session,
            profile,
            _driver: driver,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}/{path}", self.base, self.session)
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        post(&self.http, &self.url("url"), &json!({ "url": url })).await?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns
    /// what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        let answer = post(
            &self.http,
            &self.url("execute/sync"),
            &json!({ "script": script, "args": args }),
        )
        .await?;
        Ok(answer["value"].clone())
    }

    /// Runs `script` until it returns something other than `null`/`false`, or fails after
    /// `limit`, naming `what`.
    pub async fn wait_for(&self, what: &str, script: &str, limit: Duration) -> Result<Value> {
        let started = Instant::now();
        loop {
            let value = self.execute(script, Vec::new()).await?;
            if !(value.is_null() || value == Value::Bool(false)) {
                return Ok(value);
            }
            if started.elapsed() > limit {
                return Err(browser_error(format!(
                    "the page did not show {what} within {limit:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<PathBuf> {
        let answer: Value = self
            .http
            .get(self.url("screenshot"))
            .send()
            .await
            .map_err(browser_error)?
            .json()
            .await
            .map_err(browser_error)?;
        let encoded = answer["value"]
            .as_str()
            .ok_or_else(|| browser_error("no screenshot in the answer"))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| browser_error(format!("the screenshot is not base64: {error}")))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
        }
        std::fs::write(path, png).map_err(Error::io(format!("write {}", path.display())))?;
        Ok(path.to_owned())
    }

    /// Every request the browser made since the previous call (from its network log):
    /// the URL requested and the URL of the document that asked (the browser's own pages,
    /// such as its new tab page before the first navigation, are `chrome://…`).
    pub async fn requests(&self) -> Result<Vec<Request>> {
        let answer = post(
            &self.http,
            &self.url("se/log"),
            &json!({ "type": "performance" }),
        )
        .await?;
        let mut urls = Vec::new();
        for entry in answer["value"].as_array().into_iter().flatten() {
            let Some(message) = entry["message"].as_str() else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<Value>(message) else {
                continue;
            };
            let message = &message["message"];
            if message["method"] == "Network.requestWillBeSent"
                && let Some(url) = message["params"]["request"]["url"].as_str()
            {
                urls.push(Request {
                    url: url.to_owned(),
                    document: message["params"]["documentURL"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
        }
        Ok(urls)
    }

    /// Ends the session (the driver ends when this is dropped).
    pub async fn close(self) -> Result<()> {
        self.http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await
            .map_err(browser_error)?;
        Ok(())
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value> {
    let response = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(browser_error)?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(browser_error)?;
    if !status.is_success() {
        return Err(browser_error(format!(
            "WebDriver {url} answered {status}: {}",
            answer["value"]["message"].as_str().unwrap_or_default()
        )));
    }
    Ok(answer)
}
