# Two commands on a fresh machine: `make dashboard` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120

.PHONY: setup system-deps test test-fast screenshots lint bench dashboard demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The browser tests drive Debian's chromium; the exporter tests scrape with a real Prometheus.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(APT) update -q && $(APT) install -y -q --no-install-recommends $$missing; \
	fi

test: setup system-deps
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not e2e"

# The browser tests write their screenshots into a temporary folder; this refreshes the README's.
screenshots: setup system-deps
	PTPD_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest -q tests/e2e/test_browser.py

# mypy cannot follow setuptools' editable finder, so it checks the packages through a link tree
# with their installed names (otherwise every cross-package import would be Any).
TYPECHECK := build/typecheck
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	mkdir -p $(TYPECHECK)/ptpd_calibration
	ln -sfn $(CURDIR)/monitoring $(TYPECHECK)/ptpd_calibration/monitoring
	ln -sfn $(CURDIR)/dashboard $(TYPECHECK)/ptpd_calibration/dashboard
	cd $(TYPECHECK) && MYPYPATH=. $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml \
		-p ptpd_calibration.monitoring -p ptpd_calibration.dashboard

bench: setup
	$(PY) -m bench

demo: setup
	$(VENV)/bin/ptpd-monitor demo --if-empty

dashboard: demo
	$(VENV)/bin/ptpd-monitor dashboard

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
