//! The fleet view: a read-only page at `/ui` on the metrics port, rendered from the
//! operator's watch caches (no API request per viewer), with live updates over Server-Sent
//! Events. Every asset is in the binary; the page loads nothing from anywhere else.
//!
//! - [`view`]: what the page shows, built from the caches (pure);
//! - [`auth`]: who may look (TokenReview + SubjectAccessReview, sessions);
//! - [`events`]: the Events this process published, per object;
//! - [`timeline`]: the discovery steps this process saw happen, per Server;
//! - this module: the feed (one build per interval for every viewer) and the HTTP routes.

pub mod auth;
pub mod events;
pub mod timeline;
pub mod view;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use self::auth::{Lookup, Refusal, Reviewer, Sessions, Viewer};
use self::events::RecentEvents;
use self::view::{Fleet, FleetChange, Tracker};
use crate::api::{BMC, Server};
use crate::controllers::caches::Caches;

/// The session cookie's name.
pub const COOKIE: &str = "ferrometal-ui";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The page's policy: everything from this origin, nothing inline, no frames.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// How the fleet view behaves.
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// How long a Server may stay New, Initial or Discovery before it is flagged stuck.
    pub stuck_after: Duration,
    /// How often the view is rebuilt and changes are sent to viewers.
    pub interval: Duration,
    /// How long a session lasts.
    pub session_lifetime: Duration,
    /// How often a session's token is reviewed again.
    pub review_every: Duration,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            stuck_after: Duration::from_secs(30 * 60),
            interval: Duration::from_secs(1),
            session_lifetime: Duration::from_secs(8 * 3600),
            review_every: Duration::from_secs(5 * 60),
        }
    }
}

/// One build of the fleet, numbered, with what changed since the build before it, that
/// change already in the stream's JSON (made once for every viewer, not once per viewer).
#[derive(Debug, Default)]
struct Published {
    version: u64,
    fleet: Fleet,
    change: String,
}

/// The fleet view's state, shared by its routes and its feed.
pub struct Ui {
    caches: Arc<Caches>,
    is_leader: Arc<dyn Fn() -> bool + Send + Sync>,
    reviewer: Reviewer,
    sessions: Sessions,
    tracker: Mutex<Tracker>,
    feed: watch::Sender<Arc<Published>>,
    settings: UiSettings,
}

impl Ui {
    /// The view of `caches`; `client` reviews tokens; `is_leader` says whether this replica
    /// runs the controllers (a standby's caches stay empty).
    pub fn new(
        caches: Arc<Caches>,
        client: kube::Client,
        is_leader: Arc<dyn Fn() -> bool + Send + Sync>,
        settings: UiSettings,
    ) -> Arc<Self> {
        let (feed, _) = watch::channel(Arc::new(Published::default()));
        Arc::new(Self {
            caches,
            is_leader,
            reviewer: Reviewer::new(client),
            sessions: Sessions::new(settings.session_lifetime, settings.review_every, 1024),
            tracker: Mutex::new(Tracker::default()),
            feed,
            settings,
        })
    }

    /// Rebuilds the view every interval until the process ends, whether anyone watches or
    /// not: the time in state and the fetch records of a discovery (whose boot
    /// configuration is deleted at completion) are only seen by looking. A Server unchanged
    /// since the previous build costs a map lookup.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.rebuild(Timestamp::now());
            tokio::time::sleep(self.settings.interval).await;
        }
    }

    /// Builds the view from the caches now and publishes what changed.
    fn rebuild(&self, now: Timestamp) {
        let servers = self.caches.servers.state();
        let bmcs = self.caches.bmcs.state();
        let configurations = self.caches.boot_configurations.state();
        let fleet = self
            .tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fleet(
                &servers,
                &bmcs,
                &configurations,
                now,
                self.settings.stuck_after,
            );
        let previous = self.feed.borrow().clone();
        let change = previous.fleet.diff(&fleet);
        if change.is_empty() && change.counts == previous.fleet.counts && previous.version > 0 {
            return;
        }
        let version = previous.version + 1;
        let change = stream_message(version, false, &change);
        self.feed.send_replace(Arc::new(Published {
            version,
            fleet,
            change,
        }));
    }

    fn meta(&self, viewer: &Viewer) -> serde_json::Value {
        json!({
            "user": viewer.user,
            "leader": (self.is_leader)(),
            "stuckAfterSeconds": self.settings.stuck_after.as_secs(),
            "intervalMillis": u64::try_from(self.settings.interval.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Who the request is from: its session cookie or bearer token, reviewed when due.
    async fn viewer(&self, headers: &HeaderMap) -> Result<Viewer, Response> {
        let (secret, bearer) = match (session_cookie(headers), bearer_token(headers)) {
            (_, Some(token)) => (token, true),
            (Some(id), None) => (id, false),
            (None, None) => return Err(refused(StatusCode::UNAUTHORIZED, "log in with a token")),
        };
        let now = Instant::now();
        match self.sessions.lookup(&secret, now) {
            Lookup::Allowed(viewer) => Ok(viewer),
            Lookup::Review(token) => {
                let outcome = self.reviewer.review(&token).await;
                self.sessions.reviewed(&secret, &outcome, now);
                outcome.map_err(refusal)
            }
            Lookup::Unknown if bearer => {
                let outcome = self.reviewer.review(&secret).await;
                if let Ok(viewer) = &outcome {
                    self.sessions.start(&secret, viewer.clone(), &secret, now);
                }
                outcome.map_err(refusal)
            }
            Lookup::Unknown => Err(refused(
                StatusCode::UNAUTHORIZED,
                "the session ended; log in again",
            )),
        }
    }
}

/// The routes under `/ui`.
pub fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/assets/app.js", get(app_js))
        .route("/ui/assets/app.css", get(app_css))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/api/session", get(session))
        .route("/ui/api/fleet", get(fleet))
        .route("/ui/api/stream", get(stream))
        .route("/ui/api/servers/{name}", get(server))
        .with_state(ui)
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    page("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    page("text/css; charset=utf-8", APP_CSS)
}

fn refused(status: StatusCode, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn refusal(refusal: Refusal) -> Response {
    let status = match refusal {
        Refusal::NotAuthenticated => StatusCode::UNAUTHORIZED,
        Refusal::NotAuthorized { .. } => StatusCode::FORBIDDEN,
        Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    refused(status, &refusal.to_string())
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

/// The body of `POST /ui/login`.
#[derive(Deserialize)]
struct Login {
    token: String,
}

/// The longest token accepted (service-account tokens are about 1 KiB).
const MAX_TOKEN: usize = 16 * 1024;

async fn login(State(ui): State<Arc<Ui>>, headers: HeaderMap, body: String) -> Response {
    // A form on another site cannot send JSON (nor read the answer): with the SameSite
    // cookie, nothing here can be triggered from elsewhere.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the token as JSON: {\"token\": \"…\"}",
        );
    }
    let Ok(Login { token }) = serde_json::from_str::<Login>(&body) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "send the token as JSON: {\"token\": \"…\"}",
        );
    };
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN {
        return refused(StatusCode::BAD_REQUEST, "that is not a token");
    }
    match ui.reviewer.review(token).await {
        Ok(viewer) => {
            let id = match crate::random_token() {
                Ok(id) => id,
                Err(error) => {
                    tracing::error!(%error, "cannot make a fleet view session id");
                    return refused(StatusCode::INTERNAL_SERVER_ERROR, "cannot start a session");
                }
            };
            ui.sessions
                .start(&id, viewer.clone(), token, Instant::now());
            tracing::info!(user = %viewer.user, "fleet view: logged in");
            let cookie = format!(
                "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
                ui.settings.session_lifetime.as_secs()
            );
            let mut response = axum::Json(ui.meta(&viewer)).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(refusal_) => {
            tracing::info!(reason = %refusal_, "fleet view: login refused");
            refusal(refusal_)
        }
    }
}

async fn logout(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        ui.sessions.end(&id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ferrometal-ui=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// Who is looking (a cheap check that the session is alive).
async fn session(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    match ui.viewer(&headers).await {
        Ok(viewer) => no_store(axum::Json(ui.meta(&viewer))),
        Err(response) => response,
    }
}

/// The whole fleet and who is looking, as one JSON document.
async fn fleet(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let viewer = match ui.viewer(&headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let published = ui.feed.borrow().clone();
    no_store(axum::Json(json!({
        "meta": ui.meta(&viewer),
        "version": published.version,
        "fleet": published.fleet.as_change(),
    })))
}

fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A message on the stream.
#[derive(Serialize)]
struct StreamMessage<'a> {
    version: u64,
    /// Whether this replaces everything the viewer has (`true`) or changes it.
    full: bool,
    fleet: &'a FleetChange,
}

fn stream_message(version: u64, full: bool, fleet: &FleetChange) -> String {
    serde_json::to_string(&StreamMessage {
        version,
        full,
        fleet,
    })
    .unwrap_or_default()
}

/// Live updates: the whole fleet first, then what changed at each build. A viewer that falls
/// behind gets the difference from what it last had, never a backlog.
async fn stream(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let viewer = match ui.viewer(&headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let meta = ui.meta(&viewer);
    let receiver = ui.feed.subscribe();
    no_store(Sse::new(updates(meta, receiver)).keep_alive(KeepAlive::default()))
}

fn updates(
    meta: serde_json::Value,
    receiver: watch::Receiver<Arc<Published>>,
) -> impl Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    /// Where a viewer's stream is.
    enum Position {
        /// Nothing sent yet.
        Start(serde_json::Value),
        /// The build last sent.
        Sent(Arc<Published>),
    }
    futures::stream::unfold(
        (Position::Start(meta), receiver),
        |(position, mut receiver)| async move {
            match position {
                Position::Start(meta) => {
                    let first = receiver.borrow_and_update().clone();
                    let events = vec![
                        Ok(SseEvent::default().event("meta").data(meta.to_string())),
                        fleet_event(stream_message(
                            first.version,
                            true,
                            &first.fleet.as_change(),
                        )),
                    ];
                    Some((events, (Position::Sent(first), receiver)))
                }
                Position::Sent(sent) => {
                    // Ends when the feed does (shutdown); a viewer that went away drops the
                    // stream, and this with it.
                    receiver.changed().await.ok()?;
                    let next = receiver.borrow_and_update().clone();
                    let event = if next.version == sent.version + 1 {
                        fleet_event(next.change.clone())
                    } else {
                        // Fell behind: what changed since what it has, not a backlog.
                        fleet_event(stream_message(
                            next.version,
                            false,
                            &sent.fleet.diff(&next.fleet),
                        ))
                    };
                    Some((vec![event], (Position::Sent(next), receiver)))
                }
            }
        },
    )
    .flat_map(futures::stream::iter)
}

fn fleet_event(message: String) -> Result<SseEvent, std::convert::Infallible> {
    Ok(SseEvent::default().event("fleet").data(message))
}

/// One Server's page: the row, inventory, conditions, its BMC, recent Events and the
/// discovery timeline.
async fn server(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = ui.viewer(&headers).await {
        return response;
    }
    let Some(server) = ui.caches.servers.get(&ObjectRef::<Server>::new(&name)) else {
        return refused(StatusCode::NOT_FOUND, "no such Server");
    };
    let bmc = server
        .spec
        .bmc_ref
        .as_ref()
        .and_then(|r| ui.caches.bmcs.get(&ObjectRef::<BMC>::new(&r.name)));
    let row = ui.feed.borrow().fleet.servers.get(&name).cloned();
    let timeline = ui
        .tracker
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .timeline(&server, timeline::DiscoverySteps::global());
    let status = server.status.clone().unwrap_or_default();
    no_store(axum::Json(json!({
        "name": name,
        "row": row,
        "systemUUID": server.spec.system_uuid,
        "manufacturer": status.manufacturer,
        "model": status.model,
        "serialNumber": status.serial_number,
        "biosVersion": status.bios_version,
        "powerState": status.power_state,
        "totalSystemMemory": status.total_system_memory,
        "processors": status.processors,
        "storages": status.storages,
        "networkInterfaces": status.network_interfaces,
        "conditions": status.conditions,
        "bmc": bmc.map(|bmc| json!({
            "name": kube::ResourceExt::name_any(&*bmc),
            "status": bmc.status.as_ref().map(|s| json!({
                "ip": s.ip,
                "macAddress": s.mac_address,
                "manufacturer": s.manufacturer,
                "model": s.model,
                "firmwareVersion": s.firmware_version,
                "conditions": s.conditions,
            })),
        })),
        "events": RecentEvents::global().of("Server", &name),
        "timeline": timeline,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        headers
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(
            session_cookie(&headers(&[("cookie", "a=1; ferrometal-ui=abc; b=2")])),
            Some(String::from("abc"))
        );
        assert_eq!(session_cookie(&headers(&[("cookie", "a=1")])), None);
        assert_eq!(
            session_cookie(&headers(&[("cookie", "ferrometal-ui=")])),
            None
        );
    }

    #[test]
    fn a_bearer_token_is_taken_from_the_authorization_header_only() {
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer tok")])),
            Some(String::from("tok"))
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Basic x")])),
            None
        );
        assert_eq!(bearer_token(&headers(&[])), None);
    }

    #[test]
    fn the_page_loads_nothing_from_another_origin() {
        for asset in [INDEX_HTML, APP_JS, APP_CSS] {
            for pattern in ["http://", "https://", "//cdn", "@import"] {
                assert!(
                    !asset.contains(pattern),
                    "an asset names another origin: {pattern}"
                );
            }
        }
        assert!(INDEX_HTML.contains("/ui/assets/app.js"));
        assert!(!INDEX_HTML.contains("<script>"), "no inline script (CSP)");
    }
}
