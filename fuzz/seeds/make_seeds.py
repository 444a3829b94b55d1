#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from the tests' fixtures.

Run from anywhere: `python3 fuzz/seeds/make_seeds.py`. The output is committed; re-run it
when a fixture changes. Seeds are small on purpose: libFuzzer starts from their shapes.
The redfish_driver seeds are cut from DMTF's Redfish mockups (tests/data/redfish and the
handbook's fixtures/redfish; BSD 3-Clause, tests/data/redfish/LICENSE-DMTF.md).
"""

import json
import pathlib
import shutil
import struct

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REDFISH_MOCKUPS = [
    ROOT / "tests" / "data" / "redfish",
    *sorted((ROOT.parent / "shared" / "fixtures" / "redfish").glob("public-*")),
]


def target(name):
    directory = HERE / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def dhcp_packet(kind, mac, options=(), giaddr=b"\0\0\0\0"):
    """A BOOTREQUEST with DHCP message type `kind` and extra (code, bytes) options."""
    header = struct.pack("!BBBBIHH", 1, 1, 6, 0, 0x2A2B2C2D, 0, 0x8000)
    header += b"\0" * 12 + giaddr + mac + b"\0" * 10 + b"\0" * 64 + b"\0" * 128
    body = b"\x63\x82\x53\x63" + bytes([53, 1, kind])
    for code, value in options:
        body += bytes([code, len(value)]) + value
    return header + body + b"\xff"


def dhcp_seeds():
    out = target("dhcp_reply")
    bmc = bytes.fromhex("525400dd0001")
    machine = bytes.fromhex("020000000009")
    seeds = {
        "bmc-discover": dhcp_packet(1, bmc),
        "bmc-request": dhcp_packet(3, bmc, [(50, bytes([10, 0, 0, 100])), (54, bytes([10, 0, 0, 1]))]),
        "ipxe-discover": dhcp_packet(1, machine, [(77, b"iPXE"), (93, b"\x00\x07")]),
        "pxe-bios-discover": dhcp_packet(1, machine, [(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, b"\x00\x00")]),
        "pxe-efi-relayed": dhcp_packet(1, machine, [(60, b"PXEClient:Arch:00007"), (93, b"\x00\x07")], bytes([10, 9, 0, 1])),
        "http-client-discover": dhcp_packet(1, machine, [(60, b"HTTPClient:Arch:00016"), (93, b"\x00\x10")]),
        "release": dhcp_packet(7, machine, [(54, bytes([10, 0, 0, 1]))]),
        "inform": dhcp_packet(8, machine),
        "client-uuid": dhcp_packet(1, machine, [(97, b"\x00" + bytes(range(16)))]),
    }
    for name, packet in seeds.items():
        (out / name).write_bytes(packet)


def dhcp6_option(code, value):
    return struct.pack("!HH", code, len(value)) + value


def dhcp6_message(kind, options):
    """A DHCPv6 client message of type `kind` with (code, bytes) options."""
    return bytes([kind, 0x0F, 0xE0, 0x01]) + b"".join(dhcp6_option(c, v) for c, v in options)


def dhcp6_relay(link, peer, inner, options=()):
    """A Relay-Forward around `inner` from a relay on `link` (16 bytes each address)."""
    body = b"".join(dhcp6_option(c, v) for c, v in options) + dhcp6_option(9, inner)
    return bytes([12, 0]) + link + peer + body


def dhcp6_seeds():
    out = target("dhcp6_reply")
    bmc_llt = bytes.fromhex("00010001") + bytes.fromhex("2c1b3d4e") + bytes.fromhex("525400dd0001")
    machine_ll = bytes.fromhex("00030001020000000009")
    uuid = bytes.fromhex("0004") + bytes(range(16))
    server = bytes.fromhex("00030001020000000001")
    ia = dhcp6_option(3, struct.pack("!III", 1, 0, 0))[4:]
    ia_with = struct.pack("!III", 1, 0, 0) + dhcp6_option(5, bytes.fromhex("fd000001000000000000000000000100") + bytes(8))
    http = struct.pack("!IH", 343, 33) + b"HTTPClient:Arch:00016:UNDI:003001"
    link = bytes.fromhex("fd000002000000000000000000000001")
    far = bytes.fromhex("fd000001000000000000000000000001")
    peer = bytes.fromhex("fe800000000000005054ff0fedd00001")
    solicit = dhcp6_message(1, [(1, bmc_llt), (8, b"\0\0"), (3, ia)])
    seeds = {
        "bmc-solicit": solicit,
        "bmc-rapid-commit": dhcp6_message(1, [(1, bmc_llt), (3, ia), (14, b"")]),
        "machine-request": dhcp6_message(3, [(1, machine_ll), (2, server), (3, ia_with)]),
        "machine-renew": dhcp6_message(5, [(1, machine_ll), (2, server), (3, ia_with)]),
        "release": dhcp6_message(8, [(1, machine_ll), (2, server), (3, ia_with)]),
        "confirm": dhcp6_message(4, [(1, machine_ll), (3, ia_with)]),
        "information-request": dhcp6_message(11, [(15, b"\0\x04iPXE")]),
        "http-client-solicit": dhcp6_message(1, [(1, uuid), (3, ia), (16, http), (61, b"\0\x10")]),
        "ipxe-solicit": dhcp6_message(1, [(1, machine_ll), (3, ia), (15, b"\0\x04iPXE"), (61, b"\0\x07")]),
        "relayed-solicit": dhcp6_relay(link, peer, dhcp6_message(1, [(1, uuid), (3, ia)]),
                                       [(18, b"port7"), (79, bytes.fromhex("0001525400dd0007"))]),
        "nested-relays": dhcp6_relay(far, link, dhcp6_relay(link, peer, solicit, [(18, b"eth0")])),
    }
    for name, packet in seeds.items():
        (out / name).write_bytes(packet)


def tftp_seeds():
    out = target("tftp_request")
    for name, packet in {
        "undionly": b"\x00\x01undionly.kpxe\x00octet\x00",
        "efi-blksize": b"\x00\x01/ipxe.efi\x00octet\x00blksize\x001468\x00tsize\x000\x00",
        "netascii": b"\x00\x01ipxe.efi\x00netascii\x00",
        "traversal": b"\x00\x01../../etc/shadow\x00octet\x00",
        "ack": b"\x00\x04\x00\x01",
    }.items():
        (out / name).write_bytes(packet)


def registry_seeds():
    out = target("registry_report")
    for path in sorted((ROOT / "host" / "tests" / "data" / "go-registry").glob("*.json")):
        shutil.copy(path, out / path.name)
    (out / "bootstate.json").write_text('{"systemUUID":"2e6f0000-0000-4000-8000-000000000001","booted":true}')


def ipxe_seeds():
    out = target("ipxe_script")
    retry = "|| sleep {} || echo ferrometal: failed, trying again"
    fetch = "chain --replace --autofree http://10.0.0.1:8082/ipxe/${uuid}"
    chain = "#!ipxe\n" + "".join(f"{fetch} {retry.format(s)}\n" for s in (2, 4, 8)) + fetch + "\n"
    kernel = "kernel ${kernel-url} initrd=initramfs ${kernel-args}"
    initrd = "initrd --name initramfs ${initrd-url}"
    per_machine = (
        "#!ipxe\n# ferrometal: boot for system 4c4c4544-0042-4d10-8056-b4c04f4a5a31\n"
        "set kernel-url http://boot:8082/images/sha256-aa\n"
        "set initrd-url http://boot:8082/images/sha256-bb\n"
        "set squashfs-url http://boot:8082/images/sha256-cc\n"
        "set kernel-args ignition.firstboot=1 ignition.config.url=http://boot:8082/ignition/"
        "4c4c4544-0042-4d10-8056-b4c04f4a5a31?ticket=t1ck3t ignition.platform.id=metal "
        "gl.ovl=/:tmpfs gl.url=${squashfs-url} gl.live=1 console=tty0 console=ttyS0,115200\n"
        + "".join(f"imgfree && {kernel} && {initrd} && boot {retry.format(s)}\n" for s in (5, 10))
        + f"imgfree\n{kernel}\n{initrd}\nboot\n"
    )
    uki = "#!ipxe\nchain http://boot:8082/images/sha256-dd console=ttyS0 || sleep 5 || exit\nsanboot --no-describe --drive 0x80\n"
    for name, script in {"chain": chain, "per-machine": per_machine, "uki": uki}.items():
        (out / name).write_text(script)


def redfish_service(mockup):
    """Path → body for what the driver reads: root, managers, systems and their NICs."""
    def read(path):
        file = mockup / path.removeprefix("/redfish/v1").strip("/") / "index.json"
        return json.loads(file.read_text()) if file.is_file() else None

    service = {}

    def add(path):
        body = read(path)
        if body is not None:
            service[path] = body
        return body or {}

    root = add("/redfish/v1")
    for collection in ("Managers", "Systems"):
        link = root.get(collection, {}).get("@odata.id")
        if not link:
            continue
        for member in add(link).get("Members", [])[:3]:
            resource = add(member["@odata.id"])
            nics = resource.get("EthernetInterfaces", {}).get("@odata.id")
            if nics:
                for nic in add(nics).get("Members", [])[:4]:
                    add(nic["@odata.id"])
    return service


def redfish_seeds():
    out = target("redfish_driver")
    for mockup in REDFISH_MOCKUPS:
        if mockup.is_dir():
            service = redfish_service(mockup)
            (out / mockup.name).write_text(json.dumps(service, separators=(",", ":")))


def macdb_seeds():
    out = target("mac_database")
    shutil.copy(ROOT / "host" / "tests" / "data" / "macdb.yaml", out / "macdb.yaml")


def ignition_seeds():
    out = target("ignition_parser")
    token_file = "data:,s3cr3t-t0k3n"
    unit = (
        "[Unit]\nDescription=metalprobe\n[Service]\nType=oneshot\n"
        "ExecStart=/opt/metalprobe/metalprobe --registry-url=http://10.0.0.1:8082 "
        "--server-uuid=2e6f0000-0000-4000-8000-000000000001 --token-file=/etc/metalprobe/token\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )
    ignition = {
        "ignition": {"version": "3.4.0"},
        "passwd": {"users": [{"name": "metal", "sshAuthorizedKeys": ["ssh-ed25519 AAAA test"]}]},
        "storage": {"files": [
            {"path": "/etc/metalprobe/token", "mode": 384, "contents": {"source": token_file}},
            {"path": "/opt/metalprobe/metalprobe", "mode": 493, "contents": {
                "source": "http://10.0.0.1:8082/metalprobe",
                "verification": {"hash": "sha512-" + "ab" * 64}}},
            {"path": "/etc/hostname", "contents": {"source": "data:;base64,c2VydmVyLTEK"}},
        ]},
        "systemd": {"units": [{"name": "metalprobe.service", "enabled": True, "contents": unit}]},
    }
    (out / "discovery.ign").write_text(json.dumps(ignition, indent=1))
    (out / "kernel-cmdline").write_text(
        "console=ttyS0 ignition.firstboot=1 ignition.config.url=http://10.0.0.1:8082/ignition/x?ticket=t"
    )


def main():
    dhcp_seeds()
    dhcp6_seeds()
    tftp_seeds()
    registry_seeds()
    ipxe_seeds()
    redfish_seeds()
    macdb_seeds()
    ignition_seeds()


if __name__ == "__main__":
    main()
