#!/usr/bin/env bash
# Create .venv and install LaMa Lab with the tested versions of its stack (constraints.txt).
# Re-running is cheap: the install is skipped while pyproject.toml and constraints.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
stamp=.venv/.lama-installed
wanted=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
echo "setup: installing LaMa Lab and its stack into .venv (a few minutes the first time)" >&2
# Some package mirrors list names they do not serve; pip warns once per such name. Keep every other message.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]' \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
echo "$wanted" > "$stamp"
