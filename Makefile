# lambdakube — the two commands a new user needs are `make dev` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: dev test test-fast test-e2e lint schemathesis controlplane helm rie tools node-deps images node deps crds bench bench-node e2e clean lambda-go node-ric node-sdk runtime-clients bench-runtime-api

# Main job: the router on the embedded local backend, serving examples/ on 127.0.0.1:9000.
dev: $(STAMP)
	$(PY) -m lambdakube_router.cli dev examples/ --secrets-dir examples/secrets

# Whole suite: unit, runtime, router, cluster tests against a real kube-apiserver, and
# the e2e suite on a real node (tests/e2e: kubelet + containerd on this machine, as root).
test: $(STAMP) node runtime-clients kafka lint
	$(PY) -m pytest -q

# Everything that needs no Kubernetes control plane. Tests never build a tool (a missing
# one fails naming its make target), so the one the chart tests use is built first.
test-fast: $(STAMP) helm runtime-clients kafka
	$(PY) -m pytest -q -m "not cluster and not e2e"

# Lint and types (configured in pyproject.toml); part of `make test`.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Schemathesis over the router's whole OpenAPI document, against a real router on
# 127.0.0.1 (the same test runs in test-fast and test; this prints its numbers).
schemathesis: $(STAMP)
	$(PY) -m pytest -q -s tests/router/test_openapi_schemathesis.py

# Only the real-node e2e suite.
test-e2e: $(STAMP) node
	$(PY) -m pytest -q tests/e2e

# etcd + kube-apiserver + kube-controller-manager + kubectl built from the Go module
# proxy; cached by version under ~/.cache/lambdakube, so only the first run builds.
controlplane:
	@bash hack/build-controlplane.sh >/dev/null

# helm, CoreDNS (and kind, for `make e2e`) from the Go module proxy, cached the same way.
tools:
	@bash hack/build-tools.sh >/dev/null

# Lambda's emulator (aws-lambda-rie) + awslambdaric: the benches' baseline, not a test tool.
rie: $(STAMP)
	@PYTHON=$(PY) bash hack/build-tools.sh rie >/dev/null

# The Runtime API conformance tests' real clients (tests/runtime/test_runtime_api_clients.py):
# awslambdaric (with `rie`), a function built with aws-lambda-go, and aws-lambda-ric from npm
# (a native build: needs autoconf automake libtool g++ cmake).
lambda-go:
	@bash hack/build-tools.sh lambdago >/dev/null

node-ric:
	@bash hack/build-tools.sh noderic >/dev/null

# @aws-sdk/client-lambda (npm, plain JavaScript): the seeds' Node.js orchestrator's SDK.
node-sdk:
	@bash hack/build-tools.sh nodesdk >/dev/null

runtime-clients: rie lambda-go node-ric node-sdk

# Apache Kafka (KRaft, one node) from Maven Central for the Kafka event source's tests
# (tests/kafka) and bench: needs java and mvn; cached by version under ~/.cache/lambdakube.
.PHONY: kafka bench-kafka
kafka:
	@bash hack/build-kafka.sh >/dev/null

# helm alone (about 2 minutes cold): all that `make test-fast` needs of the tools.
helm:
	@bash hack/build-tools.sh helm >/dev/null

# Debian packages of the real node and the image build (only the missing ones).
node-deps:
	@bash hack/install-node-deps.sh

# pause, runtime and operator/router images as archives for containerd, built offline
# and cached by a hash of their inputs under ~/.cache/lambdakube/images.
images: node-deps
	@bash hack/build-node-images.sh >/dev/null

# Everything the real-node e2e suite needs, built before any test starts.
node: controlplane tools images

deps: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.deps-* && touch $@

crds: $(STAMP)
	$(PY) -m lambdakube_router.cli crds

bench: $(STAMP) rie
	$(PY) bench/router_overhead.py
	$(PY) bench/runtime_api.py
	$(PY) bench/cold_start.py
	$(PY) bench/overload.py
	$(PY) bench/config_scale.py

# The Runtime API's cost alone: built-in vs Runtime API (awslambdaric, Node.js, Go) vs
# aws-lambda-rie, warm and cold (the other clients' rows need `make runtime-clients`).
bench-runtime-api: $(STAMP) rie
	$(PY) bench/runtime_api.py

# Records per second through a Kafka event source mapping vs a plain aiokafka consumer.
bench-kafka: $(STAMP) kafka
	$(PY) bench/kafka_mapping.py

# Cold starts and warm overhead on real pods (brings up the real node itself).
bench-node: $(STAMP) node
	$(PY) bench/real_node.py

# End to end on kind: needs Docker and internet (see README, .github/workflows/e2e.yaml).
e2e: $(STAMP)
	bash hack/e2e-kind.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
