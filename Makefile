# keyhole — build, test and benchmark.
GO                  ?= go
BIN                 := $(CURDIR)/.bin
STATICCHECK_VERSION := v0.8.2
FUZZTIME            ?= 20s

.PHONY: test fmt vet staticcheck deps race fuzz bench build scale

# The test command: formatting, vet, staticcheck, every test under the race
# detector, then short fuzz runs of the frame and bus envelope decoders.
test: fmt vet staticcheck deps race fuzz

fmt:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -w these files:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(BIN)/staticcheck
	$(BIN)/staticcheck ./...

# Real WebSocket clients for the end-to-end tests (Node's ws package), and
# playwright-core, which drives headless Chromium.
deps: internal/e2e/testdata/node/node_modules/.package-lock.json

internal/e2e/testdata/node/node_modules/.package-lock.json: internal/e2e/testdata/node/package-lock.json
	npm ci --prefix internal/e2e/testdata/node --no-audit --no-fund

race:
	$(GO) test -race -count=1 -timeout 15m ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./messages
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime 10s ./bus/redisbus

# Micro-benchmarks of the codec and routing, then the end-to-end benchmark:
# a backend, proxies and a client on loopback, each in its own process,
# compared with talking to the backend directly (README, "Benchmark").
# wrk drives the HTTP GETs: installed here with apt-get when it is missing
# and we run as root; without it the benchmark's own load generator does.
bench:
	@command -v wrk >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
		timeout 180 apt-get install -y -q wrk >/dev/null 2>&1 || \
		echo "bench: could not install wrk; the benchmark's own load generator runs the GETs"
	$(GO) test -run '^$$' -bench . -benchmem ./messages ./internal/proxy
	$(GO) run ./internal/bench

# The scale run: 10,000 idle tunnels on one node, then on three nodes
# sharing one redis-server (docs/SCALING.md); a few minutes.
scale:
	$(GO) run ./internal/scale

build:
	$(GO) build -o $(BIN)/ ./cmd/proxy ./cmd/client
