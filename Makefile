# Every target runs the pinned Deno, installed by scripts/install-deno.sh when it
# is not on PATH. The permission flags live in scripts/permissions.txt, the one
# list that `make run`, `make build` and the tests' daemons all use.
SHELL := /bin/bash
.DEFAULT_GOAL := test

# Deno errors print a Rust backtrace when this machine's RUST_BACKTRACE=1 leaks in.
export RUST_BACKTRACE := 0
export DENO_NO_UPDATE_CHECK := 1
export NO_COLOR := 1

DENO := $(shell scripts/install-deno.sh)
ifeq ($(DENO),)
$(error scripts/install-deno.sh could not provide Deno; see its message above)
endif
PERMISSIONS := $(shell cat scripts/permissions.txt)

# The original Node daemon, for the interoperability tests (.ci/run sets it too).
WSDAEMON_ORIGINAL ?= $(wildcard $(abspath $(CURDIR)/../shared/peers/ws-daemon-original/run))
export WSDAEMON_ORIGINAL

.PHONY: test fmt lint check unit fuzz soak demo run build bench clean

test: lint check
	$(DENO) fmt --check
	@if [ -n "$(WSDAEMON_ORIGINAL)" ]; then "$(WSDAEMON_ORIGINAL)" --install; fi
	$(DENO) test --frozen --sanitize-ops --sanitize-resources --allow-all test/

unit:
	$(DENO) test --frozen --sanitize-ops --sanitize-resources --allow-all test/unit/

# The soak of `make test` (20 s), longer: make soak [SECONDS=n] (default 300)
soak:
	WSDAEMON_SOAK_SECONDS=$(or $(SECONDS),300) \
	  $(DENO) test --frozen --sanitize-ops --sanitize-resources --allow-all test/integration/soak_test.ts

# The seeded fuzz test of `make test`, longer: make fuzz [SEED=n] [COUNT=n]
fuzz:
	WSDAEMON_FUZZ_COUNT=$(or $(COUNT),200000) WSDAEMON_FUZZ_SEED=$(or $(SEED),$$RANDOM) \
	  $(DENO) test --frozen --sanitize-ops --sanitize-resources --allow-all test/security/fuzz_test.ts

fmt:
	$(DENO) fmt

lint:
	$(DENO) lint

check:
	$(DENO) check --frozen src/ test/ scripts/

demo:
	$(DENO) run --frozen --allow-all scripts/demo.ts

# make run ARGS="--prefix /path --log-level debug"
run:
	@$(DENO) run --frozen $(PERMISSIONS) src/main.ts $(ARGS) || { \
	  code=$$?; echo "make run: the daemon exited with $$code" >&2; exit $$code; }

bench:
	$(DENO) run --frozen --allow-all scripts/bench.ts
	$(DENO) run --frozen --allow-all scripts/bench_ack.ts
	$(DENO) run --frozen --allow-all scripts/bench_fleet.ts

# deno compile downloads its runtime (denort), or takes DENORT_BIN's. Only when
# that download fails is the way around it given, in one line.
build:
	@if [ -n "$$DENORT_BIN" ] && [ ! -x "$$DENORT_BIN" ]; then \
	  echo "make build: DENORT_BIN=$$DENORT_BIN is not an executable file" >&2; exit 1; \
	fi
	@log=$$(mktemp); \
	if $(DENO) compile --frozen $(PERMISSIONS) --output ws-daemon src/main.ts 2>"$$log"; then \
	  rm -f "$$log"; echo "make build: wrote ./ws-daemon"; \
	elif [ -z "$$DENORT_BIN" ] && grep -q "denort" "$$log"; then \
	  rm -f "$$log"; \
	  echo "make build: deno compile could not download its runtime (denort); set DENORT_BIN to a local denort $$($(DENO) --version | awk 'NR==1{print $$2}') binary" >&2; \
	  exit 1; \
	else \
	  cat "$$log" >&2; rm -f "$$log"; exit 1; \
	fi

clean:
	rm -rf ws-daemon .deno
