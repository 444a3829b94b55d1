//! iPXE scripts, rendered from a boot entry (pure; the exact text is tested).

use super::image::{BootLayer, BootLayers};
use super::uuid::SystemUuid;

/// Kernel arguments every discovery boot gets after the ignition ones.
pub const DEFAULT_KERNEL_ARGS: &str = "console=tty0 console=ttyS0,115200";

/// Seconds the chain script waits before each further try when the boot server does not
/// answer (not running, or `503` while it fills its index after a start): about a minute
/// in all, then the firmware moves on to its next boot device.
pub const CHAIN_RETRY_SECONDS: [u32; 5] = [2, 4, 8, 15, 30];

/// Seconds the per-machine script waits before loading the image again when a download
/// failed (cut off by an operator restart, a registry hiccup).
pub const LOAD_RETRY_SECONDS: [u32; 3] = [5, 10, 20];

/// `commands` (one line, joined by `&&`) once per pause, each followed by `|| sleep N` (an
/// iPXE built without the `sleep` command tries again at once: `|| echo`), then `last` for
/// the final try, whose failure ends the script. iPXE runs `a && b || c` left to right: `c`
/// runs when `a` or `b` failed.
fn with_retries(commands: &str, pauses: &[u32], last: &str) -> String {
    let mut text = String::new();
    for seconds in pauses {
        text.push_str(&format!(
            "{commands} || sleep {seconds} || echo ferrometal: failed, trying again\n"
        ));
    }
    text.push_str(last);
    text.push('\n');
    text
}

/// The chain-load script served at `/ipxe`: iPXE substitutes the machine's SMBIOS UUID. A
/// failed fetch is tried again after a pause, so an operator restart (the boot server
/// answers `503` until its index is filled) does not fail the boots in flight.
pub fn chain(base_url: &str) -> String {
    let fetch = format!("chain --replace --autofree {base_url}/ipxe/${{uuid}}");
    format!(
        "#!ipxe\n{}",
        with_retries(&fetch, &CHAIN_RETRY_SECONDS, &fetch)
    )
}

/// Where the boot server serves a layer: `/images/sha256-<hex>`, with `.efi` for UKIs
/// (UEFI firmware looks at the file name).
pub fn layer_url(base_url: &str, layer: &BootLayer) -> String {
    let file = layer.digest.replacen(':', "-", 1);
    match layer.kind {
        super::image::LayerKind::Uki => format!("{base_url}/images/{file}.efi"),
        _ => format!("{base_url}/images/{file}"),
    }
}

/// Where a machine fetches its ignition; the single-use fetch ticket rides in the query.
pub fn ignition_url(base_url: &str, uuid: &SystemUuid, ticket: Option<&str>) -> String {
    match ticket {
        Some(ticket) => format!("{base_url}/ignition/{uuid}?ticket={ticket}"),
        None => format!("{base_url}/ignition/{uuid}"),
    }
}

/// What the per-machine script needs.
#[derive(Debug, Clone, Copy)]
pub struct ScriptInput<'a> {
    /// The boot server's URL as machines reach it.
    pub base_url: &'a str,
    /// The machine.
    pub uuid: &'a SystemUuid,
    /// Its image's layers.
    pub layers: &'a BootLayers,
    /// Its fetch ticket, if its ignition needs one.
    pub ticket: Option<&'a str>,
    /// Whether an ignition is served at all.
    pub has_ignition: bool,
    /// Arguments appended to the kernel command line.
    pub extra_kernel_args: &'a str,
}

/// The per-machine script served at `/ipxe/<uuid>`: kernel + initramfs (+ squashfs as a
/// Garden Linux live root) with the ignition URL on the command line, or the UKI when the
/// image has only that. `None` when the image has nothing iPXE can boot.
pub fn per_machine(input: &ScriptInput<'_>) -> Option<String> {
    let mut args = ignition_arguments(input);
    let layers = input.layers;
    let mut script = format!("#!ipxe\n# ferrometal: boot for system {}\n", input.uuid);
    match (&layers.kernel, &layers.initramfs, &layers.uki) {
        (Some(kernel), Some(initramfs), _) => {
            script.push_str(&format!(
                "set kernel-url {}\nset initrd-url {}\n",
                layer_url(input.base_url, kernel),
                layer_url(input.base_url, initramfs)
            ));
            if let Some(squashfs) = &layers.squashfs {
                script.push_str(&format!(
                    "set squashfs-url {}\n",
                    layer_url(input.base_url, squashfs)
                ));
                args.push(String::from(
                    "gl.ovl=/:tmpfs gl.url=${squashfs-url} gl.live=1",
                ));
            }
            push_common_args(&mut args, input.extra_kernel_args);
            // Set once: every try's line names it (iPXE expands a line before splitting it).
            script.push_str(&format!("set kernel-args {}\n", args.join(" ")));
            let kernel = "kernel ${kernel-url} initrd=initramfs ${kernel-args}";
            let initrd = "initrd --name initramfs ${initrd-url}";
            script.push_str(&with_retries(
                &format!("imgfree && {kernel} && {initrd} && boot"),
                &LOAD_RETRY_SECONDS,
                &format!("imgfree\n{kernel}\n{initrd}\nboot"),
            ));
        }
        (_, _, Some(uki)) => {
            push_common_args(&mut args, input.extra_kernel_args);
            let chain = format!(
                "chain {} {}",
                layer_url(input.base_url, uki),
                args.join(" ")
            );
            script.push_str(&with_retries(&chain, &LOAD_RETRY_SECONDS, &chain));
        }
        _ => return None,
    }
    Some(script)
}

/// The kernel arguments that tell Ignition where the machine's ignition is (none when no
/// ignition is served).
fn ignition_arguments(input: &ScriptInput<'_>) -> Vec<String> {
    if !input.has_ignition {
        return Vec::new();
    }
    vec![
        String::from("ignition.firstboot=1"),
        format!(
            "ignition.config.url={}",
            ignition_url(input.base_url, input.uuid, input.ticket)
        ),
        String::from("ignition.platform.id=metal"),
    ]
}

/// What the boot server appends to a UKI's own command line for a machine that boots it
/// straight over UEFI HTTP (see [`super::uki`]): the ignition arguments and
/// `--boot-kernel-args` — not the console arguments, which the image's command line names.
pub fn uki_arguments(input: &ScriptInput<'_>) -> String {
    let mut args = ignition_arguments(input);
    if !input.extra_kernel_args.trim().is_empty() {
        args.push(input.extra_kernel_args.trim().to_owned());
    }
    args.join(" ")
}

fn push_common_args(args: &mut Vec<String>, extra: &str) {
    args.push(String::from(DEFAULT_KERNEL_ARGS));
    if !extra.trim().is_empty() {
        args.push(extra.trim().to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::super::image::LayerKind;
    use super::*;

    fn layer(kind: LayerKind, hex: &str) -> Option<BootLayer> {
        Some(BootLayer {
            digest: format!("sha256:{hex}"),
            size: 1,
            kind,
        })
    }

    fn uuid() -> SystemUuid {
        SystemUuid::parse("4C4C4544-0042-4D10-8056-B4C04F4A5A31").expect("uuid")
    }

    #[test]
    fn the_chain_script_lets_ipxe_fill_in_the_uuid() {
        let script = chain("http://10.0.0.1:8082");
        let fetch = "chain --replace --autofree http://10.0.0.1:8082/ipxe/${uuid}";
        assert_eq!(
            script.lines().collect::<Vec<_>>(),
            [
                "#!ipxe",
                &format!("{fetch} || sleep 2 || echo ferrometal: failed, trying again"),
                &format!("{fetch} || sleep 4 || echo ferrometal: failed, trying again"),
                &format!("{fetch} || sleep 8 || echo ferrometal: failed, trying again"),
                &format!("{fetch} || sleep 15 || echo ferrometal: failed, trying again"),
                &format!("{fetch} || sleep 30 || echo ferrometal: failed, trying again"),
                fetch,
            ]
        );
    }

    #[test]
    fn a_kernel_and_initramfs_image_boots_with_the_ticketed_ignition_url() {
        let layers = BootLayers {
            kernel: layer(LayerKind::Kernel, "aa"),
            initramfs: layer(LayerKind::Initramfs, "bb"),
            ..BootLayers::default()
        };
        let uuid = uuid();
        let script = per_machine(&ScriptInput {
            base_url: "http://boot:8082",
            uuid: &uuid,
            layers: &layers,
            ticket: Some("t1ck3t"),
            has_ignition: true,
            extra_kernel_args: "",
        });
        let kernel = "kernel ${kernel-url} initrd=initramfs ${kernel-args}";
        let initrd = "initrd --name initramfs ${initrd-url}";
        let attempt = |seconds: u32| {
            format!(
                "imgfree && {kernel} && {initrd} && boot || sleep {seconds} || echo ferrometal: failed, trying again\n"
            )
        };
        assert_eq!(
            script.expect("script"),
            format!(
                "#!ipxe\n\
                 # ferrometal: boot for system 4c4c4544-0042-4d10-8056-b4c04f4a5a31\n\
                 set kernel-url http://boot:8082/images/sha256-aa\n\
                 set initrd-url http://boot:8082/images/sha256-bb\n\
                 set kernel-args ignition.firstboot=1 \
                 ignition.config.url=http://boot:8082/ignition/4c4c4544-0042-4d10-8056-b4c04f4a5a31?ticket=t1ck3t \
                 ignition.platform.id=metal console=tty0 console=ttyS0,115200\n\
                 {}{}{}imgfree\n{kernel}\n{initrd}\nboot\n",
                attempt(5),
                attempt(10),
                attempt(20)
            )
        );
    }

    #[test]
    fn a_squashfs_layer_adds_the_live_root_and_extra_args_come_last() {
        let layers = BootLayers {
            kernel: layer(LayerKind::Kernel, "aa"),
            initramfs: layer(LayerKind::Initramfs, "bb"),
            squashfs: layer(LayerKind::Squashfs, "cc"),
            ..BootLayers::default()
        };
        let uuid = uuid();
        let script = per_machine(&ScriptInput {
            base_url: "http://boot",
            uuid: &uuid,
            layers: &layers,
            ticket: None,
            has_ignition: false,
            extra_kernel_args: " quiet ",
        })
        .expect("script");
        assert!(script.contains("set squashfs-url http://boot/images/sha256-cc\n"));
        assert!(script.contains(
            "\nset kernel-args gl.ovl=/:tmpfs gl.url=${squashfs-url} gl.live=1 console=tty0 console=ttyS0,115200 quiet\n"
        ));
        assert!(!script.contains("ignition"));
    }

    #[test]
    fn a_uki_only_image_is_chained_and_an_empty_one_has_no_script() {
        let layers = BootLayers {
            uki: layer(LayerKind::Uki, "dd"),
            ..BootLayers::default()
        };
        let uuid = uuid();
        let input = ScriptInput {
            base_url: "http://boot",
            uuid: &uuid,
            layers: &layers,
            ticket: Some("t"),
            has_ignition: true,
            extra_kernel_args: "",
        };
        let script = per_machine(&input).expect("script");
        assert!(script.contains("chain http://boot/images/sha256-dd.efi ignition.firstboot=1 "));
        let empty = BootLayers::default();
        assert_eq!(
            per_machine(&ScriptInput {
                layers: &empty,
                ..input
            }),
            None
        );
    }

    #[test]
    fn a_uki_booted_over_http_gets_the_ignition_arguments_and_the_extra_ones() {
        let layers = BootLayers {
            uki: layer(LayerKind::Uki, "dd"),
            ..BootLayers::default()
        };
        let uuid = uuid();
        let input = ScriptInput {
            base_url: "http://[fd00::1]:8082",
            uuid: &uuid,
            layers: &layers,
            ticket: Some("t"),
            has_ignition: true,
            extra_kernel_args: " quiet ",
        };
        assert_eq!(
            uki_arguments(&input),
            format!(
                "ignition.firstboot=1 ignition.config.url=http://[fd00::1]:8082/ignition/{uuid}?ticket=t ignition.platform.id=metal quiet"
            )
        );
        assert_eq!(
            uki_arguments(&ScriptInput {
                has_ignition: false,
                extra_kernel_args: "",
                ..input
            }),
            ""
        );
    }
}
