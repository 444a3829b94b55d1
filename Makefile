# ferrometal — public entry points. Each target installs what it needs (apt, pip, Go
# builds), idempotently, and caches it under ~/.cache/ferrometal (FERROMETAL_CACHE_DIR).

# rustup's cargo, even when the calling shell has not sourced ~/.cargo/env.
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: test demo plugins crds bench setup

## make test: formatting, lints, unit, integration and end-to-end tests.
test:
	cargo xtask test

## make demo [SERVERS=N] [VMS=N]: local control plane, OCI registry, simulated fleet (and
## real QEMU VMs) and `ferrometal run`; watch the fleet reach Available, then look around
## until Ctrl-C.
demo:
	cargo xtask demo $(if $(SERVERS),--servers $(SERVERS)) $(if $(VMS),--vms $(VMS))

## make plugins: build every plugin and test fixture as a wasm32-wasip2 component.
plugins:
	cargo xtask plugins

## make crds: regenerate crds/*.yaml (and the chart's copies) and docs/api.md from the Rust API types.
crds:
	cargo run --quiet -p ferrometal -- crdgen

## make bench: release-mode benchmarks; results go to BENCHMARKS.md.
bench:
	cargo xtask bench

## make setup: install and cache every tool without running anything.
setup:
	cargo xtask setup
