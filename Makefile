# Two commands on a fresh machine: `make run` and `make test`.
# Both bring the machine up to date first (./setup.sh is idempotent and
# returns in seconds when everything is in place).

PYTHON := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup run test test-fast clean-results

setup:
	./setup.sh

run: setup
	./pipeline.py run

# The whole suite: unit tests, the host FUSE server, a real guest, the
# pipeline end to end.  The first run on a new machine pays one cold
# kernel build (about 14 minutes on 2 cores); later runs reuse it.
# The tests without a VM run on both cores at once; those that boot
# guests one at a time (a guest under TCG takes both cores), with the
# slowest listed at the end.
test: setup
	$(PYTHON) -m pytest -ra -n 2 -m "not vm and not e2e" $(PYTEST_ARGS)
	$(PYTHON) -m pytest -ra --durations=25 -m "vm or e2e" $(PYTEST_ARGS)

# Only what needs no VM.
test-fast: setup
	$(PYTHON) -m pytest -ra -n 2 -m "not vm and not e2e" $(PYTEST_ARGS)

clean-results:
	find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
