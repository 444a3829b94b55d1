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
    };
    let catalog = PluginCatalog::load(&runtime, config).await;

    // The plugins that need `credentials/reveal`, which this runtime does not grant: the
    // bundled redfish driver and the reveal fixture ask for it, the other fixture uses it
    // without asking. And the fixture built for an unsupported ABI.
    let mut refused: Vec<String> = catalog
        .problems
        .iter()
        .map(|problem| {
            assert!(
                matches!(
                    problem.error,
                    LoadError::CapabilityDenied { .. }
                        | LoadError::UndeclaredCapability { .. }
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
