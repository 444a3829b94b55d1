//! The boot server (boot-operator's role, in-process): OS image resolution, the index of
//! what each machine boots, iPXE scripts, personalised UKIs for UEFI HTTP boot, ignition serving and the image proxy.

pub mod fetch_log;
pub mod image;
pub mod index;
pub mod layer_cache;
pub mod listener;
pub mod script;
pub mod served_file;
pub mod server;
pub mod sync;
pub mod uki;
pub mod uuid;
