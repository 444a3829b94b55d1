//! Server classifiers through the real runtime (`make plugins` builds them): the bundled
//! `profiles` classifier sorts a mixed fleet as its example rules say, misbehaving classifiers
//! (panic, endless loop, memory bomb) end in typed errors while the same runtime keeps
//! classifying, and the plugin configuration's `classifiers` list is checked at load.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrometal::api::server::TaintEffect;
use ferrometal::plugins::catalog::{CatalogConfig, ConfigProblem, PluginCatalog};
use ferrometal::plugins::server_classifier::{
    AcceleratorFacts, ClassifierInput, ClassifierTaint, DEFAULT_LIMITS, DriveFacts, ProcessorFacts,
    ServerClassifierPlugin,
};
use ferrometal::plugins::types::GuestError;
use ferrometal::plugins::{
    CallErrorKind, Limits, PluginMetrics, PluginRuntime, RuntimeConfig, World,
};

const GIB: u64 = 1 << 30;

/// The example rules of plugins/profiles, as its README shows them.
fn example_rules() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/profiles/rules.example.yaml"
    );
    std::fs::read_to_string(path).expect("plugins/profiles/rules.example.yaml")
}

fn settings() -> Vec<(String, String)> {
    vec![(String::from("rules"), example_rules())]
}

fn runtime() -> PluginRuntime {
    PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine")
}

fn load(runtime: &PluginRuntime, name: &str) -> ServerClassifierPlugin {
    let path = testenv::components::component(name).expect("component built by `make plugins`");
    runtime
        .load_server_classifier(&path)
        .unwrap_or_else(|error| panic!("load {name}: {error}"))
}

/// A server with one CPU of `cpu`, `memory_gib` of memory, `disks` drives and an
/// accelerator per vendor in `accelerators`.
fn server(
    name: &str,
    cpu: &str,
    memory_gib: u64,
    disks: usize,
    accelerators: &[&str],
) -> ClassifierInput {
    ClassifierInput {
        name: name.to_owned(),
        processors: vec![ProcessorFacts {
            model: Some(cpu.to_owned()),
            architecture: Some(String::from("x86_64")),
            cores: Some(32),
            threads: Some(64),
        }],
        total_memory_bytes: Some(memory_gib * GIB),
        drives: (0..disks)
            .map(|index| DriveFacts {
                name: Some(format!("nvme{index}n1")),
                media_type: Some(String::from("SSD")),
                capacity_bytes: Some(3840 * 1_000_000_000),
                ..DriveFacts::default()
            })
            .collect(),
        accelerators: accelerators
            .iter()
            .enumerate()
            .map(|(index, vendor)| AcceleratorFacts {
                name: format!("0000:{:02x}:00.0", 0x41 + index),
                class: Some(String::from("display controller")),
                vendor: Some((*vendor).to_owned()),
                ..AcceleratorFacts::default()
            })
            .collect(),
        ..ClassifierInput::default()
    }
}

fn sku(labels: &[(String, String)]) -> Option<&str> {
    labels
        .iter()
        .find(|(key, _)| key == "hardware.example.com/sku")
        .map(|(_, value)| value.as_str())
}

fn no_bind(key: &str, value: Option<&str>) -> ClassifierTaint {
    ClassifierTaint {
        key: key.to_owned(),
        value: value.map(str::to_owned),
        effect: TaintEffect::NoBind,
    }
}

#[tokio::test]
async fn profiles_sorts_a_mixed_fleet_as_its_rules_say() {
    let runtime = runtime();
    let profiles = load(&runtime, "profiles");
    assert_eq!(profiles.identity().world, World::ServerClassifier);
    let settings = settings();
    profiles
        .validate_settings(&settings)
        .await
        .expect("the example rules are valid");

    let gpu = server(
        "gpu-1",
        "AMD EPYC 9654 96-Core Processor",
        1024,
        2,
        &["NVIDIA Corporation"; 4],
    );
    let mut burnt_in = server(
        "gpu-2",
        "AMD EPYC 9654 96-Core Processor",
        1024,
        2,
        &["NVIDIA Corporation"],
    );
    burnt_in.labels = vec![(
        String::from("hardware.example.com/burn-in"),
        String::from("done"),
    )];
    let storage = server("storage-1", "AMD EPYC 7313", 256, 12, &[]);
    let compute = server(
        "compute-1",
        "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        256,
        2,
        &[],
    );
    let small = server(
        "small-1",
        "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        64,
        1,
        &[],
    );
    let odd_gpu = server(
        "odd-1",
        "Intel(R) Xeon(R) Silver 4310",
        64,
        1,
        &["Advanced Micro Devices, Inc. [AMD/ATI]"],
    );

    let classified = profiles.classify(&gpu, &settings).await.expect("classify");
    assert_eq!(sku(&classified.labels), Some("gpu-large"));
    assert_eq!(
        classified.taints,
        [
            no_bind("hardware.example.com/gpu", Some("nvidia")),
            no_bind("hardware.example.com/burn-in", None),
        ]
    );
    assert_eq!(classified.unclaimable, None);

    let classified = profiles
        .classify(&burnt_in, &settings)
        .await
        .expect("classify");
    assert_eq!(
        classified.taints,
        [no_bind("hardware.example.com/gpu", Some("nvidia"))],
        "burn-in is over once the label says done"
    );

    for (server, expected) in [(&storage, "storage-dense"), (&compute, "compute")] {
        let classified = profiles
            .classify(server, &settings)
            .await
            .expect("classify");
        assert_eq!(sku(&classified.labels), Some(expected), "{}", server.name);
        assert!(classified.taints.is_empty(), "{}", server.name);
        assert_eq!(classified.unclaimable, None);
    }

    let classified = profiles
        .classify(&small, &settings)
        .await
        .expect("classify");
    assert!(classified.labels.is_empty());
    assert_eq!(
        classified.unclaimable.as_deref(),
        Some("no hardware profile matches this server")
    );
    let classified = profiles
        .classify(&odd_gpu, &settings)
        .await
        .expect("classify");
    assert_eq!(
        classified.unclaimable.as_deref(),
        Some("no hardware profile matches this server")
    );
    assert_eq!(
        classified.taints,
        [no_bind("hardware.example.com/burn-in", None)],
        "burn-in applies to every server with accelerators"
    );
}

#[tokio::test]
async fn profiles_refuses_bad_rules_naming_the_profile_and_field() {
    let runtime = runtime();
    let profiles = load(&runtime, "profiles");
    let rules = |text: &str| vec![(String::from("rules"), text.to_owned())];
    for (settings, message) in [
        (
            rules("profiles:\n- name: big\n  match: {memory: {min: lots}}\n"),
            "invalid input: profiles[0] (big).match.memory.min: \"lots\" is not a size",
        ),
        (
            rules("profiles:\n- name: big\n  match: {disk: 4}\n"),
            "unknown field `disk`",
        ),
        (
            Vec::new(),
            "the setting \"rules\" (the profile rules, YAML or JSON) is missing",
        ),
        (
            vec![(String::from("rule"), String::new())],
            "unknown setting \"rule\"; profiles takes only \"rules\"",
        ),
    ] {
        let error = profiles
            .validate_settings(&settings)
            .await
            .expect_err(message);
        assert!(
            matches!(
                error.kind,
                CallErrorKind::Plugin(GuestError::InvalidInput(_))
            ),
            "{error}"
        );
        let text = error.to_string();
        assert!(text.contains("plugin profiles"), "{text}");
        assert!(text.contains("validate-settings"), "{text}");
        assert!(text.contains(message), "{text}");
        let classify = profiles
            .classify(&server("s", "x", 1, 0, &[]), &settings)
            .await
            .expect_err("classify with the same settings");
        assert!(classify.to_string().contains(message), "{classify}");
    }
}

#[tokio::test]
async fn misbehaving_classifiers_end_in_typed_errors_and_profiles_keeps_classifying() {
    let runtime = runtime();
    let profiles = load(&runtime, "profiles");
    let settings = settings();
    let facts = server("gpu-1", "AMD EPYC 9654", 1024, 2, &["NVIDIA"]);
    let still_classifies = async || {
        let classified = profiles
            .classify(&facts, &settings)
            .await
            .expect("profiles still classifies");
        assert_eq!(sku(&classified.labels), Some("gpu-large"));
    };

    let panics = load(&runtime, "classifier-panic");
    let error = panics.classify(&facts, &[]).await.expect_err("panic");
    match &error.kind {
        CallErrorKind::Crashed { panic, .. } => assert!(
            panic
                .as_deref()
                .is_some_and(|p| p.contains("no rule for a server like gpu-1")),
            "{error}"
        ),
        other => panic!("expected Crashed, got {other}"),
    }
    let text = error.to_string();
    assert!(
        text.starts_with("plugin classifier-panic (sha256 ")
            && text.contains("server-classifier world")
            && text.contains("classify: crashed"),
        "{text}"
    );
    still_classifies().await;

    let endless = load(&runtime, "classifier-endless-loop").with_limits(Limits {
        deadline: Duration::from_millis(300),
        ..DEFAULT_LIMITS
    });
    let (stuck, ()) = tokio::join!(endless.classify(&facts, &[]), still_classifies());
    let error = stuck.expect_err("endless loop");
    assert!(
        matches!(error.kind, CallErrorKind::Timeout(d) if d == Duration::from_millis(300)),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("classify: timed out after 300ms"),
        "{error}"
    );
    still_classifies().await;

    let bomb = load(&runtime, "classifier-memory-bomb").with_limits(Limits {
        memory_bytes: 8 << 20,
        deadline: Duration::from_secs(10),
    });
    let error = bomb.classify(&facts, &[]).await.expect_err("bomb");
    assert!(
        matches!(
            error.kind,
            CallErrorKind::ResourceExhausted { limit_bytes, .. } if limit_bytes == 8 << 20
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("exceeded its memory limit of 8388608 bytes"),
        "{error}"
    );
    still_classifies().await;

    // Each call gets a fresh instance: the misbehaving plugins' other operation still runs.
    for plugin in [&panics, &endless, &bomb] {
        plugin
            .validate_settings(&[])
            .await
            .expect("validate-settings of a misbehaving classifier");
    }
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

/// A plugin configuration for `dir` with `yaml`, plus the example rules as the multi-line
/// setting of `profiles` when `with_rules`.
fn config(dir: &tempfile::TempDir, yaml: &str, with_rules: bool) -> CatalogConfig {
    let mut text = yaml.to_owned();
    if with_rules {
        text.push_str("plugins:\n  profiles:\n    settings:\n      rules: |\n");
        for line in example_rules().lines() {
            text.push_str(&format!("        {line}\n"));
        }
    }
    let mut config = CatalogConfig::from_yaml(&text).expect("valid plugin configuration");
    config.dir = dir.path().to_owned();
    config
}

#[tokio::test]
async fn the_configured_classifiers_run_in_order_with_their_settings() {
    let runtime = runtime();
    let dir = directory(&[
        "profiles",
        "classifier-panic",
        "classifier-endless-loop",
        "lookup-echo",
    ]);
    let catalog = PluginCatalog::load(
        &runtime,
        config(&dir, "classifiers: [profiles, classifier-panic]\n", true),
    )
    .await;
    assert!(catalog.problems.is_empty(), "{:?}", catalog.problems);
    assert!(
        catalog.config_problems.is_empty(),
        "{:?}",
        catalog.config_problems
    );
    let names: Vec<&str> = catalog
        .server_classifiers()
        .into_iter()
        .map(|plugin| plugin.identity().name.as_str())
        .collect();
    assert_eq!(
        names,
        ["profiles", "classifier-panic"],
        "in the configured order; the unlisted endless loop is not used"
    );
    assert_eq!(catalog.installed_server_classifiers().len(), 3);
    let profiles = catalog.server_classifiers()[0];
    let classified = profiles
        .classify(
            &server("storage-1", "EPYC", 256, 12, &[]),
            catalog.settings("profiles"),
        )
        .await
        .expect("classify with the configured settings");
    assert_eq!(sku(&classified.labels), Some("storage-dense"));

    let none = PluginCatalog::load(&runtime, config(&dir, "", true)).await;
    assert!(none.server_classifiers().is_empty(), "none unless listed");
    assert!(
        none.config_problems.is_empty(),
        "{:?}",
        none.config_problems
    );
}

#[tokio::test]
async fn a_classifier_list_that_does_not_fit_the_installed_plugins_is_reported() {
    let runtime = runtime();
    let dir = directory(&["profiles", "lookup-echo"]);
    let catalog = PluginCatalog::load(
        &runtime,
        config(&dir, "classifiers: [ghost, lookup-echo, profiles]\n", false),
    )
    .await;
    let problems: Vec<String> = catalog
        .config_problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(matches!(
        &catalog.config_problems[0],
        ConfigProblem::ClassifierNotInstalled { name, .. } if name == "ghost"
    ));
    assert!(
        problems[0]
            .contains("lists classifier ghost under `classifiers`, but there is no ghost.wasm"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].contains(
            "lists lookup-echo under `classifiers`, but it is a credential-lookup plugin, not a server-classifier"
        ),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].contains("plugin profiles rejects its settings in the plugin configuration")
            && problems[2]
                .contains("the setting \"rules\" (the profile rules, YAML or JSON) is missing"),
        "{}",
        problems[2]
    );
    assert_eq!(
        catalog
            .server_classifiers()
            .iter()
            .map(|plugin| plugin.identity().name.as_str())
            .collect::<Vec<_>>(),
        ["profiles"],
        "what did load is still listed, but the operator refuses to start with these problems"
    );

    let mut bad_rules = config(&dir, "classifiers: [profiles]\n", false);
    bad_rules.plugins = BTreeMap::from([(
        String::from("profiles"),
        ferrometal::plugins::catalog::PluginOptions {
            settings: BTreeMap::from([(
                String::from("rules"),
                String::from("profiles:\n- name: gpu\n  taints: [{key: gpu, effect: Sometimes}]\n"),
            )]),
            ..Default::default()
        },
    )]);
    let catalog = PluginCatalog::load(&runtime, bad_rules).await;
    let problems: Vec<String> = catalog
        .config_problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0]
            .contains("profiles[0] (gpu).taints[0].effect: \"Sometimes\" is not NoBind or Evict"),
        "{}",
        problems[0]
    );
}
