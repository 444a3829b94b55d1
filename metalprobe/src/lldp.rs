//! LLDP neighbours, from lldpd (`lldpctl -f json0`) when it runs on the machine.
//!
//! json0 is lldpctl's regular format: every value is a list of objects, and interfaces are
//! named by a `name` field rather than used as keys.

use std::process::Command;

use serde_json::Value;

use crate::report::{LldpInterface, LldpNeighbor};

/// The first `value` of `node[key]` (json0 wraps every value in a list of objects).
fn first_value(node: &Value, key: &str) -> String {
    node[key][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Interfaces with neighbours from `lldpctl -f json0` output; anything unexpected is skipped.
pub fn parse_json0(text: &str) -> Vec<LldpInterface> {
    let Ok(document) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let mut by_interface: Vec<LldpInterface> = Vec::new();
    let interfaces = document["lldp"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|lldp| lldp["interface"].as_array().into_iter().flatten());
    for interface in interfaces {
        let Some(name) = interface["name"].as_str() else {
            continue;
        };
        let chassis = &interface["chassis"][0];
        let port = &interface["port"][0];
        let neighbor = LldpNeighbor {
            chassis_id: first_value(chassis, "id"),
            port_id: first_value(port, "id"),
            port_description: first_value(port, "descr"),
            system_name: first_value(chassis, "name"),
            system_description: first_value(chassis, "descr"),
        };
        match by_interface.iter_mut().find(|i| i.name == name) {
            Some(existing) => existing.neighbors.push(neighbor),
            None => by_interface.push(LldpInterface {
                name: name.to_owned(),
                neighbors: vec![neighbor],
            }),
        }
    }
    by_interface
}

/// Asks `lldpctl` (the given program) for the neighbours; empty when lldpd is not installed
/// or not running, with a note on stderr.
pub fn collect(lldpctl: &str) -> Vec<LldpInterface> {
    match Command::new(lldpctl).args(["-f", "json0"]).output() {
        Ok(output) if output.status.success() => {
            parse_json0(&String::from_utf8_lossy(&output.stdout))
        }
        Ok(output) => {
            eprintln!(
                "metalprobe: {lldpctl} failed ({}); reporting no LLDP neighbours",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            Vec::new()
        }
        Err(error) => {
            eprintln!("metalprobe: cannot run {lldpctl} ({error}); reporting no LLDP neighbours");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_are_read_from_json0_per_interface() {
        let json0 = r#"{"lldp": [{"interface": [
            {"name": "eno1", "via": "LLDP",
             "chassis": [{"id": [{"type": "mac", "value": "c0:11:a6:00:00:01"}],
                          "name": [{"value": "leaf-1"}],
                          "descr": [{"value": "SONiC 202311"}]}],
             "port": [{"id": [{"type": "ifname", "value": "Ethernet7"}],
                       "descr": [{"value": "to server 12"}]}]},
            {"name": "eno1", "via": "LLDP",
             "chassis": [{"id": [{"type": "mac", "value": "c0:11:a6:00:00:02"}],
                          "name": [{"value": "leaf-2"}]}],
             "port": [{"id": [{"type": "ifname", "value": "Ethernet8"}]}]},
            {"via": "LLDP"}
        ]}]}"#;
        let interfaces = parse_json0(json0);
        assert_eq!(interfaces.len(), 1);
        assert_eq!(interfaces[0].name, "eno1");
        let neighbors = &interfaces[0].neighbors;
        assert_eq!(neighbors.len(), 2);
        assert_eq!(neighbors[0].chassis_id, "c0:11:a6:00:00:01");
        assert_eq!(neighbors[0].port_id, "Ethernet7");
        assert_eq!(neighbors[0].port_description, "to server 12");
        assert_eq!(neighbors[0].system_name, "leaf-1");
        assert_eq!(neighbors[0].system_description, "SONiC 202311");
        assert_eq!(neighbors[1].system_description, "");
    }

    #[test]
    fn no_neighbours_or_garbage_is_an_empty_list() {
        assert!(parse_json0(r#"{"lldp": [{}]}"#).is_empty());
        assert!(parse_json0("lldpd not running").is_empty());
    }

    #[test]
    fn a_missing_lldpctl_is_no_neighbours() {
        assert!(collect("/nonexistent/lldpctl").is_empty());
    }
}
