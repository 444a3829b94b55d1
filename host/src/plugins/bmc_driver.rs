//! BMC driver plugins: probe a BMC, read and change power, set boot overrides, set account
//! passwords.

use std::path::Path;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{HasSelf, Resource};

use super::accounts::{AccountChange, AccountPassword, AccountPolicy};
use super::bindings::bmc_driver::BmcDriverPre;
use super::bindings::bmc_driver::exports::ferrometal::plugin::driver as wit;
use super::bindings::bmc_driver::ferrometal::plugin::{bmc_http, credentials, reveal};
use super::bindings::credential_lookup::ferrometal::plugin::log;
use super::error::{CallError, LoadError};
use super::host::{BmcCredential, HostState};
use super::metadata::World;
use super::runtime::{Limits, PluginComponent, PluginHandle, PluginRuntime, plugin_handle_methods};
use super::types::{
    BmcEndpoint, BootOverride, BootTarget, DriverInfo, GuestError, Identity, Nic, NicKind,
    PowerAction, PowerState, System,
};
use wit::NicKind as WitNicKind;

/// Default limits of driver calls: BMCs are slow, and Redfish JSON can be large.
pub const DEFAULT_LIMITS: Limits = Limits {
    memory_bytes: 128 << 20,
    deadline: Duration::from_secs(60),
};

/// Limits of `info` and `validate-settings`, which never talk to a BMC.
const LOCAL_LIMITS: Limits = Limits {
    memory_bytes: 32 << 20,
    deadline: Duration::from_secs(2),
};

/// A loaded BMC driver plugin. Cheap to clone.
#[derive(Clone)]
pub struct BmcDriverPlugin {
    handle: PluginHandle<BmcDriverPre<HostState>>,
}

plugin_handle_methods!(BmcDriverPlugin);

impl PluginRuntime {
    /// Loads a BMC driver from `path`. `reveal` is linked only for a driver that requests
    /// `credentials/reveal` (and is granted it, or loading fails before this point); a
    /// driver that uses it without declaring it fails here, at load time.
    pub fn load_bmc_driver(&self, path: &Path) -> Result<BmcDriverPlugin, LoadError> {
        self.load_bmc_driver_granted(&PluginComponent::read(path)?, &[])
    }

    /// [`load_bmc_driver`](Self::load_bmc_driver) with `grants` given to this driver beyond
    /// the ones the runtime gives every plugin (the plugin configuration's per-plugin grants).
    pub fn load_bmc_driver_granted(
        &self,
        component: &PluginComponent,
        grants: &[String],
    ) -> Result<BmcDriverPlugin, LoadError> {
        let handle = self.link(
            component,
            World::BmcDriver,
            grants,
            DEFAULT_LIMITS,
            |linker, identity| {
                log::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
                credentials::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
                bmc_http::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
                if identity
                    .capabilities
                    .iter()
                    .any(|c| c == "credentials/reveal")
                {
                    reveal::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
                }
                Ok(())
            },
            BmcDriverPre::new,
        )?;
        Ok(BmcDriverPlugin { handle })
    }
}

/// Builds the `target` record of a call: the credential becomes a handle in the store's
/// table (dropped with the store); the values stay in the host.
fn target(store: &mut Store<HostState>, endpoint: &BmcEndpoint) -> wasmtime::Result<wit::Target> {
    let credential = store.data_mut().table_push(BmcCredential::Call)?;
    Ok(wit::Target {
        address: endpoint.host.clone(),
        manufacturer_hint: endpoint.manufacturer_hint.clone(),
        settings: endpoint.settings.clone(),
        credential: Resource::new_borrow(credential.rep()),
    })
}

impl BmcDriverPlugin {
    /// Name, version and specialisation of the driver.
    pub async fn info(&self) -> Result<DriverInfo, CallError> {
        let info = self
            .handle
            .call_with_limits(LOCAL_LIMITS, "info", None, async |plugin, store| {
                let info = plugin.ferrometal_plugin_driver().call_info(store).await;
                info.map(Ok::<_, GuestError>)
            })
            .await?;
        Ok(DriverInfo {
            name: info.name,
            version: info.version,
            manufacturers: info.manufacturers,
            features: info.features,
        })
    }

    /// Asks the driver whether `settings` are acceptable.
    pub async fn validate_settings(&self, settings: &[(String, String)]) -> Result<(), CallError> {
        let settings = settings.to_vec();
        self.handle
            .call_with_limits(
                LOCAL_LIMITS,
                "validate-settings",
                None,
                async |plugin, store| {
                    plugin
                        .ferrometal_plugin_driver()
                        .call_validate_settings(store, &settings)
                        .await
                },
            )
            .await
    }

    /// Identifies the BMC and every system behind it.
    #[tracing::instrument(skip(self), fields(plugin = %self.handle.identity.name, bmc = %endpoint.origin()))]
    pub async fn probe(&self, endpoint: &BmcEndpoint) -> Result<Identity, CallError> {
        self.handle
            .call("probe", Some(endpoint), async |plugin, store| {
                let target = target(store, endpoint)?;
                let driver = plugin.ferrometal_plugin_driver();
                driver.call_probe(store, &target).await
            })
            .await
            .map(Identity::from)
    }

    /// Reads the system at `system_uri` (as [`Self::probe`] reports it), without the rest of
    /// the BMC.
    #[tracing::instrument(skip(self), fields(plugin = %self.handle.identity.name, bmc = %endpoint.origin()))]
    pub async fn system(
        &self,
        endpoint: &BmcEndpoint,
        system_uri: &str,
    ) -> Result<System, CallError> {
        self.handle
            .call("get-system", Some(endpoint), async |plugin, store| {
                let target = target(store, endpoint)?;
                let driver = plugin.ferrometal_plugin_driver();
                driver.call_get_system(store, &target, system_uri).await
            })
            .await
            .map(System::from)
    }

    /// Reads the power state of the system at `system_uri`.
    #[tracing::instrument(skip(self), fields(plugin = %self.handle.identity.name, bmc = %endpoint.origin()))]
    pub async fn power_state(
        &self,
        endpoint: &BmcEndpoint,
        system_uri: &str,
    ) -> Result<PowerState, CallError> {
        self.handle
            .call("power-state", Some(endpoint), async |plugin, store| {
                let target = target(store, endpoint)?;
                let driver = plugin.ferrometal_plugin_driver();
                driver
                    .call_get_power_state(store, &target, system_uri)
                    .await
            })
            .await
            .map(PowerState::from)
    }

    /// Changes the power state of the system at `system_uri`.
    #[tracing::instrument(skip(self), fields(plugin = %self.handle.identity.name, bmc = %endpoint.origin()))]
    pub async fn set_power(
        &self,
        endpoint: &BmcEndpoint,
        system_uri: &str,
        action: PowerAction,
    ) -> Result<(), CallError> {
        self.handle
            .call("set-power", Some(endpoint), async |plugin, store| {
                let target = target(store, endpoint)?;
                let driver = plugin.ferrometal_plugin_driver();
                driver
                    .call_set_power(store, &target, system_uri, action.into())
                    .await
            })
            .await
    }

    /// Sets a boot override on the system at `system_uri`; returns what the BMC stored.
    #[tracing::instrument(skip(self), fields(plugin = %self.handle.identity.name, bmc = %endpoint.origin()))]
    pub async fn set_boot_override(
        &self,
        endpoint: &BmcEndpoint,
        system_uri: &str,
        boot: &BootOverride,
    ) -> Result<BootOverride, CallError> {
        let boot = wit::BootOverride::from(boot.clone());
        self.handle
            .call(
                "set-boot-override",
                Some(endpoint),
                async |plugin, store| {
                    let target = target(store, endpoint)?;
                    let driver = plugin.ferrometal_plugin_driver();
                    driver
                        .call_set_boot_override(store, &target, system_uri, &boot)
                        .await
                },
            )
            .await
            .map(BootOverride::from)
    }

    /// Reads the BMC's account and lockout policy (Redfish `AccountService`).
    #[tracing::instrument(skip(self), fields(plugin = %self.handle.identity.name, bmc = %endpoint.origin()))]
    pub async fn account_policy(&self, endpoint: &BmcEndpoint) -> Result<AccountPolicy, CallError> {
        self.handle
            .call(
                "get-account-policy",
                Some(endpoint),
                async |plugin, store| {
                    let target = target(store, endpoint)?;
                    let driver = plugin.ferrometal_plugin_driver();
                    driver.call_get_account_policy(store, &target).await
                },
            )
            .await
            .map(AccountPolicy::from)
    }

    /// Sets the password of `account` on the BMC, logged in with the endpoint's credential,
    /// and creates the account when it is missing, a role is given and the BMC allows it.
    /// The new password reaches the plugin only as a credential handle it must `reveal`, and
    /// is removed from the call's error and the plugin's log lines.
    #[tracing::instrument(skip(self, account), fields(plugin = %self.handle.identity.name, bmc = %endpoint.origin(), account = %account.username))]
    pub async fn set_account_password(
        &self,
        endpoint: &BmcEndpoint,
        account: &AccountPassword,
    ) -> Result<AccountChange, CallError> {
        self.handle
            .call(
                "set-account-password",
                Some(endpoint),
                async |plugin, store| {
                    let target = target(store, endpoint)?;
                    let state = store.data_mut();
                    state.redact.push(account.password.clone());
                    let handle = state.table_push(BmcCredential::Account(account.clone()))?;
                    let request = wit::AccountPassword {
                        account: Resource::new_borrow(handle.rep()),
                        create_with_role: account.create_with_role.clone(),
                    };
                    let driver = plugin.ferrometal_plugin_driver();
                    driver
                        .call_set_account_password(store, &target, &request)
                        .await
                },
            )
            .await
            .map(AccountChange::from)
            .map_err(|error| error.redacted(&account.password))
    }
}

impl From<wit::AccountPolicy> for AccountPolicy {
    fn from(policy: wit::AccountPolicy) -> Self {
        Self {
            lockout_threshold: policy.lockout_threshold,
            lockout_duration_seconds: policy.lockout_duration_seconds,
            lockout_counter_reset_after_seconds: policy.lockout_counter_reset_after_seconds,
            lockout_counter_reset_enabled: policy.lockout_counter_reset_enabled,
            min_password_length: policy.min_password_length,
            max_password_length: policy.max_password_length,
            password_expiration_days: policy.password_expiration_days,
        }
    }
}

impl From<wit::AccountChange> for AccountChange {
    fn from(change: wit::AccountChange) -> Self {
        Self {
            uri: change.uri,
            created: change.created,
            policy: change.policy.into(),
        }
    }
}

impl From<wit::PowerState> for PowerState {
    fn from(state: wit::PowerState) -> Self {
        match state {
            wit::PowerState::On => Self::On,
            wit::PowerState::Off => Self::Off,
            wit::PowerState::PoweringOn => Self::PoweringOn,
            wit::PowerState::PoweringOff => Self::PoweringOff,
            wit::PowerState::Unknown => Self::Unknown,
        }
    }
}

impl From<PowerAction> for wit::PowerAction {
    fn from(action: PowerAction) -> Self {
        match action {
            PowerAction::On => Self::On,
            PowerAction::ForceOff => Self::ForceOff,
            PowerAction::GracefulShutdown => Self::GracefulShutdown,
            PowerAction::ForceRestart => Self::ForceRestart,
            PowerAction::GracefulRestart => Self::GracefulRestart,
            PowerAction::PowerCycle => Self::PowerCycle,
        }
    }
}

impl From<wit::BootTarget> for BootTarget {
    fn from(target: wit::BootTarget) -> Self {
        match target {
            wit::BootTarget::None => Self::None,
            wit::BootTarget::Pxe => Self::Pxe,
            wit::BootTarget::Hdd => Self::Hdd,
            wit::BootTarget::Cd => Self::Cd,
            wit::BootTarget::UefiHttp => Self::UefiHttp,
            wit::BootTarget::BiosSetup => Self::BiosSetup,
            wit::BootTarget::Other => Self::Other,
        }
    }
}

impl From<BootTarget> for wit::BootTarget {
    fn from(target: BootTarget) -> Self {
        match target {
            BootTarget::None => Self::None,
            BootTarget::Pxe => Self::Pxe,
            BootTarget::Hdd => Self::Hdd,
            BootTarget::Cd => Self::Cd,
            BootTarget::UefiHttp => Self::UefiHttp,
            BootTarget::BiosSetup => Self::BiosSetup,
            BootTarget::Other => Self::Other,
        }
    }
}

impl From<wit::BootOverride> for BootOverride {
    fn from(boot: wit::BootOverride) -> Self {
        Self {
            target: boot.target.into(),
            uefi: boot.uefi,
            persistent: boot.persistent,
            http_boot_uri: boot.http_boot_uri,
        }
    }
}

impl From<BootOverride> for wit::BootOverride {
    fn from(boot: BootOverride) -> Self {
        Self {
            target: boot.target.into(),
            uefi: boot.uefi,
            persistent: boot.persistent,
            http_boot_uri: boot.http_boot_uri,
        }
    }
}

impl From<wit::Identity> for Identity {
    fn from(identity: wit::Identity) -> Self {
        Self {
            manufacturer: identity.manufacturer,
            model: identity.model,
            serial: identity.serial,
            firmware: identity.firmware,
            manager_uuid: identity.manager_uuid,
            systems: identity.systems.into_iter().map(System::from).collect(),
        }
    }
}

impl From<wit::System> for System {
    fn from(system: wit::System) -> Self {
        Self {
            uri: system.uri,
            uuid: system.uuid,
            manufacturer: system.manufacturer,
            model: system.model,
            serial: system.serial,
            power: system.power.into(),
            nics: system
                .nics
                .into_iter()
                .map(|nic| Nic {
                    mac: nic.mac,
                    name: nic.name,
                    kind: match nic.kind {
                        WitNicKind::System => NicKind::System,
                        WitNicKind::HostInterface => NicKind::HostInterface,
                        WitNicKind::Disabled => NicKind::Disabled,
                        WitNicKind::Absent => NicKind::Absent,
                    },
                    link_up: nic.link_up,
                })
                .collect(),
            boot_targets: system.boot_targets,
            boot_override: system.boot_override,
            inventory: system.inventory.map(Into::into),
        }
    }
}
