#!/usr/bin/env bash
# Re-lock the three requirement sets with hashes (pip-tools). Run after editing a *.in file;
# commit the .in and the .txt together. The sets are layered: train and dev are constrained
# to the versions the runtime lock chose, so one .venv can hold all three.
set -euo pipefail
cd "$(dirname "$0")/.."
compile=(.venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links)
"${compile[@]}" --output-file requirements.txt requirements.in
"${compile[@]}" --output-file requirements-train.txt requirements-train.in
"${compile[@]}" --output-file requirements-dev.txt requirements-dev.in
