//! What the API server served, by verb and resource, from its own `apiserver_request_total`
//! counter: the fleet benchmark and the API budget test read it before onboarding and once
//! every Server is Available, and divide the difference by the number of servers.
//!
//! Those counts do not vary with machine noise (unlike times), so a test can assert them.
//! Only the resources `ferrometal run` may touch ([`FERROMETAL_RESOURCES`]) are per-server
//! costs: the control plane's own housekeeping (its identity Lease, the `kubernetes`
//! Service's Endpoints, CRD status) ticks on with time, not with servers. LIST and WATCH are
//! counted too, but they are paid once per informer and resync, not per server, so the
//! totals report them apart from writes and GETs.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// The counter read from the API server's `/metrics`.
const METRIC: &str = "apiserver_request_total";

/// The API group of ferrometal's kinds, shown without its name in reports.
pub const METAL_GROUP: &str = "metal.ironcore.dev";

/// The resources `ferrometal run` may read and write, as `(group, resource)` with `*` for
/// every resource of a group: what its Helm chart's RBAC rules grant (the CRD check at
/// start and the leader Lease, neither a per-server cost, left out). The control plane
/// never touches these on its own.
pub const FERROMETAL_RESOURCES: &[(&str, &str)] = &[
    (METAL_GROUP, "*"),
    ("", "secrets"),
    ("events.k8s.io", "events"),
];

/// Verbs that change something (`APPLY` is a server-side apply PATCH).
pub const WRITE_VERBS: &[&str] = &[
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// One kind of request: a verb on a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKind {
    /// As the API server reports it: `GET` (one object), `LIST`, `WATCH`, `POST`, `PUT`,
    /// `PATCH`, `APPLY`, `DELETE`, `DELETECOLLECTION`.
    pub verb: String,
    /// The API group, empty for the core group.
    pub group: String,
    /// The resource, with `/<subresource>` when there is one (`servers/status`).
    pub resource: String,
}

impl RequestKind {
    /// Whether the request changes something.
    pub fn is_write(&self) -> bool {
        WRITE_VERBS.contains(&self.verb.as_str())
    }

    /// Whether `ferrometal run` may have made it ([`FERROMETAL_RESOURCES`]).
    pub fn is_ferrometal(&self) -> bool {
        let resource = self
            .resource
            .split_once('/')
            .map_or(self.resource.as_str(), |(resource, _)| resource);
        FERROMETAL_RESOURCES
            .iter()
            .any(|&(group, name)| group == self.group && (name == "*" || name == resource))
    }
}

/// `PATCH servers/status` for ferrometal's group, `GET core/secrets`,
/// `POST events.k8s.io/events` for the others: short, and never ambiguous (the core group
/// has `endpoints` too).
impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.group.as_str() {
            METAL_GROUP => write!(f, "{} {}", self.verb, self.resource),
            "" => write!(f, "{} core/{}", self.verb, self.resource),
            group => write!(f, "{} {group}/{}", self.verb, self.resource),
        }
    }
}

/// Requests of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// All of them.
    pub requests: u64,
    /// Those answered with an error status (4xx, 5xx), e.g. a GET of an object that does
    /// not exist yet.
    pub errors: u64,
}

/// Requests of one kind per server.
#[derive(Debug, Clone, PartialEq)]
pub struct PerServer {
    /// The kind of request.
    pub kind: RequestKind,
    /// How many per server.
    pub requests: f64,
    /// How many of them per server were answered with an error status.
    pub errors: f64,
}

/// Requests the API server served, by kind, summed over response codes, API versions and
/// scopes. Requests of non-resource URLs (`/metrics`, `/readyz`, `/openapi/…`) are left out:
/// they are the harness's, not the operator's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiRequests {
    /// Every kind of request with its count.
    pub counts: BTreeMap<RequestKind, Count>,
}

/// Why the API server's metrics could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot parse line {line} of the API server's metrics ({reason}): {text}")]
pub struct MetricsError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
    /// The line.
    pub text: String,
}

impl ApiRequests {
    /// Sums the `apiserver_request_total` samples of `/metrics` in the Prometheus text
    /// format by verb, group and resource (with subresource).
    pub fn parse(metrics: &str) -> Result<Self, MetricsError> {
        let mut requests = Self::default();
        for (index, text) in metrics.lines().enumerate() {
            let Some(rest) = text.strip_prefix(METRIC) else {
                continue;
            };
            let fail = |reason| MetricsError {
                line: index + 1,
                reason,
                text: text.to_owned(),
            };
            // `apiserver_request_total_…` would be another metric.
            let Some(rest) = rest.strip_prefix('{') else {
                if rest.starts_with([' ', '\t']) {
                    return Err(fail("a sample without labels"));
                }
                continue;
            };
            let (labels, value) = labels(rest).map_err(fail)?;
            let value = sample_value(value).ok_or_else(|| fail("not a count"))?;
            let label = |name: &str| {
                labels
                    .iter()
                    .find(|(label, _)| *label == name)
                    .map_or("", |(_, value)| value.as_str())
            };
            let resource = label("resource");
            if resource.is_empty() {
                continue;
            }
            let subresource = label("subresource");
            let kind = RequestKind {
                verb: label("verb").to_owned(),
                group: label("group").to_owned(),
                resource: if subresource.is_empty() {
                    resource.to_owned()
                } else {
                    format!("{resource}/{subresource}")
                },
            };
            let count = requests.counts.entry(kind).or_default();
            count.requests += value;
            if label("code").parse::<u16>().is_ok_and(|code| code >= 400) {
                count.errors += value;
            }
        }
        Ok(requests)
    }

    /// The requests served since `before` was read (kinds with none left out).
    pub fn since(&self, before: &Self) -> Self {
        let counts = self
            .counts
            .iter()
            .filter_map(|(kind, count)| {
                let earlier = before.counts.get(kind).copied().unwrap_or_default();
                let count = Count {
                    requests: count.requests.saturating_sub(earlier.requests),
                    errors: count.errors.saturating_sub(earlier.errors),
                };
                (count.requests > 0).then(|| (kind.clone(), count))
            })
            .collect();
        Self { counts }
    }

    /// The requests [`crate::lab::Lab::apply_bmcs`] makes for `bmcs` BMCs: it creates a
    /// BMCSecret and a BMC for each. Subtract them ([`Self::since`]) to count the
    /// operator's requests only: in a real installation a person applies those.
    pub fn applied_bmcs(bmcs: u64) -> Self {
        let create = |resource: &str| {
            (
                RequestKind {
                    verb: String::from("POST"),
                    group: String::from(METAL_GROUP),
                    resource: resource.to_owned(),
                },
                Count {
                    requests: bmcs,
                    errors: 0,
                },
            )
        };
        Self {
            counts: [create("bmcsecrets"), create("bmcs")].into_iter().collect(),
        }
    }

    /// Only the requests `ferrometal run` may have made ([`FERROMETAL_RESOURCES`]); the
    /// control plane's own housekeeping left out.
    pub fn of_ferrometal(&self) -> Self {
        Self {
            counts: self
                .counts
                .iter()
                .filter(|(kind, _)| kind.is_ferrometal())
                .map(|(kind, count)| (kind.clone(), *count))
                .collect(),
        }
    }

    /// Requests whose verb is one of `verbs`.
    pub fn of_verbs(&self, verbs: &[&str]) -> u64 {
        self.counts
            .iter()
            .filter(|(kind, _)| verbs.contains(&kind.verb.as_str()))
            .map(|(_, count)| count.requests)
            .sum()
    }

    /// Writes ([`WRITE_VERBS`]).
    pub fn writes(&self) -> u64 {
        self.of_verbs(WRITE_VERBS)
    }

    /// GETs of single objects.
    pub fn gets(&self) -> u64 {
        self.of_verbs(&["GET"])
    }

    /// LISTs (once per informer start, relist and poll; not a per-server cost).
    pub fn lists(&self) -> u64 {
        self.of_verbs(&["LIST"])
    }

    /// WATCHes (once per informer and reconnect; not a per-server cost). The API server
    /// counts a watch when it ends, so the ones still open are not in it.
    pub fn watches(&self) -> u64 {
        self.of_verbs(&["WATCH"])
    }

    /// Every kind of request with at least `min` per server, most frequent first.
    pub fn per_server(&self, servers: usize, min: f64) -> Vec<PerServer> {
        let servers = servers.max(1) as f64;
        let mut rows: Vec<PerServer> = self
            .counts
            .iter()
            .map(|(kind, count)| PerServer {
                kind: kind.clone(),
                requests: count.requests as f64 / servers,
                errors: count.errors as f64 / servers,
            })
            .filter(|row| row.requests >= min)
            .collect();
        rows.sort_by(|a, b| {
            b.requests
                .total_cmp(&a.requests)
                .then_with(|| a.kind.cmp(&b.kind))
        });
        rows
    }

    /// The totals per server and every kind of request per server, one line each, for a
    /// person to see what changed (the API budget test prints it when a budget is
    /// exceeded).
    pub fn breakdown(&self, servers: usize) -> String {
        let per = |n: u64| n as f64 / servers.max(1) as f64;
        let mut text = format!(
            "per server ({servers} servers): {:.2} writes, {:.2} GETs; {} LISTs and {} WATCHes in all (not per-server costs)\n",
            per(self.writes()),
            per(self.gets()),
            self.lists(),
            self.watches(),
        );
        for PerServer {
            kind,
            requests,
            errors,
        } in self.per_server(servers, 0.0)
        {
            let _ = write!(text, "  {requests:8.2}  {kind}");
            if errors > 0.0 {
                let _ = write!(text, " ({errors:.2} of them errors)");
            }
            text.push('\n');
        }
        text
    }
}

/// The labels of a sample, as (name, value).
type Labels<'a> = Vec<(&'a str, String)>;

/// The labels of a sample and what follows them (`rest` starts after the `{`), with the
/// escapes of the text format (`\\`, `\"`, `\n`) undone.
fn labels(rest: &str) -> Result<(Labels<'_>, &str), &'static str> {
    let mut labels = Vec::new();
    let mut rest = rest.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once('=').ok_or("a label without a value")?;
        let mut chars = after
            .strip_prefix('"')
            .ok_or("an unquoted label value")?
            .chars();
        let mut value = String::new();
        loop {
            match chars.next().ok_or("an unterminated label value")? {
                '"' => break,
                '\\' => match chars.next().ok_or("an unterminated label value")? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        }
        labels.push((name.trim(), value));
        rest = chars.as_str().trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

/// The value of a counter sample (`42`, or `1.234567e+06` as Go writes large ones), before
/// an optional timestamp.
fn sample_value(text: &str) -> Option<u64> {
    let value: f64 = text.split_whitespace().next()?.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| value.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn kind(verb: &str, group: &str, resource: &str) -> RequestKind {
        RequestKind {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }

    fn count(requests: u64, errors: u64) -> Count {
        Count { requests, errors }
    }

    /// Lines as kube-apiserver v1.36 writes them, with the help and type lines and samples
    /// of other metrics around.
    const METRICS: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="metal.ironcore.dev",resource="servers",scope="cluster",subresource="status",verb="PATCH",version="v1alpha1"} 40
apiserver_request_total{code="409",component="apiserver",dry_run="",group="metal.ironcore.dev",resource="servers",scope="cluster",subresource="status",verb="PATCH",version="v1alpha1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 7
apiserver_request_total{code="404",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 3
apiserver_request_total{code="404",component="apiserver",dry_run="",group="",resource="endpoints",scope="resource",subresource="",verb="GET",version="v1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="metal.ironcore.dev",resource="endpoints",scope="cluster",subresource="",verb="LIST",version="v1alpha1"} 1.234567e+06
apiserver_request_total{code="0",component="apiserver",dry_run="",group="metal.ironcore.dev",resource="servers",scope="cluster",subresource="",verb="WATCH",version="v1alpha1"} 4
apiserver_request_total{code="201",component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 12 1733350000000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 9
# HELP apiserver_request_total_other not this one
apiserver_request_total_other{verb="GET",resource="secrets"} 100
apiserver_request_duration_seconds_count{verb="GET",resource="secrets"} 100
"#;

    #[test]
    fn samples_are_summed_by_verb_group_and_resource_over_codes() {
        let requests = ApiRequests::parse(METRICS).expect("parses");
        let expected: BTreeMap<RequestKind, Count> = [
            (kind("PATCH", METAL_GROUP, "servers/status"), count(42, 2)),
            (kind("GET", "", "secrets"), count(10, 3)),
            (kind("GET", "", "endpoints"), count(5, 5)),
            (kind("LIST", METAL_GROUP, "endpoints"), count(1_234_567, 0)),
            (kind("WATCH", METAL_GROUP, "servers"), count(4, 0)),
            (kind("POST", "events.k8s.io", "events"), count(12, 0)),
            (kind("PUT", "coordination.k8s.io", "leases"), count(9, 0)),
        ]
        .into_iter()
        .collect();
        assert_eq!(requests.counts, expected);
    }

    #[test]
    fn totals_split_writes_gets_lists_and_watches() {
        let requests = ApiRequests::parse(METRICS).expect("parses");
        assert_eq!(requests.writes(), 42 + 12 + 9);
        assert_eq!(requests.gets(), 10 + 5);
        assert_eq!(requests.lists(), 1_234_567);
        assert_eq!(requests.watches(), 4);
    }

    #[test]
    fn only_ferrometal_resources_are_kept_without_the_control_planes_housekeeping() {
        let requests = ApiRequests::parse(METRICS).expect("parses").of_ferrometal();
        let kinds: Vec<String> = requests.counts.keys().map(ToString::to_string).collect();
        assert_eq!(
            kinds,
            [
                "GET core/secrets",
                "LIST endpoints",
                "PATCH servers/status",
                "POST events.k8s.io/events",
                "WATCH servers",
            ]
        );
    }

    #[test]
    fn since_subtracts_the_earlier_reading_and_drops_what_did_not_move() {
        let before = ApiRequests::parse(METRICS).expect("parses");
        let after = ApiRequests::parse(&METRICS.replace("} 40\n", "} 50\n")).expect("parses");
        let difference = after.since(&before);
        assert_eq!(
            difference.counts,
            [(kind("PATCH", METAL_GROUP, "servers/status"), count(10, 0))]
                .into_iter()
                .collect()
        );
        // A counter that went backwards (an API server restart) counts nothing.
        assert!(before.since(&after).counts.is_empty());
    }

    #[test]
    fn the_harnesss_bmc_creations_can_be_taken_away() {
        let text = r#"apiserver_request_total{code="201",group="metal.ironcore.dev",resource="bmcs",subresource="",verb="POST"} 30
apiserver_request_total{code="201",group="metal.ironcore.dev",resource="bmcsecrets",subresource="",verb="POST"} 25
"#;
        let requests = ApiRequests::parse(text).expect("parses");
        let operator = requests.since(&ApiRequests::applied_bmcs(25));
        assert_eq!(
            operator.counts,
            [(kind("POST", METAL_GROUP, "bmcs"), count(5, 0))]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn escaped_label_values_are_unescaped() {
        let text = "apiserver_request_total{verb=\"GET\",group=\"\",resource=\"odd\\\"name\\\\x\\n\",subresource=\"\"} 1\n";
        let requests = ApiRequests::parse(text).expect("parses");
        assert_eq!(
            requests.counts.keys().next(),
            Some(&kind("GET", "", "odd\"name\\x\n"))
        );
    }

    #[rstest]
    #[case::unterminated_value("apiserver_request_total{verb=\"GET} 1")]
    #[case::unquoted_value("apiserver_request_total{verb=GET} 1")]
    #[case::no_value("apiserver_request_total{verb=\"GET\",resource=\"secrets\"}")]
    #[case::negative_value("apiserver_request_total{verb=\"GET\",resource=\"secrets\"} -1")]
    #[case::no_labels("apiserver_request_total 3")]
    fn malformed_samples_are_refused_with_their_line(#[case] line: &str) {
        let error =
            ApiRequests::parse(&format!("# TYPE x counter\n{line}\n")).expect_err("refused");
        assert_eq!(error.line, 2);
        assert_eq!(error.text, line);
    }

    #[test]
    fn the_per_server_breakdown_lists_every_kind_most_frequent_first() {
        let requests = ApiRequests::parse(METRICS).expect("parses").of_ferrometal();
        let rows = requests.per_server(2, 5.0);
        let kinds: Vec<String> = rows.iter().map(|row| row.kind.to_string()).collect();
        assert_eq!(
            kinds,
            [
                "LIST endpoints",
                "PATCH servers/status",
                "POST events.k8s.io/events",
                "GET core/secrets"
            ]
        );
        assert_eq!((rows[1].requests, rows[1].errors), (21.0, 1.0));
        let breakdown = requests.breakdown(2);
        assert!(
            breakdown.starts_with(
                "per server (2 servers): 27.00 writes, 5.00 GETs; 1234567 LISTs and 4 WATCHes in all"
            ),
            "{breakdown}"
        );
        assert!(
            breakdown.contains("     5.00  GET core/secrets (1.50 of them errors)\n"),
            "{breakdown}"
        );
        assert!(
            breakdown.contains("     2.00  WATCH servers\n"),
            "{breakdown}"
        );
    }
}
