# The commands people type. `make help` lists them.
CARGO ?= cargo
SHARED_TRACES ?= ../shared/traces/openb
# The traces whose published FGD results CI checks we reproduce.
REPRO_TRACES ?= default gpushare40 gpuspec20 multigpu40 cpu250

.PHONY: help build test lint fmt generate simulate reproduce bench core-check ci

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## release build of the allot binary
	$(CARGO) build --release --locked --bin allot

test: ## unit, property and integration tests (the README's test command)
	$(CARGO) test --workspace --locked

lint: ## rustfmt check and clippy with warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

generate: ## regenerate crds/ from the Rust types
	$(CARGO) run --locked --bin allot -- crdgen --out-dir crds

simulate: build ## the embedded default: all policies on the openb default trace, plots in out/
	./target/release/allot simulate --out out/default

reproduce: build ## the FGD paper's baselines on five traces, checked against the published spread, and learned against FGD
	@for t in $(REPRO_TRACES); do \
	  ./target/release/allot simulate --quiet --trace-dir $(SHARED_TRACES) --pods $$t \
	    --policy paper,learned --seeds 42-51 --check-published --check-learned \
	    --out out/$$t || exit 1; \
	done

bench: ## criterion benchmarks: placement decision time vs cluster size, LP plan sizes
	$(CARGO) bench --bench placement
	$(CARGO) bench --bench alloc

core-check: ## prove the pure core builds without kube, axum or tokio
	./.ci/core-check

ci: ## what CI runs
	bash .ci/run
