//! DSP0266 `$expand` on collections: one request for a collection and its members' bodies,
//! where the service root advertises it (`ProtocolFeaturesSupported.ExpandQuery`).
//!
//! The driver asks only for what it would otherwise read member by member: `$expand=.`
//! (`NoLinks`: hyperlinks outside `Links`, which the `Members` are) when the service offers
//! it, else `$expand=*` (`ExpandAll`), each with `($levels=1)` when the service takes levels.
//! It never trusts the answer to be expanded: a member that comes back as a bare
//! `{"@odata.id"}` (a service that ignores the query) is read with a GET of its own, as
//! without `$expand`. A `400` or `501` to the expanded GET (or an answer over the host's size
//! cap) is retried once without the query, and the call reads every later collection plainly
//! too. A `404` or `405` is retried plainly as well — a server that does not parse queries
//! looks the path up with the query in it (sushy-static, serving DMTF mockups whose roots
//! advertise `$expand`, answers `404`) — and expansion stops unless the plain GET answers the
//! same (then the collection itself is missing). A service that does not advertise
//! `ExpandQuery` (sushy-emulator, for one) never sees the query.

use std::cell::Cell;

use ferrometal_plugin_sdk::bmc_driver::http::{HttpError, Response, Transport, decode, get_json};
use ferrometal_plugin_sdk::types::PluginError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::driver::{ROOT, get, get_query};
use crate::model::{Link, ServiceRoot};

/// How a collection's members are asked for inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expand {
    /// Not at all: the collection lists links and each member costs a GET of its own.
    Off,
    /// `$expand=.`: hyperlinks outside `Links` (the form preferred: the members and nothing
    /// the driver did not ask for).
    NoLinks {
        /// Say `($levels=1)` (the service advertises `Levels` with `MaxLevels` ≥ 1).
        levels: bool,
    },
    /// `$expand=*`: every hyperlink, for services that advertise only `ExpandAll`.
    All {
        /// Say `($levels=1)`.
        levels: bool,
    },
}

impl Expand {
    /// What a service root's `ProtocolFeaturesSupported` (as JSON, `null` when absent)
    /// advertises. Anything missing or of the wrong type counts as not advertised, so an
    /// odd root never fails a call.
    pub fn advertised(features: &Value) -> Self {
        let query = &features["ExpandQuery"];
        let flag = |name: &str| query.get(name).and_then(Value::as_bool) == Some(true);
        let levels = flag("Levels")
            && query
                .get("MaxLevels")
                .and_then(Value::as_u64)
                .is_some_and(|max| max >= 1);
        if flag("NoLinks") {
            Self::NoLinks { levels }
        } else if flag("ExpandAll") {
            Self::All { levels }
        } else {
            Self::Off
        }
    }

    /// The query parameter, or `None` when off.
    pub fn query(self) -> Option<&'static str> {
        match self {
            Self::Off => None,
            Self::NoLinks { levels: true } => Some("$expand=.($levels=1)"),
            Self::NoLinks { levels: false } => Some("$expand=."),
            Self::All { levels: true } => Some("$expand=*($levels=1)"),
            Self::All { levels: false } => Some("$expand=*"),
        }
    }
}

/// How one driver call reads collections: with the [`Expand`] the service root advertises,
/// learnt at most once per call, and plainly for the rest of the call once the BMC refused
/// an expanded GET.
#[derive(Debug)]
pub struct Collections {
    /// `None` until the service root has been read.
    expand: Cell<Option<Expand>>,
}

impl Collections {
    /// For a call that has read the service root already (`probe`, a session login).
    pub fn new(expand: Expand) -> Self {
        Self {
            expand: Cell::new(Some(expand)),
        }
    }

    /// For a call that has not read the service root: it is read right before the call's
    /// first collection, and only if the call reads one.
    ///
    /// Why `get-system` pays for the root (measured with `host/tests/oob_inventory.rs`): the
    /// extra GET saves one request per member of every collection the system has (NICs,
    /// processors, memory, storage, volumes, PCIe functions), so it pays off as soon as a
    /// system has two such members — every real server. The simulated shapes cost 11–14
    /// requests instead of 17–23 (`SimEdge`: 2 NICs, 1 CPU, 3 DIMM slots, 1 disk, 2 PCIe
    /// devices, 11 instead of 17). Where the root does not advertise `ExpandQuery`
    /// (sushy-emulator) it costs one request more than before; where a server advertises it
    /// but cannot take the query (DMTF's mockups under sushy-static answer `404`), two: the
    /// root and the first expanded GET (DMTF `public-tower`: 77 instead of 75). A system
    /// without any collection never reads the root.
    pub fn unread() -> Self {
        Self {
            expand: Cell::new(None),
        }
    }

    /// The form in force, reading the service root first if the call has not. A root that
    /// fails or is not JSON turns expansion off (the call's own requests report a broken
    /// BMC); a transport failure fails the call.
    fn expand(&self, http: &impl Transport) -> Result<Expand, PluginError> {
        if let Some(expand) = self.expand.get() {
            return Ok(expand);
        }
        let expand = decode::<ServiceRoot>(&get(http, ROOT)?).map_or(Expand::Off, |root| {
            Expand::advertised(&root.protocol_features)
        });
        self.expand.set(Some(expand));
        Ok(expand)
    }

    /// GETs the collection at `path`, expanded where the BMC offers it; the response whatever
    /// its status (the caller decides what a `404` means), read with [`members`].
    pub fn get(&self, http: &impl Transport, path: &str) -> Result<Response, PluginError> {
        let Some(query) = self.expand(http)?.query() else {
            return get(http, path);
        };
        let expanded = match get_query(http, path, query) {
            Ok(response) => response,
            // Too big inline: the members one by one, from now on.
            Err(HttpError::ResponseTooLarge(_)) => {
                self.expand.set(Some(Expand::Off));
                return get(http, path);
            }
            Err(error) => return Err(error.into()),
        };
        match expanded.status {
            // Refused: once more plainly, and plainly from now on.
            400 | 501 => {
                self.expand.set(Some(Expand::Off));
                get(http, path)
            }
            // The path with a query not found, or not allowed: the plain GET tells a service
            // that cannot take the query from a collection that is not there.
            404 | 405 => {
                let plain = get(http, path)?;
                if plain.status != expanded.status {
                    self.expand.set(Some(Expand::Off));
                }
                Ok(plain)
            }
            _ => Ok(expanded),
        }
    }
}

/// A member of a collection: its path and, when the BMC expanded it, its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Its `@odata.id`.
    pub id: String,
    /// The resource, when it came inline.
    pub body: Option<Value>,
}

impl From<&Link> for Member {
    fn from(link: &Link) -> Self {
        Self {
            id: link.id.clone(),
            body: None,
        }
    }
}

impl Member {
    /// The member as `D`: its inline body, else a GET of its own (any failure fails).
    pub fn read<D: DeserializeOwned>(self, http: &impl Transport) -> Result<D, PluginError> {
        match self.body {
            Some(body) => from_body(&self.id, body),
            None => get_json(http, &self.id),
        }
    }
}

/// An inline member's body as `D`; a body of the wrong shape is the BMC's fault, as a
/// member read on its own would be.
pub fn from_body<D: DeserializeOwned>(id: &str, body: Value) -> Result<D, PluginError> {
    serde_json::from_value(body).map_err(|error| PluginError::BmcFault {
        http_status: None,
        message_id: None,
        message: format!("{id}, expanded in its collection, is not the expected JSON: {error}"),
    })
}

/// A collection as it may come: members as links or as whole resources.
#[derive(Debug, Deserialize)]
struct Listing {
    #[serde(rename = "Members", default)]
    members: Vec<Value>,
}

/// The members of a collection response (decoded like any JSON answer: a non-2xx status or
/// a body that is not JSON fails). A member counts as expanded when it carries anything but
/// `@odata.` annotations; a bare link is left for a GET of its own.
pub fn members(response: &Response) -> Result<Vec<Member>, PluginError> {
    let listing: Listing = decode(response)?;
    listing
        .members
        .into_iter()
        .map(|member| {
            let Some(id) = member.get("@odata.id").and_then(Value::as_str) else {
                return Err(PluginError::BmcFault {
                    http_status: Some(response.status),
                    message_id: None,
                    message: format!("a collection member has no @odata.id: {member}"),
                });
            };
            let id = id.to_owned();
            let expanded = member
                .as_object()
                .is_some_and(|object| object.keys().any(|key| !key.starts_with("@odata.")));
            Ok(Member {
                id,
                body: expanded.then_some(member),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canned::Canned;

    #[test]
    fn the_advertised_form_prefers_no_links_and_says_levels_only_where_taken() {
        let features = |query: Value| json!({ "ExpandQuery": query });
        for (query, want) in [
            (
                json!({"ExpandAll": true, "NoLinks": true, "Levels": true, "MaxLevels": 1, "Links": false}),
                Some("$expand=.($levels=1)"),
            ),
            (
                json!({"ExpandAll": true, "NoLinks": false, "Levels": true, "MaxLevels": 6}),
                Some("$expand=*($levels=1)"),
            ),
            (json!({"NoLinks": true, "Levels": false}), Some("$expand=.")),
            (
                json!({"ExpandAll": true, "Levels": true, "MaxLevels": 0}),
                Some("$expand=*"),
            ),
            (json!({"Links": true, "Levels": true, "MaxLevels": 3}), None),
            (json!({"NoLinks": "yes"}), None),
            (Value::Null, None),
        ] {
            assert_eq!(
                Expand::advertised(&features(query.clone())).query(),
                want,
                "{query}"
            );
        }
        assert_eq!(Expand::advertised(&Value::Null), Expand::Off);
    }

    #[test]
    fn members_with_only_annotations_are_links_and_others_come_with_their_bodies() {
        let response = Response {
            status: 200,
            headers: Vec::new(),
            body: json!({"Members": [
                {"@odata.id": "/a"},
                {"@odata.id": "/b", "@odata.etag": "W/\"1\""},
                {"@odata.id": "/c", "Id": "c", "Name": "C"},
            ]})
            .to_string()
            .into_bytes(),
        };
        let read = members(&response).expect("members");
        let inline: Vec<(&str, bool)> = read
            .iter()
            .map(|m| (m.id.as_str(), m.body.is_some()))
            .collect();
        assert_eq!(inline, [("/a", false), ("/b", false), ("/c", true)]);
        let broken = Response {
            body: br#"{"Members":[{"Id":"x"}]}"#.to_vec(),
            ..response
        };
        assert!(matches!(
            members(&broken),
            Err(PluginError::BmcFault { .. })
        ));
    }

    #[test]
    fn an_unread_root_is_read_once_before_the_first_collection() {
        let http = Canned::new(&[
            (
                "Get /redfish/v1",
                200,
                r#"{"ProtocolFeaturesSupported":{"ExpandQuery":{"ExpandAll":true}}}"#,
            ),
            ("Get /redfish/v1/A?$expand=*", 200, r#"{"Members":[]}"#),
            ("Get /redfish/v1/B?$expand=*", 200, r#"{"Members":[]}"#),
        ]);
        let collections = Collections::unread();
        collections.get(&http, "/redfish/v1/A").expect("A");
        collections.get(&http, "/redfish/v1/B").expect("B");
        let paths = http.paths();
        assert_eq!(
            paths,
            [
                "/redfish/v1",
                "/redfish/v1/A?$expand=*",
                "/redfish/v1/B?$expand=*"
            ]
        );
    }

    #[test]
    fn a_broken_root_turns_expansion_off_instead_of_failing_the_call() {
        let http = Canned::new(&[
            ("Get /redfish/v1", 500, "<html>busy</html>"),
            ("Get /redfish/v1/A", 200, r#"{"Members":[]}"#),
        ]);
        let collections = Collections::unread();
        let response = collections.get(&http, "/redfish/v1/A").expect("A");
        assert_eq!(response.status, 200);
        assert_eq!(http.sent.borrow().len(), 2);
    }

    #[test]
    fn a_refused_expansion_is_retried_plainly_and_not_asked_for_again() {
        for status in [400, 501] {
            let http = Canned::new(&[
                (
                    "Get /redfish/v1/A?$expand=.($levels=1)",
                    status,
                    r#"{"error":{"code":"Base.1.8.QueryNotSupported","message":"no"}}"#,
                ),
                ("Get /redfish/v1/A", 200, r#"{"Members":[]}"#),
                ("Get /redfish/v1/B", 200, r#"{"Members":[]}"#),
            ]);
            let collections = Collections::new(Expand::NoLinks { levels: true });
            assert_eq!(
                collections.get(&http, "/redfish/v1/A").expect("A").status,
                200
            );
            assert_eq!(
                collections.get(&http, "/redfish/v1/B").expect("B").status,
                200
            );
            let paths = http.paths();
            assert_eq!(
                paths,
                [
                    "/redfish/v1/A?$expand=.($levels=1)",
                    "/redfish/v1/A",
                    "/redfish/v1/B"
                ],
                "{status}"
            );
        }
    }

    #[test]
    fn a_404_to_the_query_alone_stops_expansion_and_a_missing_collection_does_not() {
        // sushy-static looks the path up with the query in it.
        let http = Canned::new(&[
            (
                "Get /redfish/v1/A?$expand=.",
                404,
                "<html>Error code: 404</html>",
            ),
            ("Get /redfish/v1/A", 200, r#"{"Members":[]}"#),
            ("Get /redfish/v1/B", 200, r#"{"Members":[]}"#),
        ]);
        let collections = Collections::new(Expand::NoLinks { levels: false });
        assert_eq!(
            collections.get(&http, "/redfish/v1/A").expect("A").status,
            200
        );
        assert_eq!(
            collections.get(&http, "/redfish/v1/B").expect("B").status,
            200
        );
        assert_eq!(
            http.paths(),
            ["/redfish/v1/A?$expand=.", "/redfish/v1/A", "/redfish/v1/B"]
        );
        // A collection that is not there: still expanding afterwards.
        let http = Canned::new(&[
            ("Get /redfish/v1/A?$expand=.", 404, ""),
            ("Get /redfish/v1/A", 404, ""),
            ("Get /redfish/v1/B?$expand=.", 200, r#"{"Members":[]}"#),
        ]);
        let collections = Collections::new(Expand::NoLinks { levels: false });
        assert_eq!(
            collections.get(&http, "/redfish/v1/A").expect("A").status,
            404
        );
        assert_eq!(
            collections.get(&http, "/redfish/v1/B").expect("B").status,
            200
        );
        assert_eq!(
            http.paths(),
            [
                "/redfish/v1/A?$expand=.",
                "/redfish/v1/A",
                "/redfish/v1/B?$expand=."
            ]
        );
    }

    #[test]
    fn other_statuses_of_an_expanded_get_are_the_collection_s_own() {
        let http = Canned::new(&[(
            "Get /redfish/v1/A?$expand=.",
            500,
            r#"{"error":{"code":"Base.1.8.InternalError","message":"busy"}}"#,
        )]);
        let collections = Collections::new(Expand::NoLinks { levels: false });
        assert_eq!(
            collections.get(&http, "/redfish/v1/A").expect("A").status,
            500
        );
        assert_eq!(http.sent.borrow().len(), 1, "a busy BMC is not asked twice");
    }
}
