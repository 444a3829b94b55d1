//! Shared set-up for the integration tests.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// Creates namespace `name` unless it exists already.
#[allow(dead_code)] // Only the tests that create namespaced objects use it.
pub async fn ensure_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_already_exists() => {}
        Err(error) => panic!("create namespace {name}: {error}"),
    }
}

/// Asserts that a harness component was stopped for good: nothing listens on `port` any more,
/// each of `pids` was killed and reaped, and its run directory is gone.
#[allow(dead_code)] // Only the tests of the harness's own teardown use it.
pub async fn assert_stopped(port: u16, pids: &[u32], run_dir: &std::path::Path) {
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "nothing listens on port {port} any more"
    );
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} was killed and reaped"
        );
    }
    assert!(
        !run_dir.exists(),
        "the run directory {} was removed",
        run_dir.display()
    );
}
