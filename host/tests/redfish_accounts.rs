//! BMC account passwords through the real `redfish` component: `get-account-policy` and
//! `set-account-password` against the project's simulator (AccountService with lockout policy
//! and password rules) and against sushy-emulator, which has no AccountService.

use std::time::Duration;

use ferrometal::plugins::accounts::{AccountPassword, AccountPolicy};
use ferrometal::plugins::bmc_driver::BmcDriverPlugin;
use ferrometal::plugins::types::{BmcEndpoint, GuestError, TlsPolicy};
use ferrometal::plugins::{CallErrorKind, PluginMetrics, PluginRuntime, RuntimeConfig};
use ferrometal_sim::{AccountPolicy as SimPolicy, Fleet, FleetOptions, FleetSpec, LoginStats};
use testenv::{BasicAuth, FakeSystem, FeatureSet, SushyEmulator, SushyOptions};

fn redfish() -> BmcDriverPlugin {
    let runtime = PluginRuntime::new(
        RuntimeConfig {
            granted_capabilities: vec![String::from("credentials/reveal")],
            ..RuntimeConfig::default()
        },
        PluginMetrics::default(),
    )
    .expect("engine");
    let path = testenv::components::component("redfish").expect("built by `make plugins`");
    runtime.load_bmc_driver(&path).expect("load redfish")
}

/// One simulated BMC (plain HTTP) with `policy`, and its scratch space.
async fn sim_bmc(first_bmc: usize, policy: SimPolicy) -> (Fleet, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = Fleet::start(FleetOptions {
        spec: FleetSpec {
            seed: 7,
            first_bmc,
            ..FleetSpec::default()
        },
        profile: ferrometal_sim::Profile {
            accounts: policy,
            ..ferrometal_sim::Profile::default()
        },
        work_dir: dir.path().join("machines"),
        ..FleetOptions::default()
    })
    .await
    .expect("simulated BMC");
    (fleet, dir)
}

fn sim_endpoint(fleet: &Fleet, username: &str, password: &str) -> BmcEndpoint {
    let address = fleet.bmcs()[0].address().expect("listening");
    BmcEndpoint {
        scheme: "http".into(),
        host: address.ip().to_string(),
        port: address.port(),
        tls: TlsPolicy::Insecure,
        username: username.into(),
        password: password.into(),
        manufacturer_hint: None,
        settings: Vec::new(),
    }
}

fn account(username: &str, password: &str, role: Option<&str>) -> AccountPassword {
    AccountPassword {
        username: username.into(),
        password: password.into(),
        create_with_role: role.map(str::to_owned),
    }
}

fn unauthorized(result: Result<impl std::fmt::Debug, ferrometal::plugins::CallError>) -> bool {
    matches!(
        result,
        Err(ferrometal::plugins::CallError {
            kind: CallErrorKind::Plugin(GuestError::Unauthorized(_)),
            ..
        })
    )
}

#[tokio::test]
async fn a_new_password_replaces_the_old_one_on_the_simulated_bmc() {
    let (fleet, _dir) = sim_bmc(67_000, SimPolicy::default()).await;
    let redfish = redfish();
    let old = FleetSpec::default().password;
    let as_admin = sim_endpoint(&fleet, "admin", &old);

    let policy = redfish.account_policy(&as_admin).await.expect("policy");
    assert_eq!(
        policy,
        AccountPolicy {
            lockout_threshold: Some(10),
            lockout_duration_seconds: Some(60),
            lockout_counter_reset_after_seconds: Some(60),
            lockout_counter_reset_enabled: Some(true),
            min_password_length: Some(8),
            max_password_length: Some(20),
            password_expiration_days: None,
        }
    );

    let change = redfish
        .set_account_password(&as_admin, &account("admin", "n3w-Passw0rd", None))
        .await
        .expect("set the password");
    assert_eq!(change.uri, "/redfish/v1/AccountService/Accounts/1");
    assert!(!change.created);
    assert_eq!(change.policy, policy, "the change reports the policy too");

    assert!(
        unauthorized(redfish.probe(&as_admin).await),
        "the old password no longer works"
    );
    let identity = redfish
        .probe(&sim_endpoint(&fleet, "admin", "n3w-Passw0rd"))
        .await
        .expect("the new password works");
    assert_eq!(identity.systems.len(), 1);
    assert_eq!(
        fleet.bmcs()[0].login_stats(),
        LoginStats {
            failed_logins: 1,
            lockouts: 0
        },
        "one failed login: the probe with the old password"
    );
}

#[tokio::test]
async fn a_too_short_password_is_refused_readably_without_showing_it() {
    let (fleet, _dir) = sim_bmc(67_010, SimPolicy::default()).await;
    let redfish = redfish();
    let as_admin = sim_endpoint(&fleet, "admin", &FleetSpec::default().password);
    let error = redfish
        .set_account_password(&as_admin, &account("admin", "Sh0rt!", None))
        .await
        .expect_err("shorter than MinPasswordLength");
    let message = error.to_string();
    assert!(
        matches!(
            &error.kind,
            CallErrorKind::Plugin(GuestError::InvalidInput(_))
        ),
        "{message}"
    );
    assert!(message.contains("set-account-password"), "{message}");
    assert!(message.contains("minimum of 8 characters"), "{message}");
    assert!(!message.contains("Sh0rt!"), "{message}");
    // Nothing was written: the old password still works.
    redfish.probe(&as_admin).await.expect("unchanged");

    // Longer than MaxPasswordLength: refused the same way.
    let error = redfish
        .set_account_password(
            &as_admin,
            &account("admin", "n3w-Passw0rd-that-is-long", None),
        )
        .await
        .expect_err("longer than MaxPasswordLength");
    let message = error.to_string();
    assert!(message.contains("maximum of 20 characters"), "{message}");
    assert!(!message.contains("n3w-Passw0rd-that-is-long"), "{message}");
}

#[tokio::test]
async fn a_missing_account_is_created_with_its_role_and_can_log_in() {
    let (fleet, _dir) = sim_bmc(67_020, SimPolicy::default()).await;
    let redfish = redfish();
    let as_admin = sim_endpoint(&fleet, "admin", &FleetSpec::default().password);
    let error = redfish
        .set_account_password(&as_admin, &account("ops", "0ps-Passw0rd", None))
        .await
        .expect_err("no role, no account");
    assert!(error.to_string().contains("no account \"ops\""), "{error}");
    let change = redfish
        .set_account_password(&as_admin, &account("ops", "0ps-Passw0rd", Some("Operator")))
        .await
        .expect("created");
    assert!(change.created);
    assert_eq!(change.uri, "/redfish/v1/AccountService/Accounts/2");
    redfish
        .probe(&sim_endpoint(&fleet, "ops", "0ps-Passw0rd"))
        .await
        .expect("the new account logs in");
}

#[tokio::test]
async fn failed_logins_lock_the_account_for_the_duration_even_for_the_right_password() {
    let (fleet, _dir) = sim_bmc(
        67_030,
        SimPolicy {
            lockout_threshold: 2,
            lockout_duration: Duration::from_secs(2),
            ..SimPolicy::default()
        },
    )
    .await;
    let redfish = redfish();
    let right = sim_endpoint(&fleet, "admin", &FleetSpec::default().password);
    let policy = redfish.account_policy(&right).await.expect("policy");
    assert_eq!(policy.lockout_threshold, Some(2));
    assert_eq!(policy.lockout_duration_seconds, Some(2));
    let wrong = sim_endpoint(&fleet, "admin", "wrong-password");
    for _ in 0..2 {
        assert!(unauthorized(redfish.probe(&wrong).await));
    }
    assert!(fleet.bmcs()[0].is_locked("admin"));
    assert!(
        unauthorized(redfish.probe(&right).await),
        "locked out: the right password is refused too"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    redfish.probe(&right).await.expect("the lockout ended");
    assert_eq!(
        fleet.bmcs()[0].login_stats(),
        LoginStats {
            failed_logins: 3,
            lockouts: 1
        }
    );
}

// Multi-threaded: the CLI runs as a blocking child process while the simulator answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_the_policy_and_sets_a_password_from_a_file() {
    let (fleet, _dir) = sim_bmc(67_040, SimPolicy::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("password");
    std::fs::write(&password, format!("{}\n", FleetSpec::default().password)).expect("write");
    let new_password = dir.path().join("new-password");
    std::fs::write(&new_password, "n3w-Passw0rd\n").expect("write");
    let address = fleet.bmcs()[0].address().expect("listening");
    let bmc = format!("http://{address}");
    let redfish = testenv::components::component("redfish").expect("built");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferrometal"))
            .args(["plugin", "call"])
            .arg(&redfish)
            .args(["--grant", "credentials/reveal"])
            .args(args)
            .args(["--bmc", &bmc, "--username", "admin", "--password-file"])
            .arg(&password)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run ferrometal");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = run(&["get-account-policy"]);
    assert!(ok, "{stderr}");
    let policy: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(policy["lockoutThreshold"], 10);
    assert_eq!(policy["minPasswordLength"], 8);

    let new_password_arg = new_password.to_str().expect("UTF-8 path");
    let (ok, stdout, stderr) = run(&[
        "set-account-password",
        "--account",
        "admin",
        "--new-password-file",
        new_password_arg,
    ]);
    assert!(ok, "{stderr}");
    let change: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(change["uri"], "/redfish/v1/AccountService/Accounts/1");
    assert!(!stdout.contains("n3w-Passw0rd") && !stderr.contains("n3w-Passw0rd"));

    // The password file now holds the old password: the BMC refuses it.
    let (ok, _, stderr) = run(&["get-account-policy"]);
    assert!(!ok);
    assert!(stderr.contains("unauthorized"), "{stderr}");
}

#[tokio::test]
async fn sushy_emulator_has_no_account_service_and_the_driver_says_so() {
    let bmc = SushyEmulator::start(SushyOptions {
        systems: vec![FakeSystem {
            uuid: String::from("6c1d7a40-93f1-4a55-8a3e-000000000a01"),
            name: String::from("rf-accounts"),
            power_state: testenv::PowerState::Off,
            boot_mode: Default::default(),
            macs: vec![String::from("52:54:00:ee:0a:01")],
        }],
        auth: Some(BasicAuth {
            username: "admin".into(),
            password: "rf-pw".into(),
        }),
        tls: true,
        feature_set: FeatureSet::Full,
        listen: None,
    })
    .await
    .expect("sushy-emulator");
    let ca = bmc.ca_cert_pem().expect("TLS").to_owned();
    let endpoint = BmcEndpoint {
        scheme: "https".into(),
        host: "127.0.0.1".into(),
        port: bmc.port(),
        tls: TlsPolicy::CaBundle(ca.clone()),
        username: "admin".into(),
        password: "rf-pw".into(),
        manufacturer_hint: None,
        settings: Vec::new(),
    };
    // What sushy-tools 2.2.0 answers: its service root links no AccountService, and the path
    // is unknown to it (404), with or without credentials.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
        .build()
        .expect("client");
    let root: serde_json::Value = client
        .get(format!("{}/redfish/v1/", bmc.base_url()))
        .send()
        .await
        .expect("GET root")
        .json()
        .await
        .expect("JSON");
    assert!(root.get("AccountService").is_none(), "{root}");
    let status = client
        .get(format!("{}/redfish/v1/AccountService", bmc.base_url()))
        .basic_auth("admin", Some("rf-pw"))
        .send()
        .await
        .expect("GET AccountService")
        .status();
    assert_eq!(status.as_u16(), 404);

    let redfish = redfish();
    for error in [
        redfish
            .account_policy(&endpoint)
            .await
            .expect_err("no AccountService"),
        redfish
            .set_account_password(&endpoint, &account("admin", "n3w-Passw0rd", None))
            .await
            .expect_err("no AccountService"),
    ] {
        assert!(
            matches!(&error.kind, CallErrorKind::Plugin(GuestError::Unsupported(m)) if m.contains("no AccountService")),
            "{error}"
        );
    }
    redfish
        .probe(&endpoint)
        .await
        .expect("the password is unchanged");
}
