//! The plugin configuration's per-plugin settings reach `ferrometal run`'s plugin calls: the
//! bundled Redfish driver, configured (`--plugin-config`) with `auth: session` and a power
//! wait, discovers a simulated fleet through Redfish sessions that it always logs out of
//! again; and a setting the driver rejects stops the operator at start, naming it.

use std::time::Duration;

use ferrometal_sim::lab::Lab;

mod common;

#[tokio::test]
async fn redfish_sessions_and_power_wait_from_the_plugin_configuration_reach_every_driver_call() {
    let mut options = common::lab_options("plugin-settings", 2, 2, 0);
    std::fs::create_dir_all(&options.work_dir).expect("work dir");
    let config = options.work_dir.join("plugins.yaml");
    std::fs::write(
        &config,
        "plugins:\n  redfish:\n    grants: [credentials/reveal]\n    settings:\n      auth: session\n      power-wait-seconds: 30\n",
    )
    .expect("write plugin config");
    options.operator_args.extend([
        String::from("--plugin-config"),
        config.display().to_string(),
    ]);
    let mut lab = Lab::start(options, |line| eprintln!("lab: {line}"))
        .await
        .expect("the lab starts");

    lab.until_available(4, Duration::from_secs(300), Duration::from_millis(500))
        .await
        .unwrap_or_else(|report| panic!("{report}"));
    // Discovery ends with the machines powered off again: set-power with the power wait.
    for _ in 0..600 {
        if lab.fleet.machines().all(|machine| !machine.powered()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lab.fleet.machines().all(|machine| !machine.powered()),
        "machines still on; operator log:\n{}",
        lab.operator_log_tail(60)
    );

    // Stopped gracefully, the operator lets running calls finish: each logged out of its
    // session, so no BMC is left with one open.
    let operator = lab.operator().expect("the lab runs the operator");
    operator.interrupt().expect("SIGINT");
    let status = operator
        .wait_for_exit(Duration::from_secs(60))
        .expect("wait")
        .expect("the operator stops");
    assert!(status.success(), "{status}");
    for bmc in lab.fleet.bmcs() {
        assert!(
            bmc.sessions_created() > 0,
            "BMC {} answered {} requests without a session; operator log:\n{}",
            bmc.spec().index,
            bmc.requests(),
            lab.operator_log_tail(80)
        );
        assert_eq!(
            bmc.open_sessions(),
            0,
            "BMC {} has sessions left open ({} created)",
            bmc.spec().index,
            bmc.sessions_created()
        );
    }

    // A setting the driver rejects stops `ferrometal run` at start with a message naming it.
    let rejected = lab.work_dir().join("plugins-rejected.yaml");
    std::fs::write(
        &rejected,
        "plugins:\n  redfish:\n    settings:\n      power-wait-seconds: 999\n",
    )
    .expect("write plugin config");
    let mut refused = lab
        .spawn_operator(
            "ferrometal-run-rejected",
            &[("--plugin-config", rejected.display().to_string())],
            None,
        )
        .expect("start");
    let status = refused
        .wait_for_exit(Duration::from_secs(60))
        .expect("wait")
        .expect("it does not start");
    assert!(!status.success());
    let log = refused.log();
    assert!(
        log.contains("plugin redfish rejects its settings in the plugin configuration")
            && log.contains("power-wait-seconds must be a whole number from 0 to 45"),
        "{log}"
    );
}
