//! BMC credential rotation against the lab: a real control plane, `ferrometal run` with the
//! redfish and macdb plugins, and simulated BMCs that count failed logins against a lockout
//! threshold (10 failures lock an account for a minute).
//!
//! - Onboarding rotation through both discovery paths (BMCs announced by DHCP, whose
//!   BMCSecrets ferrometal writes from the credential database, and BMCs applied with a
//!   BMCSecret that opts in) leaves every BMC with a password of its own that works, the
//!   fleet's default no longer works, and the Servers still reach Available.
//! - The kill campaign: `ferrometal run` is killed with SIGKILL at seeded random moments
//!   while the fleet's passwords are rotated; at the end every BMCSecret matches its BMC and
//!   no BMC ever locked an account. `FERROMETAL_ROTATION_BMCS` (20; `make rotation-chaos`
//!   uses 100), `FERROMETAL_ROTATION_KILLS` (6) and `FERROMETAL_ROTATION_SEED` (from the
//!   clock, printed) set its size.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrometal::api::{BMC, BMCSecret, Endpoint};
use ferrometal::controllers::rotation::{OPT_IN_ANNOTATION, PENDING_PASSWORD_KEY};
use ferrometal_sim::lab::Lab;
use ferrometal_sim::spec::Rng;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

mod common;

/// Lab options with onboarding rotation on; applied BMCs are left to the test.
fn options(name: &str, bmcs: usize, dhcp_bmcs: usize) -> ferrometal_sim::lab::LabOptions {
    let mut options = ferrometal_sim::lab::LabOptions {
        apply_bmcs: false,
        ..common::lab_options(name, bmcs, 1, dhcp_bmcs)
    };
    options.operator_args.extend(
        ["--bmc-credential-rotation", "onboarding"]
            .map(String::from)
            .to_vec(),
    );
    options
}

/// Applies the BMCs that do not announce themselves, each with a BMCSecret that opts in to
/// rotation (as a person who wants it would write it).
async fn apply_opted_in(lab: &Lab, range: std::ops::Range<usize>) {
    lab.apply_bmcs(range.clone(), None)
        .await
        .expect("apply BMCs");
    let secrets: Api<BMCSecret> = Api::all(lab.client.clone());
    for index in range {
        let patch = json!({"metadata": {"annotations": {OPT_IN_ANNOTATION: "true"}}});
        secrets
            .patch(
                &format!("sim-bmc-{index}"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect("opt in");
    }
}

/// Where each BMC object's BMC listens, and its BMCSecret's user name and password (and
/// whether a pending password is left); BMCs whose Endpoint or BMCSecret does not exist
/// yet are left out.
async fn stored_credentials(lab: &Lab) -> BTreeMap<String, (SocketAddr, String, String, bool)> {
    let client = lab.client.clone();
    let secrets: BTreeMap<String, BMCSecret> = Api::<BMCSecret>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list BMCSecrets")
        .into_iter()
        .map(|secret| (secret.name_any(), secret))
        .collect();
    let endpoints: BTreeMap<String, Endpoint> = Api::<Endpoint>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list Endpoints")
        .into_iter()
        .map(|endpoint| (endpoint.name_any(), endpoint))
        .collect();
    let mut stored = BTreeMap::new();
    for bmc in Api::<BMC>::all(client)
        .list(&ListParams::default())
        .await
        .expect("list BMCs")
    {
        let ip = match (&bmc.spec.access, &bmc.spec.endpoint_ref) {
            (Some(access), _) => access.ip.clone(),
            (None, Some(reference)) => match endpoints.get(&reference.name) {
                Some(endpoint) => endpoint.spec.ip.clone(),
                None => continue,
            },
            (None, None) => panic!("BMC {} names no address", bmc.name_any()),
        };
        let address: SocketAddr = format!("{ip}:{}", bmc.spec.protocol.port)
            .parse()
            .expect("an address");
        // A BMC an Endpoint just created may not have its BMCSecret yet.
        let Some(secret) = secrets.get(&bmc.spec.bmc_secret_ref.name) else {
            continue;
        };
        let value = |key: &str| {
            String::from_utf8(secret.value(key).unwrap_or_default()).expect("UTF-8 credentials")
        };
        stored.insert(
            bmc.name_any(),
            (
                address,
                value("username"),
                value("password"),
                secret.value(PENDING_PASSWORD_KEY).is_some(),
            ),
        );
    }
    stored
}

/// Whether `password` logs in to the BMC at `address` (one Basic-auth request).
async fn logs_in(address: SocketAddr, username: &str, password: &str) -> bool {
    let status = reqwest::Client::new()
        .get(format!("http://{address}/redfish/v1/Systems"))
        .basic_auth(username, Some(password))
        .send()
        .await
        .expect("the simulated BMC answers")
        .status();
    assert!(
        status == 200 || status == 401,
        "unexpected answer {status} from {address}"
    );
    status == 200
}

/// The reason of each BMC's `CredentialsRotated` condition (`-` when it has none).
async fn rotation_reasons(lab: &Lab) -> BTreeMap<String, String> {
    Api::<BMC>::all(lab.client.clone())
        .list(&ListParams::default())
        .await
        .map(|list| {
            list.into_iter()
                .map(|bmc| {
                    let reason = bmc
                        .status
                        .as_ref()
                        .and_then(|status| {
                            status
                                .conditions
                                .iter()
                                .find(|c| c.type_ == "CredentialsRotated")
                        })
                        .map_or_else(
                            || String::from("-"),
                            |c| format!("{}: {}", c.reason, c.message),
                        );
                    (bmc.name_any(), reason)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `bmcs` BMCs report `CredentialsRotated` `Rotated` and none holds a pending
/// password; panics after `limit` with every BMC's condition and the operator's log.
async fn until_rotated(lab: &Lab, bmcs: usize, limit: Duration) {
    let started = Instant::now();
    loop {
        let reasons = rotation_reasons(lab).await;
        let rotated = reasons
            .values()
            .filter(|reason| reason.starts_with("Rotated:"))
            .count();
        let pending = stored_credentials(lab)
            .await
            .values()
            .filter(|(_, _, _, pending)| *pending)
            .count();
        if rotated == bmcs && pending == 0 {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "after {limit:?}, {rotated} of {bmcs} BMCs rotated, {pending} pending:\n{reasons:#?}\noperator log:\n{}",
            lab.operator_log_tail(80)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every BMCSecret's password works on its BMC, differs from every other and from the
/// fleet's default, which no longer works; no simulated BMC ever locked an account.
async fn check_fleet(lab: &Lab, default: (&str, &str)) {
    let stored = stored_credentials(lab).await;
    assert_eq!(
        stored.len(),
        lab.fleet.bmcs().len(),
        "every BMC and BMCSecret exists"
    );
    let passwords: BTreeSet<&str> = stored.values().map(|(_, _, p, _)| p.as_str()).collect();
    assert_eq!(passwords.len(), stored.len(), "one password per BMC");
    for (name, (address, username, password, pending)) in &stored {
        assert!(!pending, "{name} still holds a pending password");
        assert_ne!(password, default.1, "{name} keeps the default");
        assert!(
            logs_in(*address, username, password).await,
            "{name}: the stored password does not work"
        );
        assert!(
            !logs_in(*address, default.0, default.1).await,
            "{name}: the default still works"
        );
    }
    for bmc in lab.fleet.bmcs() {
        let stats = bmc.login_stats();
        assert_eq!(
            stats.lockouts,
            0,
            "BMC {} locked an account ({} failed logins)",
            bmc.spec().index,
            stats.failed_logins
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn onboarding_rotation_gives_every_bmc_its_own_working_password_and_servers_still_discover() {
    let (bmcs, dhcp) = (6, 3);
    let options = options("rotation-onboarding", bmcs, dhcp);
    let default = (
        options.fleet.username.clone(),
        options.fleet.password.clone(),
    );
    let lab = Lab::start(options, |line| eprintln!("lab: {line}"))
        .await
        .expect("the lab starts");
    apply_opted_in(&lab, dhcp..bmcs).await;
    lab.until_available(bmcs, Duration::from_secs(240), Duration::from_millis(500))
        .await
        .expect("every Server Available");
    until_rotated(&lab, bmcs, Duration::from_secs(120)).await;
    check_fleet(&lab, (&default.0, &default.1)).await;
    let secret_values: Vec<String> = stored_credentials(&lab)
        .await
        .into_values()
        .map(|(_, _, password, _)| password)
        .collect();
    // On demand: metal-operator's operation annotation on a BMC rotates it again, and goes.
    let stored = stored_credentials(&lab).await;
    let (target, (_, _, before, _)) = stored.iter().next().expect("a BMC");
    let bmcs: Api<BMC> = Api::all(lab.client.clone());
    bmcs.patch(
        target,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
            "metal.ironcore.dev/operation": "rotate-credentials"}}})),
    )
    .await
    .expect("ask for a rotation");
    let started = Instant::now();
    loop {
        let now = stored_credentials(&lab).await;
        let bmc = bmcs.get(target).await.expect("read the BMC");
        let rotated = now
            .get(target)
            .is_some_and(|(_, _, password, pending)| password != before && !pending);
        if rotated
            && !bmc
                .metadata
                .annotations
                .unwrap_or_default()
                .contains_key("metal.ironcore.dev/operation")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{target} was not rotated on demand:\n{}",
            lab.operator_log_tail(60)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    check_fleet(&lab, (&default.0, &default.1)).await;
    let secret_values: Vec<String> = secret_values
        .into_iter()
        .chain(
            stored_credentials(&lab)
                .await
                .into_values()
                .map(|(_, _, password, _)| password),
        )
        .collect();
    let log = lab.operator_log();
    for password in &secret_values {
        assert!(!log.contains(password.as_str()), "a password is in the log");
    }
    assert!(log.contains("BMC credentials rotated"), "the log says so");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotations_killed_at_random_moments_end_with_every_secret_matching_its_bmc() {
    let number = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .map(|value| value.trim().parse().expect("a whole number"))
            .unwrap_or(default)
    };
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| since.as_secs());
    let bmcs = usize::try_from(number("FERROMETAL_ROTATION_BMCS", 20)).expect("fits");
    let kills = number("FERROMETAL_ROTATION_KILLS", 6);
    let seed = number("FERROMETAL_ROTATION_SEED", clock % 1_000_000);
    eprintln!(
        "rotation kill campaign: seed {seed} (replay with FERROMETAL_ROTATION_SEED={seed}), {bmcs} BMCs, {kills} kills"
    );
    let dhcp = bmcs / 2;
    let mut options = ferrometal_sim::lab::LabOptions {
        hold_dhcp_bmcs: true,
        ..options("rotation-kills", bmcs, dhcp)
    };
    options.fleet.seed = seed;
    let default = (
        options.fleet.username.clone(),
        options.fleet.password.clone(),
    );
    let mut lab = Lab::start(options, |line| eprintln!("lab: {line}"))
        .await
        .expect("the lab starts");
    // The BMCs come in waves, one now and one after each kill, so that every kill finds
    // rotations to interrupt.
    let waves = usize::try_from(kills).expect("fits") + 1;
    let applied = bmcs - dhcp;
    let release = async |lab: &Lab, wave: usize| {
        lab.fleet.release_dhcp_bmcs(dhcp * (wave + 1) / waves);
        apply_opted_in(
            lab,
            dhcp + applied * wave / waves..dhcp + applied * (wave + 1) / waves,
        )
        .await;
    };
    release(&lab, 0).await;
    let mut rng = Rng::new(seed, 0x0007_a7e5);
    let started = Instant::now();
    let mut in_flight = 0;
    for kill in 1..=kills {
        // Kill at a random moment once a rotation is under way (or after 20 s).
        let waiting = Instant::now();
        let mut pending = 0;
        while waiting.elapsed() < Duration::from_secs(20) {
            pending = stored_credentials(&lab)
                .await
                .values()
                .filter(|(_, _, _, pending)| *pending)
                .count();
            if pending > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
        lab.kill_operator().expect("kill the operator");
        in_flight += usize::from(pending > 0);
        eprintln!(
            "rotation kill campaign: {:>4}s kill {kill}, {pending} rotations in progress shortly before",
            started.elapsed().as_secs()
        );
        release(&lab, usize::try_from(kill).expect("fits")).await;
        lab.run_operator().expect("start the operator again");
    }
    assert!(
        kills == 0 || in_flight > 0,
        "no kill landed while a rotation was in progress"
    );
    // Rotations that spent their failed-login budget wait out the BMC's window (130 s).
    until_rotated(&lab, bmcs, Duration::from_secs(420)).await;
    check_fleet(&lab, (&default.0, &default.1)).await;
    let failed: u64 = lab
        .fleet
        .bmcs()
        .iter()
        .map(|bmc| bmc.login_stats().failed_logins)
        .sum();
    eprintln!(
        "rotation kill campaign: done in {}s, {failed} failed logins over {bmcs} BMCs, none locked",
        started.elapsed().as_secs()
    );
}
