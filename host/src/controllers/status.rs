//! Writing status: the one way every reconciler (and the registry and the boot server's fetch
//! records) writes an object's status.
//!
//! Each writer owns its fields under its own field manager and states all of them in every
//! write: one server-side apply of the status subresource, forced (the writer is the only
//! one to set those fields, so a conflict can only be with its own earlier self, e.g. after
//! a rename of the manager). Conditions are computed with [`crate::api::conditions::set`]
//! before, Events published with [`super::report`] after: this module is only the write.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Applies `status` (the fields `manager` owns, as JSON) to `name`'s status subresource.
/// `Ok(None)`: the object no longer exists (deleted meanwhile; its deletion is handled by
/// whoever watches it). Other failures are the caller's to report or retry.
pub async fn apply<K>(
    api: &Api<K>,
    name: &str,
    manager: &str,
    status: serde_json::Value,
) -> Result<Option<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    match api
        .patch_status(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(written) => Ok(Some(written)),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}
