//! The metrics that the chart's alerts (`charts/ferrometal/files/alerts.yaml`) and their
//! promtool tests, the Grafana dashboard (`files/dashboard.json`) and docs/metrics.md name
//! are the ones the operator exports, with labels it sets: a renamed metric or label fails
//! here, not silently in someone's Prometheus.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use super::*;

/// Labels the scrape adds (Prometheus and the Prometheus Operator's ServiceMonitor), which
/// selectors may use on any metric; `le` is a histogram bucket's.
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "instance",
    "job",
    "service",
    "container",
    "endpoint",
];

/// What `/metrics` serves: series names (`_total`, `_bucket`, ... included) and, for those
/// with a sample here, their label names.
struct Exported {
    /// Family names as documented (`ferrometal_reconciles_total`, histograms by their base
    /// name), with their type.
    families: BTreeMap<String, String>,
    /// Series names a query may select, with the labels seen on their samples.
    series: BTreeMap<String, BTreeSet<String>>,
}

/// Every metric of the process ([`ProcessMetrics`], as `run::wiring` registers them), each family with a sample
/// where the test can make one.
fn exported() -> Exported {
    let ProcessMetrics {
        registry,
        plugins,
        controllers,
        boot,
        dhcp,
        leader,
    } = ProcessMetrics::new();

    // An empty family is not exported at all: give each a sample.
    plugins.sample_every_family();
    controllers.reconcile("server").finish(true);
    controllers.error("server", "conflict");
    controllers.probe(conditions::REASON_CONNECTED);
    controllers.credential_rotation("succeeded");
    controllers.claim_bind("bound");
    for phase in DiscoveryPhase::ALL {
        controllers.discovery_phase(phase, SignedDuration::from_secs(1));
    }
    controllers.discovered(SignedDuration::from_secs(1));
    controllers.discovery_timed_out();
    boot.count("ipxe", axum::http::StatusCode::OK);
    boot.fetches.count("written");
    boot.connections.ended("closed");
    dhcp.count("offer");
    dhcp.count6("advertise");
    leader.set_leading(true);
    let (caches, mut writers) = Caches::new();
    controllers.observe_fleet(caches);
    for event in [
        kube::runtime::watcher::Event::Init,
        kube::runtime::watcher::Event::InitDone,
    ] {
        writers.servers.apply_watcher_event(&event);
    }
    for event in [
        kube::runtime::watcher::Event::Init,
        kube::runtime::watcher::Event::InitDone,
    ] {
        writers.bmcs.apply_watcher_event(&event);
    }

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let mut families = BTreeMap::new();
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declaration.split_once(' ').expect("# TYPE name type");
            let names: Vec<String> = match kind {
                "counter" => vec![format!("{name}_total")],
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|suffix| format!("{name}{suffix}"))
                    .collect(),
                _ => vec![name.to_owned()],
            };
            let documented = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            families.insert(documented, kind.to_owned());
            for name in names {
                series.entry(name).or_default();
            }
        } else if !line.starts_with('#') {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = series.entry(line[..name_end].to_owned()).or_default();
            if let Some(inside) = line[name_end..]
                .strip_prefix('{')
                .and_then(|rest| rest.split_once('}'))
                .map(|(inside, _)| inside)
            {
                labels.extend(selector_labels(inside));
            }
        }
    }
    Exported { families, series }
}

/// The label names of a selector's or a sample's `{...}` contents.
fn selector_labels(inside: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut rest = inside.trim();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        labels.push(rest[..name_end].to_owned());
        // Past the operator and the quoted value.
        let Some(open) = rest.find('"') else { break };
        let after_open = &rest[open + 1..];
        let mut close = None;
        let mut escaped = false;
        for (index, c) in after_open.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    close = Some(index);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(close) = close else { break };
        rest = after_open[close + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    labels
}

/// A metric a PromQL expression selects: its name and the labels its matchers name.
#[derive(Debug, PartialEq, Eq)]
struct Selected {
    metric: String,
    labels: Vec<String>,
}

/// The ferrometal (and metal-operator) metrics `expr` selects. String literals are skipped,
/// so label values never count as names.
fn selected(expr: &str) -> Vec<Selected> {
    let chars: Vec<char> = expr.chars().collect();
    let mut found = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c == '"' || c == '\'' || c == '`' {
            index += 1;
            while index < chars.len() && chars[index] != c {
                index += if chars[index] == '\\' { 2 } else { 1 };
            }
            index += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = index;
            while index < chars.len()
                && (chars[index].is_ascii_alphanumeric()
                    || chars[index] == '_'
                    || chars[index] == ':')
            {
                index += 1;
            }
            let name: String = chars[start..index].iter().collect();
            if !(name.starts_with("ferrometal_") || name.starts_with("metal_")) {
                continue;
            }
            let mut labels = Vec::new();
            let mut next = index;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            if chars.get(next) == Some(&'{') {
                let mut end = next + 1;
                let mut quoted = false;
                while end < chars.len() && (quoted || chars[end] != '}') {
                    if chars[end] == '"' && chars[end - 1] != '\\' {
                        quoted = !quoted;
                    }
                    end += 1;
                }
                let inside: String = chars[next + 1..end.min(chars.len())].iter().collect();
                labels = selector_labels(&inside);
                index = end + 1;
            }
            found.push(Selected {
                metric: name,
                labels,
            });
        } else {
            index += 1;
        }
    }
    found
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repository().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} parses: {e}"))
}

/// Every string under `key` anywhere in `value`.
fn strings_under<'a>(value: &'a Value, key: &str, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(text) if k == key => found.push(text),
                    _ => strings_under(v, key, found),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                strings_under(item, key, found);
            }
        }
        _ => {}
    }
}

/// What is wrong with `expr` (from `origin`): unknown metrics, labels a metric does not have,
/// or no metric of ours at all.
fn problems(exported: &Exported, origin: &str, expr: &str) -> Vec<String> {
    let selected = selected(expr);
    let mut problems = Vec::new();
    if selected.is_empty() {
        problems.push(format!("{origin}: `{expr}` selects no ferrometal metric"));
    }
    for Selected { metric, labels } in selected {
        let Some(known) = exported.series.get(&metric) else {
            problems.push(format!("{origin}: {metric} is not exported"));
            continue;
        };
        if known.is_empty() {
            // No sample in this test: the name is all that can be checked.
            continue;
        }
        for label in labels {
            let bucket = label == "le" && metric.ends_with("_bucket");
            if !known.contains(&label) && !TARGET_LABELS.contains(&label.as_str()) && !bucket {
                problems.push(format!(
                    "{origin}: {metric} has no label {label} (it has {known:?})"
                ));
            }
        }
    }
    problems
}

#[test]
fn the_selector_parser_finds_metrics_and_matcher_labels_but_not_strings() {
    assert_eq!(
        selected(
            r#"sum by (state) (rate(ferrometal_servers{namespace=~"$ns", state="ferrometal_x"}[5m])) / metal_server_reconciliation_total"#
        ),
        [
            Selected {
                metric: String::from("ferrometal_servers"),
                labels: vec![String::from("namespace"), String::from("state")],
            },
            Selected {
                metric: String::from("metal_server_reconciliation_total"),
                labels: Vec::new(),
            },
        ]
    );
    assert_eq!(
        selector_labels(r#"a="x\"y", b!~"z""#),
        [String::from("a"), String::from("b")]
    );
}

#[test]
fn the_alerts_name_only_exported_metrics_and_labels() {
    let exported = exported();
    let alerts = yaml("charts/ferrometal/files/alerts.yaml");
    let mut exprs = Vec::new();
    strings_under(&alerts, "expr", &mut exprs);
    assert!(exprs.len() >= 8, "every alert has an expression: {exprs:?}");
    let mut wrong = Vec::new();
    for expr in exprs {
        wrong.extend(problems(&exported, "files/alerts.yaml", expr));
    }
    // The promtool tests' input series are what the operator would export.
    let tests = yaml("charts/ferrometal/tests/alerts_test.yaml");
    let mut series = Vec::new();
    strings_under(&tests, "series", &mut series);
    for one in series.into_iter().filter(|s| !s.starts_with("up{")) {
        wrong.extend(problems(&exported, "tests/alerts_test.yaml", one));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_dashboard_parses_and_queries_only_exported_metrics_and_labels() {
    let exported = exported();
    let text = read("charts/ferrometal/files/dashboard.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "ferrometal");
    let mut exprs = Vec::new();
    strings_under(&dashboard, "expr", &mut exprs);
    strings_under(&dashboard["templating"], "definition", &mut exprs);
    assert!(exprs.len() > 20, "{exprs:?}");
    let mut wrong = Vec::new();
    for expr in exprs {
        wrong.extend(problems(&exported, "files/dashboard.json", expr));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Panels keep their own ids and places.
    let panels = dashboard["panels"].as_array().expect("panels");
    let ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
}

#[test]
fn docs_metrics_md_lists_every_exported_metric_and_no_other() {
    let exported = exported();
    let doc = read("docs/metrics.md");
    let missing: Vec<&String> = exported
        .families
        .keys()
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics missing from docs/metrics.md: {missing:?}"
    );
    // Every ferrometal metric the page mentions is exported (metal-operator's own names are
    // mentioned where they differ from ours).
    let mut unknown = BTreeSet::new();
    for word in doc.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("ferrometal_")
            && !exported.series.contains_key(word)
            && !exported.families.contains_key(word)
        {
            unknown.insert(word);
        }
    }
    assert!(
        unknown.is_empty(),
        "docs/metrics.md names metrics the operator does not export: {unknown:?}"
    );
}
