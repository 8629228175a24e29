# The two commands of the README. `make run` sets up and serves on http://127.0.0.1:5000
# with the embedded defaults (SQLite in instance/, bundled models); `make test` sets up the
# test tools and runs the whole suite.
.PHONY: run test bench lint

run:
	scripts/setup.sh
	.venv/bin/python app.py

test:
	scripts/test.sh

bench:
	scripts/setup.sh
	.venv/bin/python -m benchmarks.run

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
