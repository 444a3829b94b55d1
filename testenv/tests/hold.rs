//! `testenv-hold control-plane` gives what docs/development.md promises: an API server with
//! ferrometal's CRDs installed and `Established`, so `ferrometal run` works against it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// The CRD names of the repository's `crds/` (files are named `<group>_<plural>.yaml`).
fn repository_crds() -> Vec<String> {
    let dir = testenv::tools::workspace_root().join("crds");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("crds/")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (group, plural) = name.strip_suffix(".yaml")?.split_once('_')?;
            Some(format!("{plural}.{group}"))
        })
        .collect();
    names.sort();
    names
}

/// testenv-hold, killed when the test ends (also when it fails).
struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_held_control_plane_has_the_crds_installed_and_established() {
    let mut holder = Holder(
        Command::new(env!("CARGO_BIN_EXE_testenv-hold"))
            .arg("control-plane")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start testenv-hold"),
    );
    let stdout = holder.0.stdout.take().expect("stdout");
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|line| !line.starts_with("READY"))
            .collect()
    })
    .await
    .expect("read testenv-hold's output");
    let kubeconfig = lines
        .iter()
        .find_map(|line| line.strip_prefix("KUBECONFIG="))
        .unwrap_or_else(|| panic!("no KUBECONFIG line in {lines:?}"));
    let expected = repository_crds();
    assert!(!expected.is_empty(), "the repository has CRDs");

    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).expect("kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("client config");
    let crds: Api<CustomResourceDefinition> = Api::all(Client::try_from(config).expect("client"));
    for name in &expected {
        let crd = crds
            .get(name)
            .await
            .unwrap_or_else(|error| panic!("{name} is not installed: {error}"));
        let established = crd
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{name} is Established");
    }

    let mut announced: Vec<String> = lines
        .iter()
        .find_map(|line| line.strip_prefix("CRDS "))
        .unwrap_or_else(|| panic!("no CRDS line in {lines:?}"))
        .split_whitespace()
        .map(String::from)
        .collect();
    announced.sort();
    assert_eq!(
        announced, expected,
        "testenv-hold installs every CRD of crds/"
    );
}
