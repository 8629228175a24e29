# The two commands of the README. `make run` sets up the runtime and serves on http://127.0.0.1:5000
# through gunicorn with the embedded defaults (SQLite in instance/, bundled models); `make test` sets up the
# test tools and runs the whole suite.
.PHONY: run test bench loadtest lint

run:
	scripts/run.sh

test:
	scripts/test.sh

bench:
	scripts/setup.sh --dev
	.venv/bin/python -m benchmarks.run
	.venv/bin/python -m benchmarks.bench_serving

# Load benchmark of gunicorn + MariaDB + Redis on loopback with wrk (README, Throughput).
loadtest:
	scripts/setup.sh --dev
	.venv/bin/python -m benchmarks.load

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
