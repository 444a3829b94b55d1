//! Reaching a BMC: its address (from `spec.access` or its Endpoint), its credentials (from
//! the BMCSecret) and the driver plugin for its protocol. Shared by the BMC reconciler and the
//! Server reconciler.

use std::sync::Arc;

use kube::{Api, Client, ResourceExt};

use crate::api::bmc_secret::{PASSWORD_KEY, USERNAME_KEY};
use crate::api::common::ProtocolScheme;
use crate::api::{BMC, BMCSecret, Endpoint, conditions};
use crate::controllers::bmc::BmcSettings;
use crate::controllers::caches::{Caches, cached_or_get};
use crate::plugins::bmc_driver::BmcDriverPlugin;
use crate::plugins::catalog::PluginCatalog;
use crate::plugins::types::BmcEndpoint;

/// The BMC's MAC and IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// MAC address of the BMC; empty when not given (`spec.access` may name only the IP).
    pub mac: String,
    /// IP address of the BMC.
    pub ip: String,
}

/// Everything needed to call the BMC's driver.
pub struct Connection<'a> {
    /// The driver serving the BMC's protocol.
    pub driver: &'a BmcDriverPlugin,
    /// Where and how to reach the BMC.
    pub endpoint: BmcEndpoint,
    /// The BMC's address.
    pub address: Address,
    /// The BMCSecret, when it was found.
    pub secret: Arc<BMCSecret>,
}

/// Why the BMC cannot be called: a condition reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    /// `ReferenceNotFound`, `Incomplete` or `DriverFailed`.
    pub reason: &'static str,
    /// What is missing.
    pub message: String,
}

/// Resolves address, credentials and driver of `bmc` (Endpoint and BMCSecret from the
/// watch caches). `Ok(Err(_))` says what is missing, or that the BMC's password is being
/// rotated (`CredentialsRotating`): then either the current or the new password may be the
/// BMC's, and a login with the wrong one would count against its lockout threshold, so only
/// the rotation calls the BMC ([`connect_any`]).
pub async fn connect<'a>(
    client: &Client,
    caches: &Caches,
    catalog: &'a PluginCatalog,
    settings: &BmcSettings,
    bmc: &BMC,
) -> Result<Result<Connection<'a>, Unreachable>, kube::Error> {
    let connection = connect_any(client, caches, catalog, settings, bmc).await?;
    Ok(match connection {
        Ok(connection)
            if connection
                .secret
                .value(crate::controllers::rotation::PENDING_PASSWORD_KEY)
                .is_some() =>
        {
            Err(Unreachable {
                reason: conditions::REASON_CREDENTIALS_ROTATING,
                message: format!(
                    "the password in BMCSecret {} is being rotated; the BMC is called again once it is committed",
                    bmc.spec.bmc_secret_ref.name
                ),
            })
        }
        other => other,
    })
}

/// [`connect`], also while the BMCSecret holds a pending password (for the rotation itself).
pub async fn connect_any<'a>(
    client: &Client,
    caches: &Caches,
    catalog: &'a PluginCatalog,
    settings: &BmcSettings,
    bmc: &BMC,
) -> Result<Result<Connection<'a>, Unreachable>, kube::Error> {
    let not_found = |message: String| {
        Ok(Err(Unreachable {
            reason: conditions::REASON_REFERENCE_NOT_FOUND,
            message,
        }))
    };
    let address = match resolve_address(bmc, client, caches).await? {
        Ok(address) => address,
        Err(unreachable) => return Ok(Err(unreachable)),
    };
    let secret_name = &bmc.spec.bmc_secret_ref.name;
    let Some(secret) = cached_or_get(
        &caches.bmc_secrets,
        &Api::all(client.clone()),
        None,
        secret_name,
    )
    .await?
    else {
        return not_found(format!(
            "BMCSecret {secret_name} does not exist or lacks username/password"
        ));
    };
    let credentials = (|| {
        let username = String::from_utf8(secret.value(USERNAME_KEY)?).ok()?;
        let password = String::from_utf8(secret.value(PASSWORD_KEY)?).ok()?;
        Some((username, password))
    })();
    let Some((username, password)) = credentials else {
        return not_found(format!(
            "BMCSecret {secret_name} does not exist or lacks username/password"
        ));
    };
    let protocol = serde_json::to_value(bmc.spec.protocol.name)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    let manufacturer = bmc.labels().get("manufacturer").cloned();
    let Some(driver) = catalog.driver_for(&protocol, manufacturer.as_deref()) else {
        return Ok(Err(Unreachable {
            reason: conditions::REASON_DRIVER_FAILED,
            message: format!("no installed driver plugin serves protocol {protocol}"),
        }));
    };
    let scheme = bmc.spec.protocol.scheme.unwrap_or(settings.default_scheme);
    let endpoint = BmcEndpoint {
        scheme: String::from(match scheme {
            ProtocolScheme::Http => "http",
            ProtocolScheme::Https => "https",
        }),
        host: address.ip.clone(),
        port: u16::try_from(bmc.spec.protocol.port).unwrap_or_default(),
        tls: settings.tls.clone(),
        username,
        password,
        manufacturer_hint: manufacturer,
        // The driver's settings from the plugin configuration, on every call.
        settings: catalog.settings(&driver.identity().name).to_vec(),
    };
    Ok(Ok(Connection {
        driver,
        endpoint,
        address,
        secret,
    }))
}

/// The BMC's MAC and IP from `spec.access` or its Endpoint; `Ok(Err(_))` when the Endpoint
/// is missing or no IP is given.
async fn resolve_address(
    bmc: &BMC,
    client: &Client,
    caches: &Caches,
) -> Result<Result<Address, Unreachable>, kube::Error> {
    let incomplete = |message: String| Unreachable {
        reason: conditions::REASON_INCOMPLETE,
        message,
    };
    if let Some(access) = &bmc.spec.access {
        if access.ip.is_empty() {
            return Ok(Err(incomplete(String::from(
                "spec.access has no ip: the BMC cannot be reached",
            ))));
        }
        return Ok(Ok(Address {
            mac: access.mac_address.clone(),
            ip: access.ip.clone(),
        }));
    }
    let Some(reference) = &bmc.spec.endpoint_ref else {
        return Ok(Err(incomplete(String::from(
            "the BMC names neither spec.access nor spec.endpointRef",
        ))));
    };
    Ok(
        match cached_or_get(
            &caches.endpoints,
            &Api::<Endpoint>::all(client.clone()),
            None,
            &reference.name,
        )
        .await?
        .as_deref()
        {
            Some(endpoint) if endpoint.spec.ip.is_empty() => Err(incomplete(format!(
                "Endpoint {} has no spec.ip: the BMC cannot be reached",
                reference.name
            ))),
            Some(endpoint) => Ok(Address {
                mac: endpoint.spec.mac_address.clone(),
                ip: endpoint.spec.ip.clone(),
            }),
            None => Err(Unreachable {
                reason: conditions::REASON_REFERENCE_NOT_FOUND,
                message: format!("Endpoint {} does not exist", reference.name),
            }),
        },
    )
}
