//! Who may look: a viewer presents a Kubernetes bearer token once; the API server says who it
//! is (TokenReview) and whether they may `list servers.metal.ironcore.dev`
//! (SubjectAccessReview). A viewer allowed in gets a session (a random id in an HttpOnly,
//! SameSite=Strict cookie), reviewed again every few minutes, so a revoked token or a removed
//! role binding closes it. API clients may send `Authorization: Bearer` on every request
//! instead; their reviews are remembered for the same interval. Tokens are never logged and
//! are kept in memory only to review them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Why a token does not get in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// The API server does not know the token (expired, revoked, or not a token).
    #[error("the API server does not accept this token")]
    NotAuthenticated,
    /// It does, but its user may not list Servers.
    #[error("{user} may not list servers.metal.ironcore.dev")]
    NotAuthorized {
        /// Who the token belongs to.
        user: String,
    },
    /// The review could not be made.
    #[error("cannot review the token: {0}")]
    Unavailable(String),
}

/// The user a token belongs to, once allowed in.
#[derive(Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The user name the API server gave.
    pub user: String,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer").field("user", &self.user).finish()
    }
}

/// Asks the API server about tokens.
#[derive(Clone)]
pub struct Reviewer {
    client: Client,
    /// Reviews in flight at once: a flood of logins costs the API server little.
    in_flight: Arc<Semaphore>,
}

impl Reviewer {
    /// Reviews through `client` (the operator's own identity, which needs `create` on
    /// tokenreviews and subjectaccessreviews).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            in_flight: Arc::new(Semaphore::new(4)),
        }
    }

    /// Who `token` is and whether they may list Servers.
    pub async fn review(&self, token: &str) -> Result<Viewer, Refusal> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| Refusal::Unavailable(String::from("shutting down")))?;
        let reviews: Api<TokenReview> = Api::all(self.client.clone());
        let review = reviews
            .create(
                &PostParams::default(),
                &TokenReview {
                    spec: TokenReviewSpec {
                        token: token.to_owned(),
                        audiences: None,
                    },
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| Refusal::Unavailable(api_error(&error)))?;
        let status = review.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => user,
            _ => return Err(Refusal::NotAuthenticated),
        };
        let name = user.username.clone().unwrap_or_default();
        let access: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let decision = access
            .create(
                &PostParams::default(),
                &SubjectAccessReview {
                    spec: SubjectAccessReviewSpec {
                        user: user.username,
                        groups: user.groups,
                        uid: user.uid,
                        extra: user.extra,
                        resource_attributes: Some(ResourceAttributes {
                            group: Some(String::from("metal.ironcore.dev")),
                            resource: Some(String::from("servers")),
                            verb: Some(String::from("list")),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| Refusal::Unavailable(api_error(&error)))?;
        if decision.status.is_some_and(|s| s.allowed) {
            Ok(Viewer { user: name })
        } else {
            Err(Refusal::NotAuthorized { user: name })
        }
    }
}

/// An API error without anything the request carried (the token is in the request body,
/// which kube's errors do not quote; the status message is the API server's).
fn api_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => crate::controllers::report::first_line(&other.to_string()),
    }
}

/// A session: who, since when, and the token to review again.
struct Session {
    viewer: Viewer,
    token: String,
    started: Instant,
    reviewed: Instant,
}

/// What a session lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A live session, reviewed recently.
    Allowed(Viewer),
    /// A live session whose review is due: review this token, then call
    /// [`Sessions::reviewed`].
    Review(String),
    /// No such session, or it ended.
    Unknown,
}

/// Sessions and remembered bearer reviews, keyed by the SHA-256 of their secret (a session
/// id or a bearer token), so the map never holds a usable id. Bounded: the oldest entry goes
/// when a new one would exceed the limit.
pub struct Sessions {
    entries: Mutex<HashMap<[u8; 32], Session>>,
    /// How long a session lasts.
    lifetime: Duration,
    /// How often its token is reviewed again.
    review_every: Duration,
    /// Most entries kept.
    max: usize,
}

impl Sessions {
    /// Sessions lasting `lifetime`, reviewed every `review_every`, at most `max` at once.
    pub fn new(lifetime: Duration, review_every: Duration, max: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            lifetime,
            review_every,
            max: max.max(1),
        }
    }

    /// Starts a session for `viewer` (whose `token` was just reviewed) under the secret `id`.
    pub fn start(&self, id: &str, viewer: Viewer, token: &str, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, session| now.duration_since(session.started) < self.lifetime);
        if entries.len() >= self.max
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, session)| session.started)
                .map(|(key, _)| *key)
        {
            entries.remove(&oldest);
        }
        entries.insert(
            digest(id),
            Session {
                viewer,
                token: token.to_owned(),
                started: now,
                reviewed: now,
            },
        );
    }

    /// The session under the secret `id`.
    pub fn lookup(&self, id: &str, now: Instant) -> Lookup {
        let key = digest(id);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(&key) {
            Some(session) if now.duration_since(session.started) >= self.lifetime => {
                entries.remove(&key);
                Lookup::Unknown
            }
            Some(session) if now.duration_since(session.reviewed) >= self.review_every => {
                Lookup::Review(session.token.clone())
            }
            Some(session) => Lookup::Allowed(session.viewer.clone()),
            None => Lookup::Unknown,
        }
    }

    /// Records a new review of the session under `id`: allowed keeps it, refused ends it.
    pub fn reviewed(&self, id: &str, outcome: &Result<Viewer, Refusal>, now: Instant) {
        let key = digest(id);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(viewer) => {
                if let Some(session) = entries.get_mut(&key) {
                    session.viewer = viewer.clone();
                    session.reviewed = now;
                }
            }
            // The API server could not be asked: keep the session, ask again next time.
            Err(Refusal::Unavailable(_)) => {}
            Err(_) => {
                entries.remove(&key);
            }
        }
    }

    /// Ends the session under `id`.
    pub fn end(&self, id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&digest(id));
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(user: &str) -> Viewer {
        Viewer {
            user: user.to_owned(),
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_session_is_allowed_until_its_review_is_due_and_ends_with_its_lifetime() {
        let sessions = Sessions::new(60 * MINUTE, 5 * MINUTE, 10);
        let start = Instant::now();
        sessions.start("id-1", viewer("alice"), "token-1", start);
        assert_eq!(
            sessions.lookup("id-1", start + MINUTE),
            Lookup::Allowed(viewer("alice"))
        );
        assert_eq!(
            sessions.lookup("id-1", start + 6 * MINUTE),
            Lookup::Review(String::from("token-1"))
        );
        sessions.reviewed("id-1", &Ok(viewer("alice")), start + 6 * MINUTE);
        assert_eq!(
            sessions.lookup("id-1", start + 7 * MINUTE),
            Lookup::Allowed(viewer("alice"))
        );
        assert_eq!(
            sessions.lookup("id-1", start + 61 * MINUTE),
            Lookup::Unknown
        );
        assert!(sessions.is_empty());
        assert_eq!(sessions.lookup("id-2", start), Lookup::Unknown);
    }

    #[test]
    fn a_refused_review_ends_the_session_and_an_unavailable_one_keeps_it() {
        let sessions = Sessions::new(60 * MINUTE, MINUTE, 10);
        let start = Instant::now();
        sessions.start("a", viewer("alice"), "t", start);
        sessions.start("b", viewer("bob"), "u", start);
        let later = start + 2 * MINUTE;
        sessions.reviewed("a", &Err(Refusal::Unavailable(String::from("x"))), later);
        sessions.reviewed(
            "b",
            &Err(Refusal::NotAuthorized {
                user: String::from("bob"),
            }),
            later,
        );
        assert_eq!(
            sessions.lookup("a", later),
            Lookup::Review(String::from("t"))
        );
        assert_eq!(sessions.lookup("b", later), Lookup::Unknown);
        sessions.end("a");
        assert!(sessions.is_empty());
    }

    #[test]
    fn the_oldest_session_goes_when_the_limit_is_reached() {
        let sessions = Sessions::new(60 * MINUTE, MINUTE, 2);
        let start = Instant::now();
        sessions.start("a", viewer("a"), "t", start);
        sessions.start("b", viewer("b"), "t", start + Duration::from_secs(1));
        sessions.start("c", viewer("c"), "t", start + Duration::from_secs(2));
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions.lookup("a", start), Lookup::Unknown);
        assert_eq!(
            sessions.lookup("c", start + Duration::from_secs(3)),
            Lookup::Allowed(viewer("c"))
        );
    }

    #[test]
    fn neither_the_viewer_nor_a_refusal_shows_a_token() {
        let shown = format!(
            "{:?} {} {}",
            viewer("alice"),
            Refusal::NotAuthenticated,
            Refusal::NotAuthorized {
                user: String::from("alice")
            }
        );
        assert!(!shown.contains("token-"), "{shown}");
        assert!(shown.contains("may not list servers.metal.ironcore.dev"));
    }
}
