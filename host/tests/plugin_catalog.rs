//! Loading a directory of real plugin components: broken plugins are reported and skipped,
//! the rest are selected by protocol, manufacturer and name.

use std::collections::BTreeMap;

use ferrometal::plugins::catalog::{CatalogConfig, PluginCatalog};
use ferrometal::plugins::{LoadError, PluginMetrics, PluginRuntime, RuntimeConfig};

#[tokio::test]
async fn a_directory_of_plugins_loads_with_problems_reported_per_file() {
    let runtime =
        PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine");
    let dir = testenv::components::components_dir();
    let config = CatalogConfig {
        dir: dir.clone(),
        drivers: BTreeMap::from([(
            String::from("Redfish"),
            vec![
                String::from("driver-reveal"),
                String::from("driver-minimal"),
            ],
        )]),
        credential_lookup: Some(String::from("lookup-echo")),
        ignition_generator: Some(String::from("ignition")),
        digests: BTreeMap::new(),
        plugins: BTreeMap::new(),
        ..CatalogConfig::default()
    };
    let catalog = PluginCatalog::load(&runtime, config).await;

    // The plugins that need `credentials/reveal`, which this runtime does not grant: the
    // bundled redfish driver and the reveal fixture ask for it, the other fixture uses it
    // without asking. The fixture built for an unsupported ABI, and the one that imports
    // sockets.
    let mut refused: Vec<String> = catalog
        .problems
        .iter()
        .map(|problem| {
            assert!(
                matches!(
                    problem.error,
                    LoadError::CapabilityDenied { .. }
                        | LoadError::UndeclaredCapability { .. }
                        | LoadError::ForbiddenImport { .. }
                        | LoadError::Metadata { .. }
                ),
                "{}",
                problem.error
            );
            problem
                .path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    refused.sort();
    assert_eq!(
        refused,
        [
            "driver_reveal.wasm",
            "driver_reveal_undeclared.wasm",
            "lookup_future_abi.wasm",
            "lookup_sockets.wasm",
            "redfish.wasm"
        ]
    );

    let driver = catalog
        .driver_for("Redfish", Some("Contoso"))
        .expect("a Redfish driver");
    assert_eq!(driver.identity().name, "driver-minimal");
    assert!(
        catalog.driver_for("IPMI", None).is_none(),
        "no driver listed for IPMI"
    );

    let lookup = catalog.credential_lookup().expect("named lookup plugin");
    assert!(
        lookup
            .lookup("52:54:00:01:02:03", &[])
            .await
            .expect("lookup")
            .is_some()
    );
    assert_eq!(
        catalog
            .ignition_generator()
            .map(|g| g.identity().name.clone())
            .as_deref(),
        Some("ignition"),
        "the named generator, among several"
    );
}

#[tokio::test]
async fn a_missing_directory_is_a_reported_problem_not_a_crash() {
    let runtime =
        PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine");
    let config = CatalogConfig {
        dir: "/nonexistent/ferrometal/plugins".into(),
        ..CatalogConfig::default()
    };
    let catalog = PluginCatalog::load(&runtime, config).await;
    assert_eq!(catalog.problems.len(), 1);
    assert!(
        catalog.problems[0]
            .error
            .to_string()
            .contains("/nonexistent/ferrometal/plugins")
    );
    assert!(catalog.driver_for("Redfish", None).is_none());
}

#[tokio::test]
async fn pinned_digests_refuse_a_changed_or_missing_plugin_and_load_a_matching_one() {
    let runtime =
        PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine");
    let dir = tempfile::tempdir().expect("temp dir");
    let components = testenv::components::components_dir();
    for name in ["ignition", "lookup_echo"] {
        std::fs::copy(
            components.join(format!("{name}.wasm")),
            dir.path().join(format!("{name}.wasm")),
        )
        .expect("copy component");
    }
    let ignition_digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(dir.path().join("ignition.wasm")).expect("read"),
        ))
    };
    let wrong = "0".repeat(64);
    let config = CatalogConfig {
        dir: dir.path().to_owned(),
        digests: BTreeMap::from([
            (
                String::from("ignition"),
                format!("sha256:{ignition_digest}"),
            ),
            (String::from("lookup-echo"), wrong.clone()),
            (String::from("redfish"), wrong.clone()),
        ]),
        ..CatalogConfig::default()
    };
    let catalog = PluginCatalog::load(&runtime, config).await;

    assert!(
        catalog.ignition_generator().is_some(),
        "the plugin matching its pin loads"
    );
    assert!(
        catalog.credential_lookup().is_none(),
        "a plugin whose file differs from its pin is refused"
    );
    let messages: Vec<String> = catalog
        .problems
        .iter()
        .map(|p| p.error.to_string())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        catalog.problems.iter().any(|p| matches!(
            &p.error,
            LoadError::DigestMismatch { expected, .. } if *expected == wrong
        )),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("redfish") && m.contains("no redfish.wasm")),
        "{messages:?}"
    );
}

/// A plugin directory holding the named components.
fn directory(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in names {
        let component = testenv::components::component(name).expect("built by `make plugins`");
        std::fs::copy(&component, dir.path().join(format!("{name}.wasm"))).expect("copy");
    }
    dir
}

#[tokio::test]
async fn a_per_plugin_grant_reaches_only_the_plugin_it_names() {
    let runtime =
        PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine");
    let dir = directory(&["driver-reveal", "redfish"]);
    let mut config = CatalogConfig::from_yaml(
        "drivers:\n  Redfish: [driver-reveal]\nplugins:\n  driver-reveal:\n    grants: [credentials/reveal]\n",
    )
    .expect("valid");
    config.dir = dir.path().to_owned();
    let catalog = PluginCatalog::load(&runtime, config).await;

    assert_eq!(
        catalog
            .driver_for("Redfish", None)
            .map(|d| d.identity().name.as_str()),
        Some("driver-reveal"),
        "granted by the configuration"
    );
    assert_eq!(catalog.problems.len(), 1, "{:?}", catalog.problems);
    assert!(
        matches!(
            &catalog.problems[0].error,
            LoadError::CapabilityDenied { capability, path } if capability == "credentials/reveal" && path.ends_with("redfish.wasm")
        ),
        "redfish asks for the same capability but was not granted it: {}",
        catalog.problems[0].error
    );
    assert!(
        catalog.config_problems.is_empty(),
        "{:?}",
        catalog.config_problems
    );
}

#[tokio::test]
async fn plugin_options_that_do_not_fit_the_installed_plugins_are_reported() {
    let runtime =
        PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine");
    let dir = directory(&["redfish", "driver-minimal", "lookup-echo"]);
    let mut config = CatalogConfig::from_yaml(
        "plugins:\n  redfish:\n    grants: [credentials/reveal]\n    settings: {auth: sesion}\n  driver-minimal:\n    grants: [credentials/reveal]\n  lookup-echo:\n    settings: {log: 'on'}\n  ghost:\n    settings: {colour: blue}\n",
    )
    .expect("valid");
    config.dir = dir.path().to_owned();
    let catalog = PluginCatalog::load(&runtime, config).await;
    assert!(catalog.problems.is_empty(), "{:?}", catalog.problems);

    let problems: Vec<String> = catalog
        .config_problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    for expected in [
        "grants `credentials/reveal` to plugin driver-minimal, which does not request it (it requests none)",
        "configures plugin ghost (under `plugins`), but there is no ghost.wasm",
        "plugin redfish rejects its settings in the plugin configuration: plugin redfish",
        "auth must be basic or session, not \"sesion\"",
    ] {
        assert!(
            problems.iter().any(|problem| problem.contains(expected)),
            "{expected} in {problems:#?}"
        );
    }
    assert_eq!(
        catalog.settings("lookup-echo"),
        [(String::from("log"), String::from("on"))],
        "settings are kept per plugin"
    );
    assert!(catalog.settings("driver-minimal").is_empty());
}
