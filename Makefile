# The two commands of the README. Both run the same idempotent set-up first.
.PHONY: setup run test bench

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/crowdtui

test: setup
	.venv/bin/python -m pytest -q

# Every figure the README quotes, each beside its reference run (see README "Measured").
bench: setup
	.venv/bin/python bench/store.py
	.venv/bin/python bench/attach.py
	.venv/bin/python bench/terminal.py
	.venv/bin/python bench/hub.py
	.venv/bin/python bench/dispatch.py
	.venv/bin/python bench/tui.py
	.venv/bin/python bench/egress.py
	.venv/bin/python bench/runner_start.py
	.venv/bin/python bench/approvals.py
	.venv/bin/python bench/acp.py
	.venv/bin/python bench/faults.py
