//! What `ferrometal plugin list` shows under "selection": per protocol, which installed
//! driver serves which manufacturer, and which serves the rest. Every answer comes from the
//! catalog's own selection ([`PluginCatalog::driver_for`]), never from a copy of its rules.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ferrometal::plugins::catalog::PluginCatalog;

/// How one protocol's BMCs are served.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProtocolSelection {
    protocol: String,
    /// Driver names in the configuration's order of preference.
    preference: Vec<String>,
    /// The driver for a manufacturer no driver names (or an unknown one).
    generic: Option<String>,
    /// Each manufacturer an installed driver names, with the driver that serves it.
    by_manufacturer: Vec<(String, Option<String>)>,
}

/// The selection for each protocol in `preferences`, asking `serve(protocol, manufacturer)`
/// (the catalog's selection) for every manufacturer in `manufacturers` and for none.
fn selections(
    preferences: &BTreeMap<String, Vec<String>>,
    manufacturers: &[String],
    serve: impl Fn(&str, Option<&str>) -> Option<String>,
) -> Vec<ProtocolSelection> {
    preferences
        .iter()
        .map(|(protocol, preference)| ProtocolSelection {
            protocol: protocol.clone(),
            preference: preference.clone(),
            generic: serve(protocol, None),
            by_manufacturer: manufacturers
                .iter()
                .map(|manufacturer| (manufacturer.clone(), serve(protocol, Some(manufacturer))))
                .collect(),
        })
        .collect()
}

/// The manufacturers installed drivers name, sorted, each once (ignoring case, as selection
/// does).
fn manufacturers<'a>(named: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut all: Vec<String> = named.into_iter().cloned().collect();
    all.sort_by_key(|name| name.to_ascii_lowercase());
    all.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    all
}

/// The table: a line per protocol with the driver for any other manufacturer and the order
/// of preference, then a line per manufacturer.
fn render(selections: &[ProtocolSelection]) -> String {
    let mut out = String::new();
    for selection in selections {
        let generic = selection.generic.as_deref().unwrap_or(
            if selection.by_manufacturer.iter().any(|(_, d)| d.is_some()) {
                "(no generic driver installed)"
            } else {
                "(none installed)"
            },
        );
        let _ = writeln!(
            out,
            "  {:<26} → {generic}   (any other manufacturer; order: {})",
            selection.protocol,
            selection.preference.join(", ")
        );
        for (manufacturer, driver) in &selection.by_manufacturer {
            let _ = writeln!(
                out,
                "    {:<24} → {}",
                manufacturer,
                driver.as_deref().unwrap_or("(none)")
            );
        }
    }
    out
}

/// Prints the selection table of `catalog`'s configured protocols.
pub fn print_selection(catalog: &PluginCatalog) {
    let Some(config) = catalog.config() else {
        return;
    };
    let manufacturers = manufacturers(
        catalog
            .drivers()
            .iter()
            .flat_map(|driver| &driver.info.manufacturers),
    );
    let table = selections(&config.drivers, &manufacturers, |protocol, manufacturer| {
        catalog
            .driver_for(protocol, manufacturer)
            .map(|driver| driver.identity().name.clone())
    });
    print!("{}", render(&table));
}

#[cfg(test)]
mod tests {
    use ferrometal::plugins::catalog::{Candidate, select_driver};

    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The catalog's own rule over these installed drivers.
    fn table(preferences: &[(&str, &[&str])], installed: &[(&str, &[&str])]) -> String {
        let installed: Vec<(String, Vec<String>)> = installed
            .iter()
            .map(|(name, makers)| ((*name).to_owned(), strings(makers)))
            .collect();
        let candidates: Vec<Candidate<'_>> = installed
            .iter()
            .map(|(name, makers)| Candidate {
                name,
                manufacturers: makers,
            })
            .collect();
        let preferences: BTreeMap<String, Vec<String>> = preferences
            .iter()
            .map(|(protocol, order)| ((*protocol).to_owned(), strings(order)))
            .collect();
        let makers = manufacturers(installed.iter().flat_map(|(_, makers)| makers));
        render(&selections(&preferences, &makers, |protocol, maker| {
            select_driver(&candidates, &preferences[protocol], maker)
                .map(|index| installed[index].0.clone())
        }))
    }

    #[test]
    fn a_vendor_driver_listed_first_serves_its_manufacturer_and_the_bundled_one_the_rest() {
        let text = table(
            &[("Redfish", &["dell-redfish", "redfish"])],
            &[
                ("redfish", &[]),
                ("dell-redfish", &["Dell Inc.", "dell inc."]),
            ],
        );
        assert_eq!(
            text,
            "  Redfish                    → redfish   (any other manufacturer; order: dell-redfish, redfish)\n    Dell Inc.                → dell-redfish\n"
        );
    }

    #[test]
    fn a_generic_vendor_driver_listed_first_takes_every_bmc_of_the_protocol() {
        let text = table(
            &[("Redfish", &["acme", "redfish"])],
            &[("redfish", &[]), ("acme", &[])],
        );
        assert!(
            text.contains("  Redfish                    → acme   "),
            "{text}"
        );
    }

    #[test]
    fn a_driver_missing_from_the_protocol_list_serves_nothing() {
        let text = table(
            &[("Redfish", &["redfish"]), ("IPMI", &["ipmi"])],
            &[("redfish", &[]), ("dell-redfish", &["Dell Inc."])],
        );
        assert!(
            text.contains("IPMI                       → (none installed)"),
            "{text}"
        );
        assert!(
            text.contains("    Dell Inc.                → redfish\n"),
            "{text}"
        );
    }
}
