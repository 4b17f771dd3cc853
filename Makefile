# Herald's set-up commands. Each installs what is missing first.
.PHONY: run test setup watch fuzz bench chaos dist static

## Build and serve the app on http://127.0.0.1:3000 (in-memory broker).
run:
	bash scripts/run.sh

## Run every test: fmt, clippy, unit, integration, Playwright end to end.
test:
	bash scripts/test.sh

## The self-contained binary (web app embedded), README, licences and systemd unit
## in target/dist/herald-VERSION-ARCH-linux.tar.gz.
dist:
	bash scripts/dist.sh

## The client-side build of the page (Trunk) in target/trunk-dist/, for static hosting.
static:
	bash scripts/static.sh

## Fuzz push requests, the encoder and raw connections (FUZZ_SECONDS per target, default 60).
fuzz: setup
	bash scripts/fuzz.sh

## Herald against nchan with herald-bench, side by side (BENCH_SMOKE=1: seconds).
bench: setup
	bash scripts/bench.sh

## The delivery checker: a Herald cluster on Redis with Sentinel under faults
## (CHAOS_SECONDS, default 1200; CHAOS_SEED replays a run).
chaos: setup
	bash scripts/chaos.sh

## Install the tools only.
setup:
	bash scripts/setup.sh

## Develop with live rebuilds.
watch: setup
	. scripts/env.sh && cargo leptos watch
