# Shared by bin/run and bin/test: create .venv and install the project with the given extras,
# skipping pip when nothing changed since the last install.
ensure_venv() {
  local extras="$1"
  local python="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  local stamp=".venv/.arena-installed"
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)-${extras}"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check -e ".${extras}"
    echo "$want" > "$stamp"
  fi
}
