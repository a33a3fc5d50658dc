# Two commands set everything up on a fresh Debian machine: `make run` and `make test`.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/roadhex/target
export ROADHEX_SHARED_DATA ?= $(abspath ../shared/data)
CARGO_FEATURES := --features roadhex-lake/sql,nats

.PHONY: setup build run test bench fuzz api-fuzz load chaos clippy fmt

setup:
	@bash deploy/setup.sh

build: setup
	cargo build $(CARGO_FEATURES) --bin roadhex

run: build
	bash deploy/run.sh

test: setup
	cargo test --workspace $(CARGO_FEATURES)

# Throughput figures beside their references, measured in the same run (release-like profile).
bench: setup
	cargo run --profile perf -p roadhex-ingest --example ingest_bench
	cargo run --profile perf -p roadhex-ingest --features video --example import_bench
	cargo run --profile perf -p roadhex-vision --example anonymize_bench
	cargo run --profile perf -p roadhex-vision --example signs_bench
	cargo run --profile perf -p roadhex-lake --features sql --example sql_bench
	cargo run --profile perf -p roadhex-rewards --example rewards_bench
	cargo run --profile perf -p roadhex-tiles --example tiles_bench
	# One cargo invocation for the binary and the bench: two would build DataFusion twice (an
	# example unifies the dev-dependencies' features).
	cargo build --profile perf $(CARGO_FEATURES) --bin roadhex --example scale_bench
	$(CARGO_TARGET_DIR)/perf/examples/scale_bench

# Every parser fuzz target for FUZZ_SECONDS (default 60) each; not part of `make test`.
fuzz: setup
	bash deploy/fuzz.sh

# Schemathesis (pinned, in its own venv) against a real node's /openapi.json: every operation and
# the spec's links, API_FUZZ_SECONDS (default 150); not part of `make test`.
api-fuzz: setup
	cargo build $(CARGO_FEATURES) --bin roadhex
	bash deploy/api_fuzz.sh

# Simulated drivers against a real node on loopback: LOAD_DRIVERS (default 200) after a baseline of
# LOAD_BASELINE_DRIVERS (default 50; empty skips it), LOAD_SECONDS (default 600) each; per route
# latency, throughput, peak RSS per process, acknowledged frames lost. LOAD_ARGS adds flags
# (e.g. --layout s3). Not part of `make test`.
LOAD_SECONDS ?= 600
LOAD_DRIVERS ?= 200
LOAD_BASELINE_DRIVERS ?= 50
load: setup
	cargo build $(CARGO_FEATURES) --bin roadhex
	cargo run $(CARGO_FEATURES) --example loadgen -- --seconds $(LOAD_SECONDS) \
		--drivers $(LOAD_BASELINE_DRIVERS),$(LOAD_DRIVERS) $(LOAD_ARGS)

# kill -9 a random stage process every CHAOS_KILL_EVERY seconds (default 10) of a multi-process run
# over S3 and NATS whose uploads span CHAOS_SECONDS (default 120), then compare with a clean run.
# CHAOS_SEED repeats a run's kill order (default: a new seed, printed). Not part of `make test`.
CHAOS_SECONDS ?= 120
CHAOS_KILL_EVERY ?= 10
CHAOS_SEED ?=
chaos: setup
	cargo build $(CARGO_FEATURES) --bin roadhex
	cargo run $(CARGO_FEATURES) --example chaos -- --seconds $(CHAOS_SECONDS) \
		--kill-every $(CHAOS_KILL_EVERY) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

clippy: setup
	cargo clippy --workspace --all-targets $(CARGO_FEATURES) -- -D warnings

fmt:
	cargo fmt --all
