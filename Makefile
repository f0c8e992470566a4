# pelab front door. `make reproduce` and `make test` install missing Debian packages themselves.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps configure build test bench reproduce fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@test -f $(BUILD_DIR)/build.ninja || cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# pelab vs PyTorch eager, side by side (installs Debian's python3-torch if missing; slow: about
# 30 minutes for both presets and four PEs on 2 cores). docs/PERFORMANCE.md.
bench: build
	bash scripts/bench.sh $(BUILD_DIR)/pelab

# The study at SCALE (tiny | small | paper): train, analyse, write reports/SCALE/index.html and
# claims.json. Resumable: run it again after an interruption. docs/REPRODUCTION.md.
SCALE ?= small
reproduce: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target pelab
	$(BUILD_DIR)/pelab reproduce --scale $(SCALE)

# libFuzzer on the loaders (config, checkpoint, safetensors, sweep file, plan), FUZZ_SECONDS each;
# a clang build in build-fuzz. docs/RELIABILITY.md.
FUZZ_SECONDS ?= 60
# FUZZ_TARGETS: a subset (config checkpoint safetensors sweep plan; default all).
FUZZ_TARGETS ?=
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) BUILD_DIR=$(BUILD_DIR) JOBS=$(JOBS) bash scripts/fuzz.sh $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD_DIR)
