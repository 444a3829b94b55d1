//! The `bmc-driver` world: talk to a BMC (probe, power, boot override, account passwords).
//!
//! Implement [`BmcDriver`] on a type of your own and call [`register_bmc_driver!`](crate::register_bmc_driver)
//! once. Everything about the BMC of a call arrives in a [`Target`]; HTTP goes through
//! [`Target::http`], which the host scopes to that BMC.

mod accounts;
pub mod http;
mod inventory;

pub use accounts::{AccountChange, AccountPassword, AccountPolicy};
pub use inventory::{Drive, Inventory, MemoryModule, PcieDevice, Processor, Storage, Volume};

use crate::types::{PluginError, Settings};

#[doc(hidden)]
pub mod bindings {
    crate::__wit_bindgen::generate!({
        world: "bmc-driver",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_bmc_driver",
        default_bindings_module: "ferrometal_plugin_sdk::bmc_driver::bindings",
        runtime_path: "ferrometal_plugin_sdk::__wit_bindgen::rt",
    });
}

use bindings::exports::ferrometal::plugin::driver as wit;
use bindings::ferrometal::plugin::credentials::Credential;

world_logging!();

/// What a driver says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    /// Driver name, e.g. `redfish`.
    pub name: String,
    /// Driver version.
    pub version: String,
    /// Manufacturers it is specialised for; empty means generic.
    pub manufacturers: Vec<String>,
    /// Optional features it implements, e.g. `sessions`.
    pub features: Vec<String>,
}

/// Power state of a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// On.
    On,
    /// Off.
    Off,
    /// Turning on.
    PoweringOn,
    /// Turning off.
    PoweringOff,
    /// Not known.
    Unknown,
}

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Power on.
    On,
    /// Cut power.
    ForceOff,
    /// Ask the OS to shut down.
    GracefulShutdown,
    /// Reset at once.
    ForceRestart,
    /// Ask the OS to restart.
    GracefulRestart,
    /// Off, then on.
    PowerCycle,
}

/// Where the next boot goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootTarget {
    /// No override.
    None,
    /// PXE network boot.
    Pxe,
    /// Local disk.
    Hdd,
    /// Optical/virtual media.
    Cd,
    /// UEFI HTTP boot.
    UefiHttp,
    /// Firmware setup.
    BiosSetup,
    /// Something the driver could not name.
    Other,
}

/// A boot override request, or what the BMC stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOverride {
    /// Where to boot.
    pub target: BootTarget,
    /// UEFI (true) or legacy mode.
    pub uefi: bool,
    /// Every boot (true) or the next one only.
    pub persistent: bool,
    /// URI for UEFI HTTP boot.
    pub http_boot_uri: Option<String>,
}

/// What a NIC is, as far as in-band discovery cares: the host waits for the probe to see
/// every [`NicKind::System`] NIC and no other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NicKind {
    /// A NIC of the system that its operating system sees.
    #[default]
    System,
    /// The BMC's host interface (Redfish `HostInterface`), a USB or virtual link between BMC
    /// and host that the discovery OS may never bring up.
    HostInterface,
    /// Reported disabled.
    Disabled,
    /// Reported absent.
    Absent,
}

/// A network interface of a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// MAC address.
    pub mac: String,
    /// Name, if the BMC gives one.
    pub name: Option<String>,
    /// What it is.
    pub kind: NicKind,
    /// Whether the port has a link (Redfish `LinkStatus`); `None` when the BMC does not say.
    pub link_up: Option<bool>,
}

/// A computer system behind the BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// The system's address on the BMC (Redfish `@odata.id`).
    pub uri: String,
    /// SMBIOS UUID.
    pub uuid: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Power state.
    pub power: PowerState,
    /// Network interfaces.
    pub nics: Vec<Nic>,
    /// Boot override targets the system accepts, as the protocol names them (Redfish
    /// `BootSourceOverrideTarget@Redfish.AllowableValues`); empty when the BMC does not say.
    pub boot_targets: Vec<String>,
    /// Whether the system takes a boot override at all (Redfish: a `Boot` object with a
    /// `BootSourceOverrideTarget`); a DPU or SmartNIC SoC often does not.
    pub boot_override: bool,
    /// The system's hardware: read for [`BmcDriver::system`] (`get-system`), left out
    /// (`None`) by [`BmcDriver::probe`] so that discovering a BMC stays cheap.
    pub inventory: Option<Inventory>,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// BMC manufacturer.
    pub manufacturer: Option<String>,
    /// BMC model.
    pub model: Option<String>,
    /// BMC serial number.
    pub serial: Option<String>,
    /// BMC firmware version.
    pub firmware: Option<String>,
    /// Manager UUID.
    pub manager_uuid: Option<String>,
    /// Systems behind the BMC.
    pub systems: Vec<System>,
}

/// The BMC of a call.
pub struct Target<'a> {
    /// Host or IP of the BMC (informational: the host fixes the origin of every request).
    pub address: &'a str,
    /// Manufacturer, if the operator knows it.
    pub manufacturer_hint: Option<&'a str>,
    /// Operator-provided driver settings.
    pub settings: &'a Settings,
    credential: &'a Credential,
}

impl<'a> Target<'a> {
    /// The BMC user name.
    pub fn username(&self) -> String {
        self.credential.username()
    }

    /// HTTP to this BMC with Basic authentication (the host adds the header; the plugin never
    /// sees the password).
    pub fn http(&self) -> http::BmcHttp<'a> {
        http::BmcHttp::new(self.credential, http::Auth::Basic)
    }

    /// HTTP to this BMC with a session token the driver obtained.
    pub fn http_with_token(&self, token: String) -> http::BmcHttp<'a> {
        http::BmcHttp::new(self.credential, http::Auth::Bearer(token))
    }

    /// The BMC password. Only plugins granted `credentials/reveal` (declared with
    /// `register_bmc_driver!(Driver, capabilities = ["credentials/reveal"])`) load when they
    /// use this.
    pub fn reveal_password(&self) -> String {
        bindings::ferrometal::plugin::reveal::password(self.credential)
    }
}

/// A BMC driver. Functions are associated (no `self`): the host runs every call in a fresh
/// instance. Operations a driver leaves out answer `unsupported`.
pub trait BmcDriver {
    /// Name, version and specialisation.
    fn info() -> DriverInfo;

    /// Checks operator-provided settings; the default accepts anything.
    fn validate_settings(_settings: &Settings) -> Result<(), PluginError> {
        Ok(())
    }

    /// Identifies the BMC and the systems behind it.
    fn probe(target: &Target<'_>) -> Result<Identity, PluginError>;

    /// Reads one system, as [`BmcDriver::probe`] reports it, plus its hardware
    /// ([`System::inventory`]) where the driver can read it. The default probes the whole BMC
    /// and picks the system (without inventory); a driver that can read one system alone
    /// should (a chassis BMC with many systems is then not read whole for one of them).
    fn system(target: &Target<'_>, system_uri: &str) -> Result<System, PluginError> {
        Self::probe(target)?
            .systems
            .into_iter()
            .find(|system| system.uri == system_uri)
            .ok_or_else(|| {
                PluginError::InvalidInput(format!("the BMC reports no system at {system_uri}"))
            })
    }

    /// Reads a system's power state.
    fn power_state(_target: &Target<'_>, _system_uri: &str) -> Result<PowerState, PluginError> {
        Err(PluginError::unsupported("power-state"))
    }

    /// Changes a system's power state.
    fn set_power(
        _target: &Target<'_>,
        _system_uri: &str,
        _action: PowerAction,
    ) -> Result<(), PluginError> {
        Err(PluginError::unsupported("set-power"))
    }

    /// Sets a boot override and returns what the BMC stored.
    fn set_boot_override(
        _target: &Target<'_>,
        _system_uri: &str,
        _boot: &BootOverride,
    ) -> Result<BootOverride, PluginError> {
        Err(PluginError::unsupported("set-boot-override"))
    }

    /// Reads the BMC's account and lockout policy.
    fn account_policy(_target: &Target<'_>) -> Result<AccountPolicy, PluginError> {
        Err(PluginError::unsupported("get-account-policy"))
    }

    /// Sets an account's password (creating the account where asked and allowed) and
    /// reports the BMC's policy. The password must not appear in errors or logs.
    fn set_account_password(
        _target: &Target<'_>,
        _account: &AccountPassword<'_>,
    ) -> Result<AccountChange, PluginError> {
        Err(PluginError::unsupported("set-account-password"))
    }
}

#[doc(hidden)]
pub mod __glue {
    //! Conversions used by `register_bmc_driver!`; not part of the API.

    use super::*;

    pub use super::wit::Guest;

    fn target<'a>(t: &'a wit::Target<'a>) -> Target<'a> {
        Target {
            address: &t.address,
            manufacturer_hint: t.manufacturer_hint.as_deref(),
            settings: &t.settings,
            credential: t.credential,
        }
    }

    wit_error_conversion!(bindings::ferrometal::plugin::types);

    fn power(state: PowerState) -> wit::PowerState {
        match state {
            PowerState::On => wit::PowerState::On,
            PowerState::Off => wit::PowerState::Off,
            PowerState::PoweringOn => wit::PowerState::PoweringOn,
            PowerState::PoweringOff => wit::PowerState::PoweringOff,
            PowerState::Unknown => wit::PowerState::Unknown,
        }
    }

    fn boot_target_in(target: wit::BootTarget) -> BootTarget {
        match target {
            wit::BootTarget::None => BootTarget::None,
            wit::BootTarget::Pxe => BootTarget::Pxe,
            wit::BootTarget::Hdd => BootTarget::Hdd,
            wit::BootTarget::Cd => BootTarget::Cd,
            wit::BootTarget::UefiHttp => BootTarget::UefiHttp,
            wit::BootTarget::BiosSetup => BootTarget::BiosSetup,
            wit::BootTarget::Other => BootTarget::Other,
        }
    }

    fn boot_target_out(target: BootTarget) -> wit::BootTarget {
        match target {
            BootTarget::None => wit::BootTarget::None,
            BootTarget::Pxe => wit::BootTarget::Pxe,
            BootTarget::Hdd => wit::BootTarget::Hdd,
            BootTarget::Cd => wit::BootTarget::Cd,
            BootTarget::UefiHttp => wit::BootTarget::UefiHttp,
            BootTarget::BiosSetup => wit::BootTarget::BiosSetup,
            BootTarget::Other => wit::BootTarget::Other,
        }
    }

    pub fn info<D: BmcDriver>() -> wit::DriverInfo {
        __install_host_logging();
        let info = D::info();
        wit::DriverInfo {
            name: info.name,
            version: info.version,
            manufacturers: info.manufacturers,
            features: info.features,
        }
    }

    pub fn validate_settings<D: BmcDriver>(
        settings: Vec<(String, String)>,
    ) -> Result<(), wit::PluginError> {
        __install_host_logging();
        D::validate_settings(&settings).map_err(into_wit_error)
    }

    pub fn probe<D: BmcDriver>(t: wit::Target<'_>) -> Result<wit::Identity, wit::PluginError> {
        __install_host_logging();
        let identity = D::probe(&target(&t)).map_err(into_wit_error)?;
        Ok(wit::Identity {
            manufacturer: identity.manufacturer,
            model: identity.model,
            serial: identity.serial,
            firmware: identity.firmware,
            manager_uuid: identity.manager_uuid,
            systems: identity.systems.into_iter().map(system_out).collect(),
        })
    }

    fn system_out(system: System) -> wit::System {
        wit::System {
            uri: system.uri,
            uuid: system.uuid,
            manufacturer: system.manufacturer,
            model: system.model,
            serial: system.serial,
            power: power(system.power),
            nics: system
                .nics
                .into_iter()
                .map(|nic| wit::Nic {
                    mac: nic.mac,
                    name: nic.name,
                    kind: match nic.kind {
                        NicKind::System => wit::NicKind::System,
                        NicKind::HostInterface => wit::NicKind::HostInterface,
                        NicKind::Disabled => wit::NicKind::Disabled,
                        NicKind::Absent => wit::NicKind::Absent,
                    },
                    link_up: nic.link_up,
                })
                .collect(),
            boot_targets: system.boot_targets,
            boot_override: system.boot_override,
            inventory: system.inventory.map(inventory::glue::inventory_out),
        }
    }

    pub fn get_system<D: BmcDriver>(
        t: wit::Target<'_>,
        system_uri: String,
    ) -> Result<wit::System, wit::PluginError> {
        __install_host_logging();
        D::system(&target(&t), &system_uri)
            .map(system_out)
            .map_err(into_wit_error)
    }

    pub fn get_power_state<D: BmcDriver>(
        t: wit::Target<'_>,
        system_uri: String,
    ) -> Result<wit::PowerState, wit::PluginError> {
        __install_host_logging();
        D::power_state(&target(&t), &system_uri)
            .map(power)
            .map_err(into_wit_error)
    }

    pub fn set_power<D: BmcDriver>(
        t: wit::Target<'_>,
        system_uri: String,
        action: wit::PowerAction,
    ) -> Result<(), wit::PluginError> {
        __install_host_logging();
        let action = match action {
            wit::PowerAction::On => PowerAction::On,
            wit::PowerAction::ForceOff => PowerAction::ForceOff,
            wit::PowerAction::GracefulShutdown => PowerAction::GracefulShutdown,
            wit::PowerAction::ForceRestart => PowerAction::ForceRestart,
            wit::PowerAction::GracefulRestart => PowerAction::GracefulRestart,
            wit::PowerAction::PowerCycle => PowerAction::PowerCycle,
        };
        D::set_power(&target(&t), &system_uri, action).map_err(into_wit_error)
    }

    pub fn set_boot_override<D: BmcDriver>(
        t: wit::Target<'_>,
        system_uri: String,
        boot: wit::BootOverride,
    ) -> Result<wit::BootOverride, wit::PluginError> {
        __install_host_logging();
        let boot = BootOverride {
            target: boot_target_in(boot.target),
            uefi: boot.uefi,
            persistent: boot.persistent,
            http_boot_uri: boot.http_boot_uri,
        };
        let stored =
            D::set_boot_override(&target(&t), &system_uri, &boot).map_err(into_wit_error)?;
        Ok(wit::BootOverride {
            target: boot_target_out(stored.target),
            uefi: stored.uefi,
            persistent: stored.persistent,
            http_boot_uri: stored.http_boot_uri,
        })
    }

    fn policy_out(policy: AccountPolicy) -> wit::AccountPolicy {
        wit::AccountPolicy {
            lockout_threshold: policy.lockout_threshold,
            lockout_duration_seconds: policy.lockout_duration_seconds,
            lockout_counter_reset_after_seconds: policy.lockout_counter_reset_after_seconds,
            lockout_counter_reset_enabled: policy.lockout_counter_reset_enabled,
            min_password_length: policy.min_password_length,
            max_password_length: policy.max_password_length,
            password_expiration_days: policy.password_expiration_days,
        }
    }

    pub fn get_account_policy<D: BmcDriver>(
        t: wit::Target<'_>,
    ) -> Result<wit::AccountPolicy, wit::PluginError> {
        __install_host_logging();
        D::account_policy(&target(&t))
            .map(policy_out)
            .map_err(into_wit_error)
    }

    pub fn set_account_password<D: BmcDriver>(
        t: wit::Target<'_>,
        account: wit::AccountPassword<'_>,
    ) -> Result<wit::AccountChange, wit::PluginError> {
        __install_host_logging();
        let request = AccountPassword::new(account.account, account.create_with_role.as_deref());
        let change = D::set_account_password(&target(&t), &request).map_err(into_wit_error)?;
        Ok(wit::AccountChange {
            uri: change.uri,
            created: change.created,
            policy: policy_out(change.policy),
        })
    }
}

/// Registers `$ty` (implementing [`BmcDriver`]) as this component's export and writes the
/// metadata section the host checks before loading. List capabilities the driver needs, e.g.
/// `register_bmc_driver!(Redfish, capabilities = ["credentials/reveal"]);`.
#[macro_export]
macro_rules! register_bmc_driver {
    ($ty:ident) => {
        $crate::register_bmc_driver!($ty, capabilities = []);
    };
    ($ty:ident, capabilities = [$($capability:literal),* $(,)?]) => {
        const _: () = {
            use $crate::bmc_driver::__glue;
            use $crate::bmc_driver::bindings::exports::ferrometal::plugin::driver as __wit;

            impl __glue::Guest for $ty {
                fn info() -> __wit::DriverInfo {
                    __glue::info::<$ty>()
                }
                fn validate_settings(
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), __wit::PluginError> {
                    __glue::validate_settings::<$ty>(settings)
                }
                fn probe(t: __wit::Target<'_>) -> ::std::result::Result<__wit::Identity, __wit::PluginError> {
                    __glue::probe::<$ty>(t)
                }
                fn get_system(
                    t: __wit::Target<'_>,
                    system_uri: ::std::string::String,
                ) -> ::std::result::Result<__wit::System, __wit::PluginError> {
                    __glue::get_system::<$ty>(t, system_uri)
                }
                fn get_power_state(
                    t: __wit::Target<'_>,
                    system_uri: ::std::string::String,
                ) -> ::std::result::Result<__wit::PowerState, __wit::PluginError> {
                    __glue::get_power_state::<$ty>(t, system_uri)
                }
                fn set_power(
                    t: __wit::Target<'_>,
                    system_uri: ::std::string::String,
                    action: __wit::PowerAction,
                ) -> ::std::result::Result<(), __wit::PluginError> {
                    __glue::set_power::<$ty>(t, system_uri, action)
                }
                fn set_boot_override(
                    t: __wit::Target<'_>,
                    system_uri: ::std::string::String,
                    boot: __wit::BootOverride,
                ) -> ::std::result::Result<__wit::BootOverride, __wit::PluginError> {
                    __glue::set_boot_override::<$ty>(t, system_uri, boot)
                }
                fn get_account_policy(
                    t: __wit::Target<'_>,
                ) -> ::std::result::Result<__wit::AccountPolicy, __wit::PluginError> {
                    __glue::get_account_policy::<$ty>(t)
                }
                fn set_account_password(
                    t: __wit::Target<'_>,
                    account: __wit::AccountPassword<'_>,
                ) -> ::std::result::Result<__wit::AccountChange, __wit::PluginError> {
                    __glue::set_account_password::<$ty>(t, account)
                }
            }

            $crate::__plugin_metadata!(concat!(
                r#"{"world":"bmc-driver","abi":""#, $crate::__abi_version!(),
                r#"","sdk":""#, $crate::__sdk_version!(),
                r#"","capabilities":["#,
                $crate::__json_strings!($($capability),*),
                r#"]}"#
            ));
        };
        $crate::bmc_driver::bindings::__export_bmc_driver!(
            $ty with_types_in $crate::bmc_driver::bindings
        );
    };
}
