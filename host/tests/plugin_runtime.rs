//! The plugin runtime against real components built from `plugins/` (`make plugins`):
//! well-behaved calls work, misbehaving plugins end in typed errors, and the host keeps
//! serving other calls afterwards.

use std::time::Duration;

use ferrometal::plugins::credential_lookup::{CredentialLookupPlugin, DEFAULT_LIMITS};
use ferrometal::plugins::types::GuestError;
use ferrometal::plugins::{
    CacheOutcome, CallErrorKind, Limits, LoadError, MetadataProblem, PluginMetrics, PluginRuntime,
    RuntimeConfig,
};

fn runtime(config: RuntimeConfig) -> PluginRuntime {
    PluginRuntime::new(config, PluginMetrics::default()).expect("engine")
}

fn load(runtime: &PluginRuntime, name: &str) -> CredentialLookupPlugin {
    let path = testenv::components::component(name).expect("component built by `make plugins`");
    runtime
        .load_credential_lookup(&path)
        .unwrap_or_else(|error| panic!("load {name}: {error}"))
}

#[tokio::test]
async fn a_well_behaved_plugin_answers_lookups() {
    let runtime = runtime(RuntimeConfig::default());
    let echo = load(&runtime, "lookup-echo");
    assert_eq!(echo.identity().world.as_str(), "credential-lookup");
    assert_eq!(echo.identity().abi, "0.1.0");
    assert_eq!(echo.identity().digest.len(), 64);

    let profile = echo
        .lookup("52-54-00-AA-BB-CC", &[])
        .await
        .expect("lookup")
        .expect("known prefix");
    assert_eq!(profile.protocol, "Redfish");
    assert_eq!(profile.port, 8443);
    let users: Vec<&str> = profile
        .default_credentials
        .iter()
        .map(|c| c.username.as_str())
        .collect();
    assert_eq!(users, ["admin", "root"], "credentials keep their order");
    assert!(
        !format!("{profile:?}").contains("calvin"),
        "Debug output hides passwords"
    );

    assert_eq!(
        echo.lookup("00:1a:2b:3c:4d:5e", &[]).await.expect("lookup"),
        None
    );

    let error = echo
        .lookup("invalid", &[])
        .await
        .expect_err("invalid input");
    assert!(matches!(
        error.kind,
        CallErrorKind::Plugin(GuestError::InvalidInput(_))
    ));
    assert!(error.to_string().contains("lookup-echo"), "{error}");

    echo.validate_settings(&[("port".into(), "8443".into())])
        .await
        .expect("known setting");
    let error = echo
        .validate_settings(&[("colour".into(), "blue".into())])
        .await
        .expect_err("unknown setting");
    assert!(
        error.to_string().contains("unknown setting \"colour\""),
        "{error}"
    );
}

#[tokio::test]
async fn an_endless_loop_times_out_and_the_host_keeps_serving() {
    let runtime = runtime(RuntimeConfig::default());
    let endless = load(&runtime, "lookup-endless-loop").with_limits(Limits {
        deadline: Duration::from_millis(300),
        ..DEFAULT_LIMITS
    });
    let echo = load(&runtime, "lookup-echo");

    let (stuck, served) = tokio::join!(endless.lookup("52:54:00:00:00:01", &[]), async {
        // Runs while the endless loop spins: the loop must not hold the executor.
        echo.lookup("52:54:00:00:00:02", &[]).await
    });
    let error = stuck.expect_err("endless loop");
    assert!(
        matches!(error.kind, CallErrorKind::Timeout(d) if d == Duration::from_millis(300)),
        "{error}"
    );
    assert!(error.to_string().contains("timed out"), "{error}");
    assert!(served.expect("echo").is_some());
    assert!(
        echo.lookup("52:54:00:00:00:03", &[])
            .await
            .expect("after")
            .is_some()
    );
}

#[tokio::test]
async fn a_try_reserve_past_the_memory_limit_fails_softly_inside_the_plugin() {
    let runtime = runtime(RuntimeConfig::default());
    let plugin = load(&runtime, "lookup-try-reserve").with_limits(Limits {
        memory_bytes: 8 << 20,
        deadline: Duration::from_secs(10),
    });
    let setting = |bytes: usize| vec![(String::from("bytes"), bytes.to_string())];

    // 64 MiB past an 8 MiB limit: `memory.grow` returns -1, `try_reserve` an error, and the
    // plugin answers with its own error instead of being killed.
    let error = plugin
        .lookup("52:54:00:00:00:01", &setting(64 << 20))
        .await
        .expect_err("more than the limit");
    match &error.kind {
        CallErrorKind::Plugin(GuestError::InvalidInput(message)) => assert!(
            message.contains("try_reserve of 67108864 bytes failed")
                && message.contains("carried on"),
            "{message}"
        ),
        other => panic!("expected the plugin's own error, got {other}"),
    }

    // Within the limit the same call gets its memory.
    assert_eq!(
        plugin
            .lookup("52:54:00:00:00:02", &setting(1 << 20))
            .await
            .expect("within the limit"),
        None
    );
}

#[tokio::test]
async fn a_memory_bomb_hits_its_limit() {
    let runtime = runtime(RuntimeConfig::default());
    let bomb = load(&runtime, "lookup-memory-bomb").with_limits(Limits {
        memory_bytes: 8 << 20,
        deadline: Duration::from_secs(10),
    });
    let error = bomb
        .lookup("52:54:00:00:00:01", &[])
        .await
        .expect_err("bomb");
    match &error.kind {
        CallErrorKind::ResourceExhausted {
            limit_bytes,
            requested_bytes,
        } => {
            assert_eq!(*limit_bytes, 8 << 20);
            assert!(requested_bytes > limit_bytes);
        }
        other => panic!("expected ResourceExhausted, got {other}"),
    }
    let echo = load(&runtime, "lookup-echo");
    assert!(
        echo.lookup("52:54:00:00:00:02", &[])
            .await
            .expect("after")
            .is_some()
    );
    bomb.validate_settings(&[])
        .await
        .expect("the bomb's other operation still runs");
}

#[tokio::test]
async fn a_panic_is_a_crash_that_carries_the_panic_message_and_a_backtrace() {
    let runtime = runtime(RuntimeConfig::default());
    let panics = load(&runtime, "lookup-panic");
    let echo = load(&runtime, "lookup-echo");
    let error = panics
        .lookup("52:54:00:00:00:01", &[])
        .await
        .expect_err("panic");
    match &error.kind {
        CallErrorKind::Crashed {
            panic, backtrace, ..
        } => {
            let panic = panic.as_deref().unwrap_or_default();
            assert!(
                panic.contains("MAC database is corrupt near 52:54:00:00:00:01"),
                "{panic}"
            );
            // The wasm frames, innermost first, down to the exported function.
            assert!(backtrace.contains("wasm backtrace"), "{backtrace}");
            assert!(backtrace.contains("lookup"), "{backtrace}");
        }
        other => panic!("expected Crashed, got {other}"),
    }
    // Every call gets a fresh instance: the next one panics the same way rather than
    // finding a poisoned store, and the same plugin still answers calls that do not panic.
    assert!(matches!(
        panics.lookup("x", &[]).await.expect_err("again").kind,
        CallErrorKind::Crashed { .. }
    ));
    panics
        .validate_settings(&[])
        .await
        .expect("the panicking plugin's other operation");
    assert!(
        echo.lookup("52:54:00:00:00:02", &[])
            .await
            .expect("other plugins keep being served")
            .is_some()
    );
}

#[tokio::test]
async fn many_calls_run_concurrently_under_the_global_cap() {
    let runtime = runtime(RuntimeConfig {
        max_concurrent_calls: 4,
        ..RuntimeConfig::default()
    });
    let echo = load(&runtime, "lookup-echo");
    let calls = (0..64).map(|i| {
        let echo = echo.clone();
        async move { echo.lookup(&format!("52:54:00:00:00:{i:02x}"), &[]).await }
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| matches!(r, Ok(Some(_)))));
}

#[test]
fn compiled_components_are_cached_and_a_corrupt_entry_is_recompiled() {
    let cache = tempfile::tempdir().expect("tempdir");
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let runtime = runtime(config.clone());
    assert_eq!(
        load(&runtime, "lookup-echo").cache_outcome(),
        CacheOutcome::Miss
    );
    assert_eq!(
        load(&runtime, "lookup-echo").cache_outcome(),
        CacheOutcome::Hit
    );

    let entries: Vec<_> = std::fs::read_dir(cache.path())
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    std::fs::write(&entries[0], b"definitely not machine code").expect("corrupt");
    let reloaded = load(&runtime, "lookup-echo");
    assert_eq!(reloaded.cache_outcome(), CacheOutcome::Replaced);
    assert_eq!(
        load(&runtime, "lookup-echo").cache_outcome(),
        CacheOutcome::Hit
    );
}

#[test]
fn files_that_are_not_plugins_are_refused_with_a_clear_message() {
    let runtime = runtime(RuntimeConfig::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("not-a-plugin.wasm");
    std::fs::write(&script, "#!/bin/sh\n").expect("write");
    let error = runtime
        .load_credential_lookup(&script)
        .expect_err("not wasm");
    assert!(matches!(error, LoadError::Metadata { .. }), "{error}");
    assert!(
        error.to_string().contains("not a WebAssembly component"),
        "{error}"
    );

    let missing = dir.path().join("missing.wasm");
    let error = runtime
        .load_credential_lookup(&missing)
        .expect_err("missing");
    assert!(matches!(error, LoadError::Read { .. }), "{error}");
}

#[tokio::test]
async fn calls_and_outcomes_are_counted_in_metrics() {
    let metrics = PluginMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let runtime = PluginRuntime::new(RuntimeConfig::default(), metrics).expect("engine");
    let echo = load(&runtime, "lookup-echo");
    echo.lookup("52:54:00:00:00:01", &[]).await.expect("ok");
    let _ = echo.lookup("invalid", &[]).await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(r#"ferrometal_plugin_calls_total{plugin="lookup-echo",world="credential-lookup",operation="lookup",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"outcome="plugin_error"} 1"#), "{text}");
    assert!(
        text.contains(r#"ferrometal_plugin_loads_total{outcome="ok"} 1"#),
        "{text}"
    );
    // Both calls were timed.
    assert!(
        text.contains(r#"ferrometal_plugin_call_duration_seconds_count{plugin="lookup-echo",world="credential-lookup",operation="lookup"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"ferrometal_plugin_compile_cache_total{outcome="disabled"} 1"#),
        "{text}"
    );
}

#[test]
fn compile_cache_hits_and_misses_are_counted() {
    let cache = tempfile::tempdir().expect("tempdir");
    let metrics = PluginMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let runtime = PluginRuntime::new(
        RuntimeConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            ..RuntimeConfig::default()
        },
        metrics,
    )
    .expect("engine");
    for _ in 0..3 {
        load(&runtime, "lookup-echo");
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(r#"ferrometal_plugin_compile_cache_total{outcome="miss"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"ferrometal_plugin_compile_cache_total{outcome="hit"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn an_ignition_generator_renders_checked_ignition() {
    use ferrometal::plugins::ignition_generator::{IgnitionRequest, ServerFacts};
    let runtime = runtime(RuntimeConfig::default());
    let path = testenv::components::component("ignition-minimal").expect("built");
    let generator = runtime.load_ignition_generator(&path).expect("load");
    let mut request = IgnitionRequest {
        facts: ServerFacts {
            system_uuid: "8f0b8c34-2b1e-4c5e-9a61-0d9a3c2f7e01".into(),
            hostname: None,
            macs: vec!["52:54:00:12:34:56".into()],
            labels: Vec::new(),
        },
        registry_url: "http://10.0.0.1:8080/register".into(),
        boot_token: "abc".into(),
        ssh_authorized_keys: vec!["ssh-ed25519 AAAA test".into()],
        settings: Vec::new(),
    };
    let ignition = generator.generate(&request).await.expect("generate");
    let value: serde_json::Value = serde_json::from_str(&ignition).expect("json");
    assert_eq!(value["ignition"]["version"], "3.4.0");
    let unit = value["systemd"]["units"][0]["contents"]
        .as_str()
        .expect("unit");
    assert!(unit.contains("--registry-url=http://10.0.0.1:8080/register"));
    assert!(unit.contains("--server-uuid=8f0b8c34-2b1e-4c5e-9a61-0d9a3c2f7e01"));

    request.settings = vec![("broken".into(), "true".into())];
    let error = generator
        .generate(&request)
        .await
        .expect_err("not ignition");
    assert!(
        error
            .to_string()
            .contains("generated an invalid ignition: not JSON"),
        "{error}"
    );

    // A plugin of another world is refused with both worlds named.
    let lookup = testenv::components::component("lookup-echo").expect("built");
    let error = runtime
        .load_ignition_generator(&lookup)
        .expect_err("wrong world");
    assert!(
        error
            .to_string()
            .contains("as a ignition-generator plugin: it implements credential-lookup"),
        "{error}"
    );
}

#[tokio::test]
async fn a_plugin_built_for_another_abi_is_refused_naming_the_supported_range() {
    // A real component whose metadata section claims ABI 0.2.0, as a future SDK would write.
    let metrics = PluginMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let runtime = PluginRuntime::new(RuntimeConfig::default(), metrics).expect("engine");
    let path = testenv::components::component("lookup-future-abi").expect("built");
    let error = runtime
        .load_credential_lookup(&path)
        .expect_err("unsupported ABI");
    let message = error.to_string();
    assert!(
        matches!(
            &error,
            LoadError::Metadata {
                problem: MetadataProblem::UnsupportedAbi { found, .. },
                ..
            } if found == "0.2.0"
        ),
        "{message}"
    );
    assert!(
        message
            .contains("built for plugin ABI 0.2.0, but this ferrometal supports >=0.1.0, <0.2.0"),
        "{message}"
    );
    // The runtime that refused it keeps loading and serving other plugins.
    let echo = load(&runtime, "lookup-echo");
    assert!(
        echo.lookup("52:54:00:00:00:01", &[])
            .await
            .expect("lookup")
            .is_some()
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(r#"ferrometal_plugin_loads_total{outcome="invalid_metadata"} 1"#),
        "{text}"
    );
}

#[test]
fn a_plugin_that_imports_wasi_sockets_is_refused_at_load_time() {
    let metrics = PluginMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let runtime = PluginRuntime::new(RuntimeConfig::default(), metrics).expect("engine");
    let path = testenv::components::component("lookup-sockets").expect("built");
    let error = runtime
        .load_credential_lookup(&path)
        .expect_err("no sockets for plugins");
    let LoadError::ForbiddenImport { interface, .. } = &error else {
        panic!("not refused for its import: {error}");
    };
    assert!(interface.starts_with("wasi:sockets/"), "{interface}");
    assert!(
        error.to_string().contains("does not provide to plugins"),
        "{error}"
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(r#"ferrometal_plugin_loads_total{outcome="capability_denied"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"ferrometal_plugin_capability_denials_total{plugin="lookup-sockets",capability="wasi:sockets/"#),
        "{text}"
    );
}

/// The one compiled-cache entry in `dir` whose name starts with `digest`.
fn cache_entry(dir: &std::path::Path, digest: &str) -> std::path::PathBuf {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(digest))
        })
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[tokio::test]
async fn a_cache_entry_compiled_from_another_component_is_not_run() {
    let cache = tempfile::tempdir().expect("tempdir");
    let runtime = runtime(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    });
    let echo = load(&runtime, "lookup-echo");
    let panic = load(&runtime, "lookup-panic");
    // Someone puts the panicking plugin's machine code where the echo plugin's belongs.
    std::fs::copy(
        cache_entry(cache.path(), &panic.identity().digest),
        cache_entry(cache.path(), &echo.identity().digest),
    )
    .expect("swap entries");

    let reloaded = load(&runtime, "lookup-echo");
    assert_eq!(reloaded.cache_outcome(), CacheOutcome::Replaced);
    let profile = reloaded
        .lookup("52:54:00:aa:bb:cc", &[])
        .await
        .expect("the echo plugin's own code runs");
    assert!(profile.is_some());
    assert_eq!(
        load(&runtime, "lookup-echo").cache_outcome(),
        CacheOutcome::Hit,
        "the entry was written again"
    );
}

#[tokio::test]
async fn a_cache_entry_with_a_changed_byte_is_compiled_again() {
    let cache = tempfile::tempdir().expect("tempdir");
    let runtime = runtime(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    });
    let echo = load(&runtime, "lookup-echo");
    let entry = cache_entry(cache.path(), &echo.identity().digest);
    let mut bytes = std::fs::read(&entry).expect("read entry");
    // A bit deep inside the machine code, far from any header.
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&entry, &bytes).expect("tamper");

    let reloaded = load(&runtime, "lookup-echo");
    assert_eq!(reloaded.cache_outcome(), CacheOutcome::Replaced);
    assert!(
        reloaded
            .lookup("52:54:00:aa:bb:cc", &[])
            .await
            .expect("lookup")
            .is_some()
    );
    assert_ne!(
        std::fs::read(&entry).expect("read entry"),
        bytes,
        "the damaged entry was replaced"
    );
}
