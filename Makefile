# Newcomer entry points: `make demo` (install, build, fetch the default model, run it) and `make test`.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
MODEL ?= $(shell scripts/find-model.sh)
BUILD := build
ASAN_BUILD := build-asan

.PHONY: deps build build-asan demo test test-release test-asan fuzz clean

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

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -LE 'slow|static'

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
