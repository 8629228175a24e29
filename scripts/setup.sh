#!/usr/bin/env bash
# Set up everything Moodlens needs on a fresh Debian/Ubuntu machine (idempotent).
#   scripts/setup.sh          runtime: ffmpeg + .venv with requirements.txt
#   scripts/setup.sh --dev    also the test tools: chromium + chromedriver + requirements-dev.txt
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

system_packages=(ffmpeg)
[ "$dev" = 1 ] && system_packages+=(chromium chromium-driver)

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
requirements=requirements.txt
[ "$dev" = 1 ] && requirements=requirements-dev.txt
stamp=.venv/.installed-$(cat requirements.txt "$requirements" | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "==> installing Python packages from $requirements (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$requirements"
  touch "$stamp"
fi
echo "==> setup complete"
