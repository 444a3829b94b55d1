//! The chart's monitoring: its alert rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`: every alert fires on series that should fire it, and stays quiet
//! on ones that should not), and the chart renders the rules and the Grafana dashboard from
//! the files the tests read, only when asked. That the rules and the dashboard name only
//! metrics the operator exports is checked beside the metrics (`telemetry/exported.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn chart() -> PathBuf {
    ferrometal_sim::lab::chart::chart_dir()
}

/// promtool, as `cargo xtask setup` unpacks it from Debian's `prometheus` package
/// (`xtask/src/setup.rs`, `promtool_path`), or from PATH.
fn promtool() -> PathBuf {
    let unpacked = testenv::tools::cache_dir()
        .join("bin")
        .join("promtool")
        .join("promtool");
    if unpacked.is_file() {
        return unpacked;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("promtool"))
                .find(|path| path.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "promtool is missing (looked in {} and on PATH): run `cargo xtask setup`",
                unpacked.display()
            )
        })
}

/// Runs promtool with `args` in the chart directory; fails with its output unless it succeeds.
fn promtool_ok(args: &[&str]) -> String {
    let output = Command::new(promtool())
        .args(args)
        .current_dir(chart())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool_ok(&["check", "rules", "files/alerts.yaml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool_ok(&["test", "rules", "tests/alerts_test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a test that fires it.
    let rules: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart().join("files/alerts.yaml")).expect("read the rules"),
    )
    .expect("the rules parse");
    let tests: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart().join("tests/alerts_test.yaml"))
            .expect("read the rule tests"),
    )
    .expect("the rule tests parse");
    let checks: Vec<&Value> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|test| test["alert_rule_test"].as_array().into_iter().flatten())
        .collect();
    for rule in rules["groups"][0]["rules"].as_array().expect("rules") {
        let name = rule["alert"].as_str().expect("an alert");
        let of_this = |fires: bool| {
            checks.iter().any(|check| {
                check["alertname"] == name
                    && check["exp_alerts"]
                        .as_array()
                        .is_some_and(|alerts| alerts.is_empty() != fires)
            })
        };
        assert!(of_this(true), "no test fires {name}");
        assert!(of_this(false), "no test keeps {name} quiet");
        for annotation in ["summary", "description", "runbook_url"] {
            assert!(
                rule["annotations"][annotation].is_string(),
                "{name} has a {annotation}"
            );
        }
    }
}

/// The objects `helm template` renders with `values` (`--set` pairs).
fn template(values: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut command = ferrometal_sim::lab::chart::helm_command(None).expect("helm is installed");
    command.args([
        "template",
        "ferrometal",
        chart.to_str().expect("path"),
        "--namespace",
        "metal-system",
    ]);
    for value in values {
        command.args(["--set", value]);
    }
    let output = command.output().expect("run helm");
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8_lossy(&output.stdout))
        .expect("helm template renders YAML")
        .into_iter()
        .filter(|object| !object.is_null())
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn the_chart_ships_the_rules_and_the_dashboard_from_their_files_only_when_asked() {
    let defaults = template(&[]);
    assert!(
        defaults
            .iter()
            .all(|o| o["kind"] != "PrometheusRule" && o["kind"] != "ServiceMonitor"),
        "off by default"
    );
    assert!(
        !defaults
            .iter()
            .any(|o| o["metadata"]["name"] == "ferrometal-dashboard"),
        "no dashboard by default"
    );

    let objects = template(&[
        "metrics.serviceMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.prometheusRule.labels.release=prometheus",
        "metrics.grafanaDashboard.enabled=true",
        "metrics.grafanaDashboard.namespace=monitoring",
        "metrics.grafanaDashboard.annotations.grafana_folder=Metal",
    ]);
    let rule = objects
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    assert_eq!(rule["metadata"]["namespace"], "metal-system");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let rules: Value =
        serde_saphyr::from_str(&read(&chart().join("files/alerts.yaml"))).expect("rules parse");
    assert_eq!(
        rule["spec"], rules,
        "the PrometheusRule holds files/alerts.yaml as it is"
    );

    let dashboard = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "ferrometal-dashboard")
        .expect("the dashboard ConfigMap");
    assert_eq!(dashboard["metadata"]["namespace"], "monitoring");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Metal"
    );
    let shipped: Value = serde_json::from_str(
        dashboard["data"]["ferrometal.json"]
            .as_str()
            .expect("the dashboard JSON"),
    )
    .expect("the shipped dashboard is JSON");
    let file: Value = serde_json::from_str(&read(&chart().join("files/dashboard.json")))
        .expect("files/dashboard.json is JSON");
    assert_eq!(shipped, file);

    let monitor = objects
        .iter()
        .find(|o| o["kind"] == "ServiceMonitor")
        .expect("a ServiceMonitor");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["honorLabels"], true,
        "ferrometal_boot_requests_total keeps its own endpoint label"
    );
}
