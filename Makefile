# berth — build, test and benchmark entry points. `make help` lists them.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Expand once: a commit during a long `make dist` must not change the version mid-way.
VERSION   := $(VERSION)
COMMIT    := $(COMMIT)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN       := bin
DIST      := dist
GOARCHES  := amd64 arm64
HOSTOSES  := linux darwin windows
HOSTARCH  := $(shell $(GO) env GOARCH)
VMCACHE   ?= $(HOME)/.cache/berth-vmimage

.PHONY: help build agent test test-unit test-root test-cross test-vm bench lint dist installers test-installers test-lima vmimage demo clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: agent ## build bin/berth and bin/berth-agent for this machine
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/berth ./cmd/berth

agent: ## build the static linux agent for this arch (bin/berth-agent) and per arch (bin/linux-ARCH/)
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/berth-agent ./cmd/berth-agent
	@for a in $(GOARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-$$a/berth-agent ./cmd/berth-agent || exit 1; \
	done

test: lint test-unit test-cross ## everything CI runs: lint, unit tests, root tests when root, cross-OS build+vet
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-root; \
	else echo "make test: not root, skipping root tests (run 'sudo make test-root')"; fi

test-unit: ## unprivileged unit tests (go test ./...)
	$(GO) test -count=1 -race -timeout 20m ./...

test-root: agent ## root tests: namespaces, mounts, cgroups, OCI conformance (needs root)
	@[ "$$(id -u)" = 0 ] || { echo "test-root needs root" >&2; exit 1; }
	$(GO) test -count=1 -tags root -timeout 30m -p 1 ./...
	./test/oci-conformance.sh $(BIN)/berth-agent

test-cross: ## build and vet the whole tree for every host OS and arch
	@set -e; for os in $(HOSTOSES); do for a in $(GOARCHES); do \
		echo "build+vet GOOS=$$os GOARCH=$$a"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$a $(GO) build ./... ; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$a $(GO) vet ./... ; \
	done; done

vmimage: agent ## build the VM image for this arch into bin/vm/ARCH (Debian packages, cached)
	$(GO) run ./cmd/berth-vmimage build --arch $(HOSTARCH) --agent $(BIN)/linux-$(HOSTARCH)/berth-agent --cache $(VMCACHE) --out $(BIN)/vm/$(HOSTARCH)

test-vm: vmimage ## VM tests under QEMU (root; TCG here: boot, pull, shares, ports, limits, persistence)
	BERTH_VMIMAGE=$(CURDIR)/$(BIN)/vm/$(HOSTARCH) $(GO) test -count=1 -tags vm -v -timeout 20m ./platform/qemu/

bench: agent ## benchmarks (root); figures go to docs/benchmarks.md
	./bench/oci-start.sh $(BIN)/berth-agent
	./bench/run-latency.sh
	./bench/portfwd.sh

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

dist: agent ## release archives for every OS/arch, the VM images (dist/vm/ARCH) plus SHA256SUMS in dist/
	@rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for os in $(HOSTOSES); do for a in $(GOARCHES); do \
		ext=; [ $$os = windows ] && ext=.exe; d=$(DIST)/berth-$(VERSION)-$$os-$$a; mkdir -p $$d; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$d/berth$$ext ./cmd/berth; \
		if [ $$os = windows ]; then CGO_ENABLED=0 GOOS=windows GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$d/berth-engine.exe ./cmd/berth-engine; fi; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$d/berth-agent ./cmd/berth-agent; \
		tar -C $(DIST) -czf $$d.tar.gz $$(basename $$d); rm -rf $$d; \
	done; done
	@set -e; for a in $(GOARCHES); do \
		$(GO) run ./cmd/berth-vmimage build --arch $$a --agent $(BIN)/linux-$$a/berth-agent --cache $(VMCACHE) --out $(DIST)/vm/$$a; \
		tar -C $(DIST)/vm -czf $(DIST)/berth-vm-$(VERSION)-$$a.tar.gz $$a; \
	done
	cd $(DIST) && sha256sum *.tar.gz > SHA256SUMS && cat SHA256SUMS

test-lima: ## opt-in: a real Lima VM (QEMU, software emulation without KVM) through platformtest (root, ~6 min)
	./platform/lima/internal/tools/test-lima.sh

installers: ## deb, rpm, signed Windows setup.exe, Homebrew formula from dist/ (run make dist first)
	./installers/build.sh --dist $(DIST) --version $(VERSION)

test-installers: ## installer checks (root): the .deb in a debootstrap chroot, the NSIS installer signed and verified
	@[ "$$(id -u)" = 0 ] || { echo "test-installers needs root" >&2; exit 1; }
	./installers/test/deb-chroot.sh
	./installers/test/nsis.sh

demo: ## start berth (a QEMU VM) and serve a web page from the built-in demo image on 127.0.0.1:8080
	@need=; command -v qemu-system-$(subst amd64,x86_64,$(subst arm64,aarch64,$(HOSTARCH))) >/dev/null || need="$$need qemu-system-$(if $(filter arm64,$(HOSTARCH)),arm,x86)"; \
	command -v busybox >/dev/null || need="$$need busybox-static"; \
	command -v mkfs.ext4 >/dev/null || need="$$need e2fsprogs"; \
	command -v xz >/dev/null || need="$$need xz-utils"; \
	if [ -n "$$need" ]; then echo "make demo: installing$$need"; apt-get update -qq && apt-get install -y -qq $$need; fi
	$(MAKE) --no-print-directory build vmimage
	$(BIN)/berth start demo
	@$(BIN)/berth --instance demo rm -f berth-demo >/dev/null 2>&1 || true
	$(BIN)/berth --instance demo run -d --name berth-demo -p 127.0.0.1:8080:80 berth/demo:latest
	@for i in $$(seq 50); do curl -fsS http://127.0.0.1:8080/ >/dev/null 2>&1 && break; sleep 0.2; done
	@echo; echo "berth is serving the demo page at http://127.0.0.1:8080/ :"; echo
	@curl -fsS http://127.0.0.1:8080/
	@echo; echo "(stop it with: $(BIN)/berth --instance demo stop; remove it with: $(BIN)/berth delete -f demo)"

clean: ## remove build outputs
	rm -rf $(BIN) $(DIST)
