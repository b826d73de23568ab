# Sourced by build-linux.sh and macos/build-dmg.sh (from the repository root): checks that BoxSeg
# and PySide6 are installed in the Python to use ($PYTHON, else python/python3), installs the
# PyInstaller pinned in pyproject.toml's `packaging` extra when it is not installed yet, and sets
# PY and VERSION (the installed package's version, from its metadata).

PY=${PYTHON:-python}
command -v "$PY" >/dev/null 2>&1 || PY=python3

"$PY" - <<'EOF'
import importlib.metadata as md
import importlib.util
import sys

try:
    md.version("boxseg")
except md.PackageNotFoundError:
    sys.exit("packaging: boxseg is not installed in this Python; run `pip install -e .` first")
if importlib.util.find_spec("PySide6") is None:
    sys.exit("packaging: PySide6 is missing; run `pip install -e \".[app]\"` first")
EOF

# The pins: pyproject.toml's `packaging` extra is the one place the PyInstaller version is written.
mapfile -t PINS < <("$PY" - <<'EOF'
import re
from pathlib import Path

text = Path("pyproject.toml").read_text(encoding="utf-8")
m = re.search(r"^packaging\s*=\s*\[(.*?)\]", text, re.M | re.S)
if not m:
    raise SystemExit("packaging: pyproject.toml has no `packaging` extra")
print("\n".join(re.findall(r'"([^"]+)"', m.group(1))))
EOF
)
if ! "$PY" - "${PINS[@]}" <<'EOF'
import importlib.metadata as md
import sys

for pin in sys.argv[1:]:
    name, _, version = pin.partition("==")
    try:
        if md.version(name) != version:
            sys.exit(1)
    except md.PackageNotFoundError:
        sys.exit(1)
EOF
then
    echo "packaging: installing ${PINS[*]}"
    "$PY" -m pip install -q "${PINS[@]}"
fi

VERSION=$("$PY" -c 'import importlib.metadata as md; print(md.version("boxseg"))')
