# cleanroom: see README.md. Every target installs what it needs on a fresh Debian
# machine with Go (apt-get needs root, or sudo).

SHELL := /bin/bash
GO ?= go
OUT ?= out
BIN := bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: the copyleft corpora the tests and the demo read at run time.
TEST_PKGS := emacs-el linux-source-6.1 xz-utils
DEMO_PKGS := $(TEST_PKGS) glibc-source

.PHONY: all build test deps demo-deps demo bench vet clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# deps installs the corpora the tests read, only those not installed yet.
deps:
	@missing=$$(for p in $(TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(GO) mod download

demo-deps:
	@$(MAKE) --no-print-directory deps TEST_PKGS="$(DEMO_PKGS)"

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt wants to change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# test: vet; every test with the race detector, the corpus-sized ones in their short
# form (the detector makes them take minutes); then every test in full. Tests that read
# a corpus skip only where its package is missing, and deps installs them.
test: deps vet
	$(GO) test -race -short -timeout 20m ./...
	$(GO) test -timeout 20m ./...

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./...

# demo builds an index of the Linux kernel, GNU Emacs' Lisp and glibc from the Debian
# packages, then scans excerpts of them (found) and Go's own source (not found).
demo: demo-deps build
	$(BIN)/indexer build --out $(OUT)/index \
		/usr/src/linux-source-6.1.tar.xz \
		emacs=/usr/share/emacs/28.2/lisp \
		$$(ls /usr/src/glibc/glibc-*.tar.xz | head -1)
	$(BIN)/indexer stats $(OUT)/index
	@mkdir -p $(OUT)/demo
	@# 40 lines of the scheduler, re-indented with spaces and without comments.
	tar -xJOf /usr/src/linux-source-6.1.tar.xz linux-source-6.1/kernel/sched/core.c \
		| sed -n '2200,2239p' | sed -E 's#/\*.*\*/##; s#//.*##; s/^\t+/    /' > $(OUT)/demo/sched-excerpt.c
	-$(BIN)/indexer scan --index $(OUT)/index $(OUT)/demo/sched-excerpt.c
	@# A markdown answer quoting 30 lines of Emacs' simple.el.
	@{ echo "Here is how Emacs does it:"; echo; echo '```elisp'; \
		zcat /usr/share/emacs/28.2/lisp/simple.el.gz | sed -n '1000,1029p'; echo '```'; } > $(OUT)/demo/answer.md
	-$(BIN)/indexer scan --index $(OUT)/index $(OUT)/demo/answer.md
	@# Permissive code is not in the index: Go's own net/http server.
	$(BIN)/indexer scan --index $(OUT)/index $$($(GO) env GOROOT)/src/net/http/server.go && echo "server.go: no copyleft match"

clean:
	rm -rf $(BIN) $(OUT)
