# The two commands of the README: `make reproduce` (the main job) and `make test`. Both set themselves up.
PRESET ?= laptop
PY := .venv/bin/python
REPORTS ?= reports/latest

.PHONY: setup reproduce test test-slow test-gpu bench lab clean-reports

setup:
	@bash scripts/setup.sh

# Build the embedded corpus and execute every notebook at $(PRESET), leaving numbers + notebooks in $(REPORTS).
# What was made with the same settings, code and inputs is reused; FRESH=1 remakes everything.
FRESH ?=
reproduce: setup
	$(PY) -m workbench reproduce --preset $(PRESET) --reports $(REPORTS)$(if $(FRESH), --fresh)

# a test that hangs (a notebook kernel and its client each waiting on the other, seen once in CI) fails after
# 15 minutes with its stack instead of holding the run: every default test takes a few minutes at most
test: setup
	$(PY) -m pytest -q --timeout 900

test-slow: setup
	$(PY) -m pytest -q -m slow

# Every test marked gpu (kernels vs reference to T = 1M, the LM and FSDP on CUDA). Where no CUDA device is
# visible it fails with one line (tests/conftest.py) instead of skipping everything. The whole GPU acceptance
# run (build, these tests, benchmarks, timed training steps -> reports/gpu/): bash scripts/gpu_check.sh
test-gpu: setup
	$(PY) -m pytest -q -m gpu

bench: setup
	$(PY) -m workbench bench scan --reports $(REPORTS)

lab: setup
	$(PY) -m jupyter lab notebooks/

clean-reports:
	rm -rf reports
