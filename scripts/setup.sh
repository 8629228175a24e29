#!/usr/bin/env bash
# Set up everything Moodlens needs on a fresh Debian/Ubuntu machine (idempotent).
#   scripts/setup.sh          runtime: ffmpeg + .venv with requirements.txt (ONNX Runtime serving)
#   scripts/setup.sh --dev    also training and test tools: chromium + chromedriver + nginx +
#                             requirements-train.txt (TensorFlow, PyTorch, exporters) + requirements-dev.txt
# Every set is a lock file with hashes (scripts/lock.sh re-locks them from the *.in files).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

system_packages=(ffmpeg)
# wrk drives `make loadtest`; nginx is the local proxy of the scale-out benchmark and of the slow-client test.
[ "$dev" = 1 ] && system_packages+=(chromium chromium-driver wrk nginx-light)

missing=()
for pkg in "${system_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=()
    [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
    echo "==> installing system packages: ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "!! please install these system packages yourself: ${missing[*]}" >&2
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
requirements=(requirements.txt)
[ "$dev" = 1 ] && requirements+=(requirements-train.txt requirements-dev.txt)
# One stamp per lock file and content: `make run` after `make test` installs nothing again.
missing_sets=()
for file in "${requirements[@]}"; do
  [ -f ".venv/.installed-${file%.txt}-$(sha1sum < "$file" | cut -c1-12)" ] || missing_sets+=("$file")
done
if [ ${#missing_sets[@]} -gt 0 ]; then
  echo "==> upgrading pip"
  .venv/bin/python -m pip install --quiet --upgrade pip
  pip_args=()
  for file in "${requirements[@]}"; do pip_args+=(-r "$file"); done
  echo "==> installing the locked Python packages from ${requirements[*]} (the first run downloads them)"
  .venv/bin/python -m pip install --require-hashes --progress-bar on "${pip_args[@]}"
  for file in "${requirements[@]}"; do
    rm -f ".venv/.installed-${file%.txt}-"*
    touch ".venv/.installed-${file%.txt}-$(sha1sum < "$file" | cut -c1-12)"
  done
fi
echo "==> .venv holds $(du -sh .venv/ | cut -f1)"
echo "==> setup complete"
