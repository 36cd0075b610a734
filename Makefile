VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser demo test test-bf16 lint format docs clean

install: $(STAMP)

EXTRAS := .[search,web,export,tensorboard,map,docs,dev]

# uv installs the same pins as pip in ~10 s instead of ~110 s from a fresh clone (2026-12-02, 2
# cores), which is most of `make demo`'s set-up. uv reads no pip.conf, so it is given pip's
# find-links (where this machine keeps the CPU torch wheel); if uv cannot be had, pip does it.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	links=$$($(PY) -m pip config get global.find-links 2>/dev/null || echo "$${PIP_FIND_LINKS:-}"); \
	{ $(PY) -m pip install --quiet uv && $(VENV)/bin/uv pip install --quiet --python $(PY) \
		$${links:+--find-links $$links} -c constraints.txt -e "$(EXTRAS)"; } \
	|| { $(PY) -m pip install --quiet --upgrade pip && \
		$(PY) -m pip install --quiet -c constraints.txt -e "$(EXTRAS)"; }
	touch $(STAMP)

demo: install
	$(VENV)/bin/aekit demo

# ruff, then the import rule: import-linter's contracts in pyproject.toml (docs/architecture.md)
lint: install
	$(VENV)/bin/ruff check src tests bench docs/*.py
	$(VENV)/bin/ruff format --check src tests bench docs/*.py
	$(VENV)/bin/lint-imports --no-cache

format: install
	$(VENV)/bin/ruff format src tests bench docs/*.py
	$(VENV)/bin/ruff check --fix src tests bench docs/*.py

# The documentation site on http://127.0.0.1:8001, rebuilt as it is edited (the tests build it
# with --strict: tests/test_docs_site.py).
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

# The page's browser test drives Debian's chromium (playwright install cannot download here);
# installed only where it is missing and apt-get exists. Not a prerequisite of demo.
browser:
	if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; fi

test: install browser lint
	$(VENV)/bin/python -m pytest -q

# The suite as a CPU with native bf16 would run it (bf16 autocast on by default), on any CPU.
test-bf16: install
	PYTHONPATH=tests $(VENV)/bin/python -m pytest -q -p fake_bf16_cpu --deselect tests/test_web_page.py

clean:
	rm -rf $(VENV) build dist site src/*.egg-info
