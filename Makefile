# Two entry points on a fresh Linux machine with Python 3.11:
#   make run    set up .venv and serve the dashboard on the bundled MNIST project
#   make test   set up .venv (and Debian's chromium for the browser tests) and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROJECT ?= mnist
PORT   ?= 5006
# PyTorch's CPU build (a plain `torch` requirement takes a CUDA build of several GB); on a GPU node set
# TORCH_SPEC to the CUDA build you want, e.g. make setup TORCH_SPEC='torch --index-url https://download.pytorch.org/whl/cu126'
TORCH_SPEC ?= torch==2.13.0
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba

.PHONY: setup run info test test-fast lint chromium bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[cpu,torch,onnx,test,bench]'
	# compile umap-learn's and openTSNE's numba code into .cache/numba once (about 45 s): a first UMAP or t-SNE
	# picture then takes seconds, not a minute of compilation
	$(BIN)/python -c "from engine.reduce import warm_up; warm_up('umap'); warm_up('tsne')"
	touch $(STAMP)

# Browser tests drive Debian's chromium (Playwright cannot download browsers here).
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

run: setup
	$(BIN)/latent-inspector serve $(PROJECT) --port $(PORT) --show

info: setup
	$(BIN)/latent-inspector info $(PROJECT)

# Two workers, one test file each at a time (module fixtures built once per file): the browser and server tests
# spend much of their time waiting. On a 2-core machine the suite took 855-2,242 s of tests in the fresh-clone CI
# runs of 2026-12-05/06 (the quick benchmark run, the load test and the browser tests that restart or kill a server
# are the largest files), often over the 15 minutes it should take: see the README's known limits.
test: setup chromium
	$(BIN)/python -m pytest -n 2 --dist loadfile

test-fast: setup
	$(BIN)/python -m pytest -m "not ui and not slow"

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf .cache .pytest_cache build *.egg-info
