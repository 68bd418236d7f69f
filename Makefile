# UltraCloud testkit. `make demo` and `make test` work on a fresh Debian 12
# machine as root (or with sudo): they install what they need first.

SHELL := /bin/bash
GO ?= go
DEB_PACKAGES := qemu-system-x86 qemu-utils ovmf nix-bin gdisk dosfstools e2fsprogs xorriso mtools socat cpio chromium fio
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
GOTEST_FLAGS ?= -timeout 75m

.PHONY: all deps test demo vet fmt-check tidy-check fuzz build clean

all: test

## deps: install the Debian packages the tests and lanes need (idempotent, quiet when done);
## the fixture guest's kernel, bash-static, busybox-static and systemd-boot-efi are fetched
## with apt-get download on first use, which needs the package lists this also refreshes.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	lists=$$(ls /var/lib/apt/lists/ 2>/dev/null | grep -c '_Packages' || true); \
	if [ -n "$$missing" ] || [ "$$lists" = 0 ]; then \
		echo "make deps: apt-get update$${missing:+; installing $$missing}"; \
		$(SUDO) apt-get update -qq; \
	fi; \
	if [ -n "$$missing" ]; then \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build:
	$(GO) build ./...

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## tidy-check: go.mod and go.sum say exactly what the code imports
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run 'go mod tidy' (and update flake.nix's vendorHash; TestFlakeVendorHash prints it)"; exit 1; }

## test: install deps, then vet and run every test (VM tests included); the run ends
## with a summary (package times, slowest tests, what a timeout cut off, failures)
test: deps fmt-check tidy-check vet
	nix-instantiate --parse flake.nix >/dev/null
	$(GO) test -race -short ./...
	$(GO) build -o .testsummary ./internal/cmd/testsummary
	set -o pipefail; $(GO) test $(GOTEST_FLAGS) -json ./... | ./.testsummary

## demo: install deps, then run the main lane (baremetal-iso) on the fixture guest
demo: deps
	$(GO) run ./cmd/ultracloud env
	$(GO) run ./examples/baremetal-iso -work-dir ultracloud-work/demo

## fuzz: run every fuzz target for a while (not part of CI)
FUZZTIME ?= 60s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done
