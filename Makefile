# ferrometal — public entry points. Each target installs what it needs (apt, pip, Go
# builds), idempotently, and caches it under ~/.cache/ferrometal (FERROMETAL_CACHE_DIR).

# rustup's cargo, even when the calling shell has not sourced ~/.cargo/env.
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: test demo plugins plugin-setup crds bench fuzz chaos rotation-chaos setup ui-screenshots

## make test: formatting, lints, unit, integration and end-to-end tests.
test:
	cargo xtask test

## make demo [SERVERS=N] [VMS=N] [CLUSTER=1] [IPV6=1]: local control plane, OCI registry, simulated
## fleet (and real QEMU VMs) and `ferrometal run`; watch the fleet reach Available, then look
## around until Ctrl-C. CLUSTER=1 runs the operator as a Pod instead: the image of
## `cargo xtask image`, installed by the Helm chart on a local node (needs root). IPV6=1 runs
## the simulated fleet over IPv6 (DHCPv6, IPv6 BMCs and boot URLs) in a namespace (needs root).
demo:
	cargo xtask demo $(if $(SERVERS),--servers $(SERVERS)) $(if $(VMS),--vms $(VMS)) $(if $(CLUSTER),--cluster) $(if $(IPV6),--ipv6)

## make plugins: build every plugin and test fixture as a wasm32-wasip2 component.
plugins:
	cargo xtask plugins

## make plugin-setup: what a plugin author needs, nothing more: Debian's wasm toolchain,
## sushy-tools and the `ferrometal` CLI (target/debug/ferrometal); see docs/plugins.md.
plugin-setup:
	cargo xtask plugin-setup

## make crds: regenerate crds/*.yaml (and the chart's copies) and docs/api.md from the Rust API types.
crds:
	cargo run --quiet -p ferrometal -- crdgen

## make bench: release-mode benchmarks; results go to BENCHMARKS.md.
bench:
	cargo xtask bench

## make fuzz [FUZZ_SECONDS=N]: every fuzz target for N seconds (default 60) from its seeds;
## fails on a crash; the figures go into RELIABILITY.md.
fuzz:
	cargo xtask fuzz $(if $(FUZZ_SECONDS),--seconds $(FUZZ_SECONDS))

## make chaos [SERVERS=N] [KILLS=N] [SEED=N]: the kill campaign. A simulated fleet of N
## servers (default 200) is discovered through both paths while `ferrometal run` is killed
## with SIGKILL KILLS times (default 100) at seeded random moments and restarted,
## kube-apiserver 5 and etcd 2 times, and the OCI registry is down 30 s; then nothing may
## be lost, duplicated, orphaned or reused. SEED replays a run (default: from the clock,
## printed). A short form runs in `make test`; the figures go into RELIABILITY.md.
chaos:
	cargo xtask chaos $(if $(SERVERS),--servers $(SERVERS)) $(if $(KILLS),--kills $(KILLS)) $(if $(SEED),--seed $(SEED))

## make rotation-chaos [BMCS=N] [KILLS=N] [SEED=N]: the credential-rotation kill campaign.
## N simulated BMCs (default 100) have their passwords rotated while `ferrometal run` is
## killed with SIGKILL KILLS times (default 20) at seeded random moments; then every
## BMCSecret must match its BMC and no BMC may have locked an account. A short form (20 BMCs,
## 6 kills) runs in `make test`.
rotation-chaos:
	cargo xtask plugins
	FERROMETAL_ROTATION_BMCS=$(or $(BMCS),100) FERROMETAL_ROTATION_KILLS=$(or $(KILLS),20) $(if $(SEED),FERROMETAL_ROTATION_SEED=$(SEED)) \
		cargo test -p ferrometal --test credential_rotation -- rotations_killed --nocapture

## make setup: install and cache every tool without running anything.
setup:
	cargo xtask setup

## make ui-screenshots: the fleet view's screenshots in docs/ui/ (headless Chromium against a
## simulated fleet, and 10,000 synthetic servers for the racks).
ui-screenshots:
	cargo xtask setup
	cargo xtask plugins
	cargo build -p ferrometal -p metalprobe
	FERROMETAL_UI_SCREENSHOTS=$(CURDIR)/docs/ui cargo test -p ferrometal --test ui -- --test-threads=1
