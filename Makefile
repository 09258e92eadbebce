# cleanroom: see README.md. Every target installs what it needs on a fresh Debian
# machine with Go (apt-get needs root, or sudo).

SHELL := /bin/bash
GO ?= go
OUT ?= out
BIN := bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: the copyleft corpora the tests and the demo read at run time,
# prometheus (promtool and the server), which proxy/promtest runs, and redis-server
# (with redis-cli), of which index/redistest makes a Redis Cluster.
TEST_PKGS := emacs-el linux-source-6.1 glibc-source xz-utils prometheus redis-server
DEMO_PKGS := $(TEST_PKGS)
# The packages of those that are corpora: deps names the versions it finds installed,
# as Debian's archives move on and the tests read whichever is there.
CORPUS_PKGS := emacs-el linux-source-6.1 glibc-source

.PHONY: all build test deps demo-deps demo bench eval vet clean loadtest fuzz

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
	@echo "corpora installed:" $$(dpkg-query -W -f '$${Package}=$${Version}\n' $(filter $(CORPUS_PKGS),$(TEST_PKGS)))
	$(GO) mod download
	@# The official npm clients (openai, @anthropic-ai/sdk, ollama), for proxy/sdk's Node
	@# tests: again when the lockfile changes.
	@if ! command -v npm >/dev/null; then echo "npm is missing: proxy/sdk's Node tests will skip"; \
	elif [ proxy/sdk/node/package-lock.json -nt proxy/sdk/node/node_modules/.package-lock.json ]; then \
		echo "npm ci in proxy/sdk/node"; \
		npm ci --prefix proxy/sdk/node --no-audit --no-fund --loglevel=error >/dev/null; \
	fi
	@# Microsoft's SARIF multitool, which validates `indexer scan --format sarif` in cmd/indexer's tests.
	@if ! command -v npm >/dev/null; then echo "npm is missing: the SARIF validation in cmd/indexer will skip"; \
	elif [ cmd/indexer/testdata/sarif-tool/package-lock.json -nt cmd/indexer/testdata/sarif-tool/node_modules/.package-lock.json ]; then \
		echo "npm ci in cmd/indexer/testdata/sarif-tool"; \
		npm ci --prefix cmd/indexer/testdata/sarif-tool --no-audit --no-fund --loglevel=error >/dev/null; \
	fi

demo-deps:
	@$(MAKE) --no-print-directory deps TEST_PKGS="$(DEMO_PKGS)"

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt wants to change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# test: vet; every test with the race detector, the corpus-sized ones in their short
# form (the detector makes them take minutes); then every test in full. Tests that read
# a corpus skip only where its package is missing, and deps installs them.
# The tests need the Redis Cluster: without redis-server they fail, not skip.
test: deps vet
	CLEANROOM_REQUIRE_REDIS=1 $(GO) test -count=1 -race -short -timeout 20m ./...
	CLEANROOM_REQUIRE_REDIS=1 $(GO) test -count=1 -timeout 20m ./...

# bench measures what the performance issue asks for, on the kernel package, and
# writes the table to docs/BENCHMARKS.md: fingerprinting against a read + xxhash pass,
# the kernel build (time, RSS, size), lookups, the gateway against a plain
# httputil.ReverseProxy, block mode's holdback, then the Go benchmarks. Some 5 minutes.
bench: deps build
	$(GO) run ./cmd/bench --out $(OUT)/bench --indexer $(BIN)/indexer --write docs/BENCHMARKS.md

# demo builds an index of the Linux kernel, GNU Emacs' Lisp and glibc from the Debian
# packages, scans excerpts of them (found) and Go's own source (not found), then puts
# the proxy in front of the test upstream playing a model that regurgitates a kernel
# function, and shows one blocked and one clean completion with curl.
DEMO_UP := 127.0.0.1:18081
DEMO_PX := 127.0.0.1:18080
demo: demo-deps build
	$(BIN)/indexer build --out $(OUT)/index \
		/usr/src/linux-source-6.1.tar.xz \
		emacs=/usr/share/emacs/28.2/lisp \
		$$(ls /usr/src/glibc/glibc-*.tar.xz | head -1)
	$(BIN)/indexer stats $(OUT)/index
	@mkdir -p $(OUT)/demo
	@# Excerpts start at a definition found by name (grep -n), not at a line number: the
	@# lines move between the packages' versions.
	tar -xJOf /usr/src/linux-source-6.1.tar.xz linux-source-6.1/kernel/sched/core.c > $(OUT)/demo/core.c
	@echo; echo "== 40 lines of the kernel's scheduler from scheduler_tick(), re-indented, comments stripped:"
	n=$$(grep -n -m1 -x 'void scheduler_tick(void)' $(OUT)/demo/core.c | cut -d: -f1); [ -n "$$n" ] && \
		sed -n "$$n,$$((n + 39))p" $(OUT)/demo/core.c | sed -E 's#/\*.*\*/##; s#//.*##; s/^\t+/    /' > $(OUT)/demo/sched-excerpt.c
	-$(BIN)/indexer scan --index $(OUT)/index $(OUT)/demo/sched-excerpt.c
	@echo; echo "== A markdown answer quoting 30 lines of Emacs' simple.el, from delete-forward-char:"
	@simple=$$(ls /usr/share/emacs/*/lisp/simple.el.gz | tail -1); \
		n=$$(zcat $$simple | grep -n -m1 '^(defun delete-forward-char ' | cut -d: -f1); [ -n "$$n" ] && \
		{ echo "Here is how Emacs does it:"; echo; echo '```elisp'; \
		zcat $$simple | sed -n "$$n,$$((n + 29))p"; echo '```'; } > $(OUT)/demo/answer.md
	-$(BIN)/indexer scan --index $(OUT)/index $(OUT)/demo/answer.md
	@echo; echo "== Permissive code is not in the index: Go's own net/http server:"
	$(BIN)/indexer scan --index $(OUT)/index $$($(GO) env GOROOT)/src/net/http/server.go && echo "server.go: no copyleft match"
	@echo; echo "== The proxy, in front of a model that regurgitates migrate_disable() from kernel/sched/core.c"
	n=$$(grep -n -m1 -x 'void migrate_disable(void)' $(OUT)/demo/core.c | cut -d: -f1); [ -n "$$n" ] && \
		sed -n "$$n,$$((n + 47))p" $(OUT)/demo/core.c > $(OUT)/demo/regurgitated.c
	@set -e; \
	$(BIN)/upstream --listen $(DEMO_UP) --quiet --markdown --replay $(OUT)/demo/regurgitated.c & up=$$!; \
	$(BIN)/proxy --index $(OUT)/index --upstream http://$(DEMO_UP) --listen $(DEMO_PX) \
		--audit-log $(OUT)/demo/audit.jsonl 2> $(OUT)/demo/proxy.log & px=$$!; \
	trap 'kill $$up $$px 2>/dev/null' EXIT; \
	for i in $$(seq 100); do curl -sf http://$(DEMO_PX)/readyz >/dev/null && break; sleep 0.2; done; \
	echo; echo "-- A streamed completion the model copied: the last chunks the client gets"; \
	curl -sN http://$(DEMO_PX)/v1/chat/completions -H 'Authorization: Bearer sk-demo' -H 'Content-Type: application/json' \
		-d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"How do I disable migration?"}]}' | tail -n 6; \
	echo; echo "-- The same through the Responses API: the stream ends with response.incomplete (content_filter)"; \
	curl -sN http://$(DEMO_PX)/v1/responses -H 'Content-Type: application/json' \
		-d '{"model":"demo","stream":true,"input":"How do I disable migration?"}' | grep '^event:' | tail -n 4; \
	echo; echo "-- And through Anthropic's Messages API: stop_reason refusal"; \
	curl -sN http://$(DEMO_PX)/v1/messages -H 'Content-Type: application/json' \
		-d '{"model":"demo","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"How do I disable migration?"}]}' \
		| grep -o '"stop_reason":"[a-z_]*"'; \
	echo; echo "-- An original completion passes unchanged:"; \
	curl -s http://$(DEMO_PX)/v1/chat/completions -H 'Content-Type: application/json' \
		-d '{"model":"demo","messages":[{"role":"user","content":"#upstream: {\"content\":\"Use migrate_disable() around the section.\"}"}]}'; \
	echo; echo "-- The audit log:"; cat $(OUT)/demo/audit.jsonl; \
	echo; echo "-- Metrics (the series that counted something):"; \
	curl -s http://$(DEMO_PX)/metrics | grep -E '^cleanroom_(requests|matches)_total' | grep -v ' 0$$'

# eval measures detection on real corpora (recall under edits, false alarms, leaks
# through the proxy) and writes docs/EVAL.md; see cmd/eval.
eval: demo-deps
	@if [ cmd/eval/npm/package-lock.json -nt cmd/eval/npm/node_modules/.package-lock.json ]; then \
		echo "npm ci in cmd/eval/npm"; npm ci --prefix cmd/eval/npm --no-audit --no-fund --loglevel=error >/dev/null; fi
	$(GO) run ./cmd/eval --write docs/EVAL.md

# loadtest puts the proxy under load on loopback against the test upstream: 500
# streaming clients for 60 s, 10 index reloads meanwhile; it reports errors, the added
# latency and goroutine and heap growth (docs/RELIABILITY.md). LOADTEST_FLAGS changes
# it, e.g. LOADTEST_FLAGS="--clients 100 --duration 20s".
LOADTEST_FLAGS ?=
loadtest:
	$(GO) run ./cmd/loadtest $(LOADTEST_FLAGS)

# fuzz runs every fuzz target of the packages that read untrusted bytes (the SSE
# reader, the request parser, the shard reader, the tokenizer, archives) for
# FUZZTIME each.
FUZZTIME ?= 20s
FUZZ_PKGS := ./proxy ./proxy/upstream ./index ./corpus ./fingerprint
fuzz:
	@set -e; for pkg in $(FUZZ_PKGS); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME); \
		done; \
	done

clean:
	rm -rf $(BIN) $(OUT)
