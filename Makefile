# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv and install on first use (again whenever pyproject.toml changes).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
#: pytest-xdist workers for `make test`: the Ray and MLflow tests wait on their services most of the
#: time, so two workers on two cores overlap that wait with the other tests (tests/conftest.py)
TEST_WORKERS ?= 2

.PHONY: demo test install clean-demo help

help:
	@echo "make demo   install into $(VENV), then generate -> train -> digitise on local Ray and MLflow"
	@echo "make test   install into $(VENV), then run the test suite"

install: $(STAMP)

# torch: where there is no CUDA, take the CPU build (torch==2.13.0 is the CPU
# wheel on this machine's disk); never pull a multi-GB CUDA build into CI.
$(STAMP): pyproject.toml
	@# Tesseract (Debian tesseract-ocr) reads sheet headers and re-reads doubtful depth labels;
	@# installed from the OS packages when missing and we are root, never downloaded at run time.
	@if ! command -v tesseract >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing tesseract-ocr (Debian package) for sheet OCR"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null) \
				|| echo "could not install tesseract-ocr: sheets use the shipped digit reader only"; \
		else \
			echo "tesseract not found (not root or no apt-get): sheets use the shipped digit reader only"; \
		fi; \
	fi
	@# Chromium and its driver (Debian chromium, chromium-driver) run the review page's browser test
	@# (tests/test_review.py) headless; from the OS packages, never downloaded at run time.
	@if ! command -v chromedriver >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium and chromium-driver (Debian packages) for the review page's browser test"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
				|| echo "could not install chromium: the review page's browser test will be skipped"; \
		else \
			echo "chromedriver not found (not root or no apt-get): the review page's browser test will be skipped"; \
		fi; \
	fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "CUDA found: installing the CUDA build of torch"; \
		$(PY) -m pip install -q "torch>=2.4,<3"; \
	else \
		echo "no CUDA: installing the CPU build of torch"; \
		$(PY) -m pip install -q torch==2.13.0; \
	fi
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	@$(PY) -m veernet_ray.trace
	$(VENV)/bin/veernet demo

test: $(STAMP)
	@$(PY) -m veernet_ray.trace
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15

clean-demo:
	rm -rf runs/demo
