# Newcomer entry points: `make demo` (install, build, fetch the default model, run it) and `make test`.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
MODEL ?= $(shell scripts/find-model.sh)
BUILD := build
ASAN_BUILD := build-asan

.PHONY: deps build build-asan demo test test-release test-asan fuzz fuzz-explore clean

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSQ_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

demo: build
	@scripts/demo.sh

# Every parser fuzzed briefly, then the whole suite twice: an optimised build, then under AddressSanitizer +
# UndefinedBehaviorSanitizer.
test: fuzz test-release test-asan

fuzz: deps
	@scripts/fuzz.sh

# Long exploration (docs/benchmarks.md): every target for FUZZ_SECONDS, FUZZ_PARALLEL targets at a time, growing
# and minimising a lasting corpus in FUZZ_CORPUS; prints a table of executions, corpus and failures per target.
FUZZ_SECONDS ?= 600
FUZZ_PARALLEL ?= 1
FUZZ_CORPUS ?= build-fuzz/corpus
fuzz-explore: deps
	@scripts/fuzz.sh --seconds $(FUZZ_SECONDS) --parallel $(FUZZ_PARALLEL) --corpus $(FUZZ_CORPUS) \
	  --table build-fuzz/explore.md $(FUZZ_TARGETS)

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -LE 'slow|static'

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
