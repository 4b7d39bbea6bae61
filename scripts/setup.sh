#!/usr/bin/env bash
# Create .venv and install zoo into it, with torch pinned so that a CPU machine never pulls a
# multi-GB CUDA build. `--test` adds what the test suite needs.
#   ZOO_TORCH        torch requirement to install first (default torch==2.13.0)
#   ZOO_TORCH_INDEX  an index to take torch from (e.g. PyTorch's CPU wheel index on other machines)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  torch_index=()
  [ -n "${ZOO_TORCH_INDEX:-}" ] && torch_index=(--index-url "$ZOO_TORCH_INDEX")
  "${pip[@]}" "${torch_index[@]}" "${ZOO_TORCH:-torch==2.13.0}"
fi
"${pip[@]}" -e ".$extras"
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  # tests/test_reports.py opens the HTML reports in headless Chromium (Debian's package)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "setup.sh: install chromium (e.g. sudo apt-get install chromium) for the HTML report tests" >&2
  fi
fi
if [ "${1:-}" = "--test" ] && ! command -v espeak-ng >/dev/null 2>&1; then
  # the spoken-digits data set (plugins/zoo_audio) is synthesised with Debian's espeak-ng
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q espeak-ng >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q espeak-ng >/dev/null; }
  else
    echo "setup.sh: install espeak-ng (e.g. sudo apt-get install espeak-ng) for the spoken-digits tests" >&2
  fi
fi
