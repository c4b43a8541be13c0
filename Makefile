# Charter developer entry points. Everything here needs only Go. `make test`
# uses the race detector when cgo has a C compiler (it needs one) and says so
# when it runs without it.

GO        ?= go
FUZZTIME  ?= 10s
BIN       ?= bin
DATA      ?= ./.charter
CLUSTER   ?= ./.charter-cluster
ADDR      ?= 127.0.0.1:8000
BENCHARGS ?=
# make bench's second registration run, on its own fresh node: the batch
# path (POST /entries/batch), at the best setting measured so far
# (spec/performance.md). Its flags follow BENCHARGS, so they win over
# BENCHARGS's; empty skips that run
BENCHBATCH ?= --batch 32 --publishers 64
# make bench's and bench-cluster's warm-up: each network is loaded this long
# before phase 1 and the warm-up is not counted (a fresh node's first
# seconds fault in its heap and Pebble's memtables: spec/performance.md);
# empty measures from the node's start, as runs before 2026-12-05 16:00 did
BENCHWARMUP ?= --warmup 10s
APPBENCHARGS ?=
# bench-app's workloads: a bank of 1024 users (the clients rarely touch the
# same account at once), then 128 users for 128 clients (every transfer
# races others for its accounts: it measures conflict re-runs too)
APPBENCHUSERS ?= 1024 128
POLICY    ?= spec/policies/realistic-five-checks.js
ROUNDS    ?= 4
# -race needs cgo and a C compiler; without them go test -race fails outright.
RACE      ?= $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)

CHAOSROUNDS ?= 50
CHAOSSNAPSHOTS ?=
CHAOSLOGS ?=
CHAOSLOGLEVEL ?=

.PHONY: all build run cluster test chaos fuzz bench bench-app bench-cluster bench-policy bench-scale clean

all: build

## build: compile every command into $(BIN)/
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

## run: start (or reopen) the single-node development network in $(DATA)
run:
	$(GO) run ./cmd/charterd dev --data $(DATA) --addr $(ADDR)

## cluster: start (or reopen) a local three-node network in $(CLUSTER); its
## URLs are in $(CLUSTER)/nodes.txt, the certificate to pin in
## $(CLUSTER)/service_cert.pem
cluster:
	$(GO) run ./cmd/charterd cluster --nodes 3 --data $(CLUSTER)

## test: all tests under the race detector; ends with Go's summary per package
test:
	@[ -n "$(RACE)" ] || echo "make: no C compiler for cgo: running tests without the race detector" >&2
	$(GO) test $(RACE) -count=1 -timeout 14m ./...

## chaos: the operator's chaos run on three real nodes (CHAOSROUNDS faults,
## default 50: kill -9 of the leader, of a follower, of two nodes at once,
## under 32 publishers), then the whole history checked; prints
## acknowledged, lost, forks, unavailability and snapshots sent. Minutes.
## CHAOSSNAPSHOTS=N sets snapshot_entries to N, so that most restarts are
## caught up by a (delta) snapshot instead of the log. CHAOSLOGS=DIR keeps
## the nodes' logs of a failed run in DIR; CHAOSLOGLEVEL=debug makes them
## say more (raft, the peer transport).
chaos:
	CHARTER_CHAOS=1 CHARTER_CHAOS_ROUNDS=$(CHAOSROUNDS) CHARTER_CHAOS_SNAPSHOT_ENTRIES=$(CHAOSSNAPSHOTS) CHARTER_E2E_LOGS=$(CHAOSLOGS) CHARTER_E2E_LOG_LEVEL=$(CHAOSLOGLEVEL) $(GO) test -count=1 -timeout 60m -run '^TestChaos$$' -v ./internal/e2e/

## bench: start a fresh dev node, load it for BENCHWARMUP (10s, not
## counted), and measure registrations/s and latency
## of single statements (POST /entries; BENCHARGS), then on another fresh
## node of batches (BENCHARGS, then BENCHBATCH, default --batch 32
## --publishers 64), each with phase 1 and phase 2 at half load; then the
## banking app's transfers/s on one node and on three (bench-app,
## APPBENCHARGS); about three minutes in all
bench:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/charterd ./cmd/charterd
	$(GO) build -o $(BIN)/charterbench ./cmd/charterbench
	$(BIN)/charterbench --charterd $(BIN)/charterd $(BENCHWARMUP) $(BENCHARGS)
	$(if $(strip $(BENCHBATCH)),$(BIN)/charterbench --charterd $(BIN)/charterd $(BENCHWARMUP) $(BENCHARGS) $(BENCHBATCH))
	for u in $(APPBENCHUSERS); do $(BIN)/charterbench --charterd $(BIN)/charterd --app banking --nodes 1,3 --users $$u $(APPBENCHARGS) || exit 1; done

## bench-app: deploy samples/banking on a fresh dev node and then a fresh
## three-node cluster, and measure transfers/s, p50/p99 and errors of 128
## clients for 10s each, for each bank size in APPBENCHUSERS; checks money is
## conserved (aim: ≥ 5,000 transfers/s on one node). Options go in
## APPBENCHARGS, e.g. APPBENCHARGS="--clients 256 --duration 20s"
bench-app:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/charterd ./cmd/charterd
	$(GO) build -o $(BIN)/charterbench ./cmd/charterbench
	for u in $(APPBENCHUSERS); do $(BIN)/charterbench --charterd $(BIN)/charterd --app banking --nodes 1,3 --users $$u $(APPBENCHARGS) || exit 1; done

## bench-cluster: the same measurement against one node and then a fresh
## three-node cluster, and the ratio of their registrations/s (aim ≥ 0.70)
bench-cluster:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/charterd ./cmd/charterd
	$(GO) build -o $(BIN)/charterbench ./cmd/charterbench
	$(BIN)/charterbench --charterd $(BIN)/charterd --compare --nodes 3 $(BENCHWARMUP) $(BENCHARGS)

## bench-policy: phase 1 on one dev node without and with the registration
## policy POLICY (set and removed by governance), ROUNDS times in alternating
## order (even, so that each side runs first equally often: the second phase
## of a round runs on a larger ledger), and the median ratio of their
## registrations/s (aim ≥ 0.95);
## statements are application/spdx+json
bench-policy:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/charterd ./cmd/charterd
	$(GO) build -o $(BIN)/charterbench ./cmd/charterbench
	$(BIN)/charterbench --charterd $(BIN)/charterd --policy $(POLICY) --compare-policy --rounds $(ROUNDS) --content-type application/spdx+json $(BENCHARGS)

## bench-scale: what a registration costs the ledger (CPU per registration,
## HTTP and signatures aside) once it holds 0, 10^6 and 10^7 transactions of
## 1 KiB statements, filled through Import (about 13 GB and 6 minutes for
## 10^7 on a 2-core machine; SCALEDIR keeps the filled stores for the next
## run); SCALEREGS registrations are measured at each size
SCALEDIR  ?= $(CURDIR)/.charter-scale
SCALEREGS ?= 200000
bench-scale:
	@mkdir -p $(SCALEDIR)
	for n in 0 1000000 10000000; do \
		CHARTER_SCALE_DIR=$(SCALEDIR) CHARTER_SCALE_ENTRIES=$$n $(GO) test ./internal/ledger -run '^$$' -bench BenchmarkRegisterAtScale -benchtime $(SCALEREGS)x -timeout 90m || exit 1; \
	done

## fuzz: run every Fuzz target of every package for FUZZTIME each.
# `go test -fuzz` accepts one target in one package per run, so the targets
# are discovered per package with `go test -list` and run one at a time.
fuzz:
	@set -e; \
	for pkg in $$($(GO) list ./...); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "$$list"; exit 1; }; \
		targets=$$(echo "$$list" | grep '^Fuzz' || true); \
		for t in $$targets; do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf $(BIN)
