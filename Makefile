# embedstore: two commands do everything on a fresh machine (Python 3.11 + pip).
#   make demo   index a real media library and run cross-modal searches
#   make test   lint, type-check and run the whole test suite

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PY_DIRS := embedstore indexers cli tests benchmarks

# Debian packages with real media that the demo and the tests read (what each one holds:
# ../shared/DATA.md, beside the repository).
DEMO_DEBS := tuxpaint-stamps-default
# chromium + chromium-driver: the search page's browser tests (tests/page) drive them via Selenium.
# g++: torch.compile's CPU code generation (tests/encoders/test_imagebind_levers.py).
TEST_DEBS := visp-images-data dataset-fashion-mnist tuxpaint-stamps-default chromium chromium-driver g++

.PHONY: venv demo test lint typecheck pytest test-data demo-data clean help

help:
	@echo "make demo   - build .venv, install the demo library, index it and search it"
	@echo "make test   - build .venv, install test data, run ruff, mypy and pytest"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,postgres,llava,scale]'
	@# test data only: seglearn ships a real smartwatch IMU recording (the package is never imported)
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps seglearn
	@touch $@

# Install Debian data packages when missing and when we can (root + apt); otherwise the tests
# that need them skip with a reason (and fail under CI=true, as .ci/run sets it).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "note: not root, Debian packages$$missing not installed"; fi; \
	fi
endef

test-data:
	$(call apt_install,$(TEST_DEBS))

demo-data:
	$(call apt_install,$(DEMO_DEBS))

lint: venv
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)

typecheck: venv
	$(BIN)/mypy

pytest: venv test-data
	$(BIN)/python -m pytest

test: lint typecheck pytest

demo: venv demo-data
	$(BIN)/embedstore --help
	$(BIN)/python -m embedstore.demo

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
