//! EndpointReconciler: an Endpoint (a BMC's MAC and IP, e.g. from DHCP) is looked up in the
//! credential database; on a match the BMC and its BMCSecret are created, both named after the
//! Endpoint and owned by it (metal-operator's convention).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::Error;
use crate::api::bmc_secret::{PASSWORD_KEY, USERNAME_KEY};
use crate::api::common::{
    ConsoleProtocol, ConsoleProtocolName, LocalObjectReference, Protocol, ProtocolName,
    ProtocolScheme,
};
use crate::api::{BMC, BMCSecret, BMCSpec, Endpoint, conditions};
use crate::controllers::caches::{AppliedObjects, Caches, cached_or_get};
use crate::controllers::{credentials, report};
use crate::plugins::credential_lookup::CredentialLookupPlugin;
use crate::plugins::types::BmcProfile;
use crate::telemetry::ControllerMetrics;

/// Field manager of everything this reconciler writes.
pub const MANAGER: &str = "ferrometal-endpoint";
/// How soon a failed lookup is retried.
pub const LOOKUP_RETRY: Duration = Duration::from_secs(60);

/// What the credential lookup said about the Endpoint's MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The database knows the MAC.
    Found(BmcProfile),
    /// It does not.
    Unknown,
    /// The lookup itself failed.
    Failed(String),
}

/// What to do about one Endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Apply the BMC; create the BMCSecret unless it exists; report success.
    Onboard {
        /// The BMC's desired spec.
        bmc: BMCSpec,
        /// Credentials for a new BMCSecret (`None` keeps an existing one untouched).
        secret: Option<(String, String)>,
        /// Condition message.
        message: String,
    },
    /// Report that the MAC is unknown; create nothing.
    Unknown {
        /// Condition message.
        message: String,
    },
    /// Report the failure and retry later.
    Failed {
        /// Condition reason.
        reason: &'static str,
        /// Condition message.
        message: String,
    },
}

/// What an Endpoint lacks to be onboarded: the schema leaves `macAddress` and `ip` optional
/// (as metal-operator's does), but a BMC needs both.
pub fn incomplete(endpoint: &Endpoint) -> Option<String> {
    let missing: Vec<&str> = [
        ("spec.macAddress", endpoint.spec.mac_address.is_empty()),
        ("spec.ip", endpoint.spec.ip.is_empty()),
    ]
    .into_iter()
    .filter_map(|(field, empty)| empty.then_some(field))
    .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} not set: the Endpoint cannot be matched to a BMC",
            missing.join(" and ")
        )
    })
}

/// Decides what to do, from the Endpoint, the lookup result and whether its BMCSecret exists.
pub fn plan(endpoint: &Endpoint, lookup: &Lookup, secret_exists: bool) -> Plan {
    let name = endpoint.name_any();
    let mac = &endpoint.spec.mac_address;
    let profile = match lookup {
        Lookup::Unknown => {
            return Plan::Unknown {
                message: format!(
                    "no entry of the credential database matches MAC {mac}; no BMC was created"
                ),
            };
        }
        Lookup::Failed(why) => {
            return Plan::Failed {
                reason: conditions::REASON_LOOKUP_FAILED,
                message: format!("cannot look MAC {mac} up: {why}"),
            };
        }
        Lookup::Found(profile) => profile,
    };
    let failed = |message: String| Plan::Failed {
        reason: conditions::REASON_LOOKUP_FAILED,
        message,
    };
    let Ok(protocol) = ProtocolName::from_str(&profile.protocol) else {
        return failed(format!(
            "the credential database gives protocol {:?} for MAC {mac}, which BMCs cannot use",
            profile.protocol
        ));
    };
    let scheme = match profile.scheme.as_deref() {
        None => None,
        Some("http") => Some(ProtocolScheme::Http),
        Some("https") => Some(ProtocolScheme::Https),
        Some(other) => {
            return failed(format!(
                "the credential database gives scheme {other:?} for MAC {mac}"
            ));
        }
    };
    let console_protocol = match (&profile.console_protocol, profile.console_port) {
        (Some(kind), Some(port)) => {
            ConsoleProtocolName::from_str(kind)
                .ok()
                .map(|name| ConsoleProtocol {
                    name,
                    port: i32::from(port),
                })
        }
        _ => None,
    };
    let Some(first) = profile.default_credentials.first() else {
        return failed(format!(
            "the credential database lists no default credentials for MAC {mac}"
        ));
    };
    Plan::Onboard {
        bmc: BMCSpec {
            bmc_uuid: None,
            endpoint_ref: Some(LocalObjectReference { name: name.clone() }),
            access: None,
            bmc_secret_ref: LocalObjectReference { name: name.clone() },
            protocol: Protocol {
                name: protocol,
                port: i32::from(profile.port),
                scheme,
            },
            console_protocol,
            hostname: None,
        },
        secret: (!secret_exists).then(|| (first.username.clone(), first.password.clone())),
        message: format!(
            "MAC {mac} matched the credential database ({} {}); BMC {name} created",
            profile.manufacturer, profile.protocol
        ),
    }
}

/// What the reconciler needs.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The active credential-lookup plugin, if one is installed.
    pub lookup: Option<CredentialLookupPlugin>,
    /// Settings passed to it (e.g. the MAC database).
    pub lookup_settings: Vec<(String, String)>,
    /// Event reporter.
    pub reporter: Reporter,
    /// Reconcile metrics.
    pub metrics: ControllerMetrics,
    /// Retry delays after failures, per object.
    pub backoff: super::backoff::ErrorBackoff,
    /// The watch caches (BMCSecrets, BMCs).
    pub caches: Arc<Caches>,
    /// What was last applied to each BMC, so an unchanged BMC is not applied again.
    pub applied: AppliedObjects,
}

/// Reconciles one Endpoint.
#[tracing::instrument(skip_all, fields(endpoint = %endpoint.name_any()))]
pub async fn reconcile(endpoint: Arc<Endpoint>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.reconcile("endpoint");
    let key = super::object_key(&*endpoint);
    let result = reconcile_inner(endpoint, &ctx).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    timer.finish(result.is_ok());
    result
}

async fn reconcile_inner(endpoint: Arc<Endpoint>, ctx: &Context) -> Result<Action, Error> {
    let started = Instant::now();
    let name = endpoint.name_any();
    if let Some(message) = incomplete(&endpoint) {
        // Nothing to look up until the user completes it; an edit triggers the next pass.
        publish_status(
            &endpoint,
            ctx,
            false,
            conditions::REASON_INCOMPLETE,
            &message,
        )
        .await?;
        return Ok(Action::await_change());
    }
    let lookup = match &ctx.lookup {
        None => Lookup::Failed(String::from("no credential-lookup plugin is installed")),
        Some(plugin) => match plugin
            .lookup(&endpoint.spec.mac_address, &ctx.lookup_settings)
            .await
        {
            Ok(Some(profile)) => Lookup::Found(profile),
            Ok(None) => Lookup::Unknown,
            Err(error) => Lookup::Failed(report::first_line(&error.to_string())),
        },
    };
    let secrets: Api<BMCSecret> = Api::all(ctx.client.clone());
    let secret_exists = cached_or_get(&ctx.caches.bmc_secrets, &secrets, None, &name)
        .await?
        .is_some();
    let plan = plan(&endpoint, &lookup, secret_exists);
    let owner = endpoint.controller_owner_ref(&());
    let (ready, reason, message, action) = match plan {
        Plan::Onboard {
            bmc,
            secret,
            message,
        } => {
            if let Some((username, password)) = secret {
                let secret = BMCSecret {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        owner_references: owner.clone().map(|o| vec![o]),
                        // Marks the secret as holding database defaults the BMC reconciler
                        // may move to the next one if the BMC refuses it.
                        annotations: Some(BTreeMap::from([(
                            credentials::INDEX_ANNOTATION.to_owned(),
                            String::from("0"),
                        )])),
                        ..ObjectMeta::default()
                    },
                    data: Some(BTreeMap::from([
                        (USERNAME_KEY.to_owned(), ByteString(username.into_bytes())),
                        (PASSWORD_KEY.to_owned(), ByteString(password.into_bytes())),
                    ])),
                    ..BMCSecret::default()
                };
                match secrets.create(&PostParams::default(), &secret).await {
                    Ok(_) => {}
                    // Created meanwhile (e.g. by a user): theirs wins.
                    Err(kube::Error::Api(status)) if status.is_already_exists() => {}
                    Err(error) => return Err(error.into()),
                }
            }
            let desired = json!({
                "apiVersion": "metal.ironcore.dev/v1alpha1",
                "kind": "BMC",
                "metadata": { "name": name, "ownerReferences": owner.map(|o| vec![o]) },
                "spec": bmc,
            });
            // An apply that changes nothing is still a write: skip it when this exact BMC
            // was applied and is still there.
            let exists = ctx.caches.bmcs.get(&ObjectRef::new(&name)).is_some();
            ctx.applied
                .apply(
                    &Api::<BMC>::all(ctx.client.clone()),
                    &name,
                    MANAGER,
                    &desired,
                    exists,
                )
                .await?;
            (
                true,
                conditions::REASON_BMC_CREATED,
                message,
                Action::await_change(),
            )
        }
        Plan::Unknown { message } => (
            false,
            conditions::REASON_UNKNOWN_MAC,
            message,
            Action::await_change(),
        ),
        Plan::Failed { reason, message } => (false, reason, message, Action::requeue(LOOKUP_RETRY)),
    };
    publish_status(&endpoint, ctx, ready, reason, &message).await?;
    tracing::debug!(elapsed = ?started.elapsed(), reason, "reconciled");
    Ok(action)
}

async fn publish_status(
    endpoint: &Endpoint,
    ctx: &Context,
    ready: bool,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    let mut current = endpoint
        .status
        .as_ref()
        .map(|status| status.conditions.clone())
        .unwrap_or_default();
    let observed = current
        .iter()
        .find(|c| c.type_ == conditions::READY)
        .and_then(|c| c.observed_generation);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let changed = conditions::set(
        &mut current,
        conditions::READY,
        ready,
        reason,
        message,
        endpoint.metadata.generation,
        now,
    );
    if !changed && observed == endpoint.metadata.generation {
        return Ok(());
    }
    super::status::apply(
        &Api::<Endpoint>::all(ctx.client.clone()),
        &endpoint.name_any(),
        MANAGER,
        json!({ "conditions": current }),
    )
    .await?;
    if changed {
        report::ready_event(
            &ctx.client,
            &ctx.reporter,
            &endpoint.object_ref(&()),
            (ready, reason, message),
            "Onboard",
        )
        .await;
    }
    Ok(())
}

/// Retries a failed reconcile after the object's backoff (doubling per failure in a row).
pub fn error_policy(endpoint: Arc<Endpoint>, error: &Error, ctx: Arc<Context>) -> Action {
    super::backoff::retry_after(
        "endpoint",
        &super::object_key(&*endpoint),
        error,
        &ctx.backoff,
        &ctx.metrics,
    )
}

#[cfg(test)]
mod tests {
    use crate::api::EndpointSpec;
    use crate::plugins::types::DefaultCredential;

    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint::new(
            "device-12345",
            EndpointSpec {
                mac_address: "00:1A:2B:3C:4D:5E".into(),
                ip: "192.168.100.10".into(),
            },
        )
    }

    fn profile() -> BmcProfile {
        BmcProfile {
            manufacturer: "QEMU".into(),
            protocol: "Redfish".into(),
            scheme: Some("https".into()),
            port: 8443,
            default_credentials: vec![
                DefaultCredential {
                    username: "admin".into(),
                    password: "a".into(),
                },
                DefaultCredential {
                    username: "root".into(),
                    password: "b".into(),
                },
            ],
            console_protocol: Some("SSH".into()),
            console_port: Some(22),
        }
    }

    #[test]
    fn an_endpoint_without_mac_or_ip_is_incomplete() {
        assert_eq!(incomplete(&endpoint()), None);
        let mut no_mac = endpoint();
        no_mac.spec.mac_address.clear();
        assert_eq!(
            incomplete(&no_mac).as_deref(),
            Some("spec.macAddress not set: the Endpoint cannot be matched to a BMC")
        );
        no_mac.spec.ip.clear();
        assert!(
            incomplete(&no_mac)
                .is_some_and(|message| message.starts_with("spec.macAddress and spec.ip not set"))
        );
    }

    #[test]
    fn a_known_mac_onboards_a_bmc_named_after_the_endpoint_with_the_first_credential() {
        let Plan::Onboard { bmc, secret, .. } = plan(&endpoint(), &Lookup::Found(profile()), false)
        else {
            panic!("expected onboarding");
        };
        assert_eq!(
            bmc.endpoint_ref.map(|r| r.name).as_deref(),
            Some("device-12345")
        );
        assert_eq!(bmc.bmc_secret_ref.name, "device-12345");
        assert_eq!(bmc.protocol.name, ProtocolName::Redfish);
        assert_eq!(bmc.protocol.port, 8443);
        assert_eq!(bmc.protocol.scheme, Some(ProtocolScheme::Https));
        assert_eq!(
            bmc.console_protocol.map(|c| (c.name, c.port)),
            Some((ConsoleProtocolName::Ssh, 22))
        );
        assert_eq!(secret, Some(("admin".into(), "a".into())));
    }

    #[test]
    fn an_existing_secret_is_never_overwritten() {
        let Plan::Onboard { secret, .. } = plan(&endpoint(), &Lookup::Found(profile()), true)
        else {
            panic!("expected onboarding");
        };
        assert_eq!(secret, None);
    }

    #[test]
    fn an_unknown_mac_creates_nothing_and_says_so() {
        let Plan::Unknown { message } = plan(&endpoint(), &Lookup::Unknown, false) else {
            panic!("expected unknown");
        };
        assert!(message.contains("00:1A:2B:3C:4D:5E"), "{message}");
    }

    #[test]
    fn database_entries_the_api_cannot_express_fail_with_the_cause() {
        for (change, expected) in [
            (
                Box::new(|p: &mut BmcProfile| p.protocol = "Telnet".into())
                    as Box<dyn Fn(&mut BmcProfile)>,
                "protocol \"Telnet\"",
            ),
            (
                Box::new(|p: &mut BmcProfile| p.scheme = Some("ftp".into())),
                "scheme \"ftp\"",
            ),
            (
                Box::new(|p: &mut BmcProfile| p.default_credentials.clear()),
                "no default credentials",
            ),
        ] {
            let mut profile = profile();
            change(&mut profile);
            let Plan::Failed { message, .. } = plan(&endpoint(), &Lookup::Found(profile), false)
            else {
                panic!("expected failure for {expected}");
            };
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn a_failed_lookup_is_retried_with_the_cause() {
        let Plan::Failed { reason, message } = plan(
            &endpoint(),
            &Lookup::Failed("plugin timed out".into()),
            false,
        ) else {
            panic!("expected failure");
        };
        assert_eq!(reason, conditions::REASON_LOOKUP_FAILED);
        assert!(message.contains("plugin timed out"));
    }

    proptest::proptest! {
        #[test]
        fn any_database_answer_onboards_only_a_usable_bmc_and_never_names_a_password(
            protocol in proptest::sample::select(vec!["Redfish", "IPMI", "redfish", "", "Telnet"]),
            scheme in proptest::option::of(proptest::sample::select(vec!["http", "https", "ftp", ""])),
            port in proptest::num::u16::ANY,
            credentials in proptest::collection::vec(("[a-z]{1,8}", "[A-Za-z0-9]{8,16}"), 0..3),
            secret_exists in proptest::bool::ANY,
        ) {
            let endpoint = endpoint();
            let database = BmcProfile {
                protocol: protocol.to_owned(),
                scheme: scheme.map(str::to_owned),
                port,
                default_credentials: credentials
                    .iter()
                    .map(|(username, password)| DefaultCredential {
                        username: username.clone(),
                        password: password.clone(),
                    })
                    .collect(),
                ..profile()
            };
            let step = plan(&endpoint, &Lookup::Found(database), secret_exists);
            let message = match &step {
                Plan::Onboard { bmc, secret, message } => {
                    let name = endpoint.name_any();
                    proptest::prop_assert_eq!(
                        bmc.endpoint_ref.as_ref().map(|r| &r.name),
                        Some(&name)
                    );
                    proptest::prop_assert_eq!(&bmc.bmc_secret_ref.name, &name);
                    proptest::prop_assert_eq!(bmc.protocol.port, i32::from(port));
                    let first = credentials.first().cloned();
                    proptest::prop_assert!(first.is_some(), "onboarded without credentials");
                    proptest::prop_assert_eq!(secret.clone(), first.filter(|_| !secret_exists));
                    message.clone()
                }
                Plan::Failed { message, .. } | Plan::Unknown { message } => message.clone(),
            };
            for (_, password) in &credentials {
                proptest::prop_assert!(!message.contains(password.as_str()), "{}", message);
            }
        }
    }
}
