# pelab front door. `make reproduce` and `make test` install missing Debian packages themselves.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps configure build test reproduce clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@test -f $(BUILD_DIR)/build.ninja || cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

reproduce: build
	bash scripts/reproduce.sh $(BUILD_DIR)/pelab

clean:
	rm -rf $(BUILD_DIR)
