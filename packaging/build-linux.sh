#!/usr/bin/env bash
# Build the Linux bundle of BoxSeg: dist/BoxSeg/ (executable dist/BoxSeg/BoxSeg) and
# dist/BoxSeg-<version>-linux-<arch>.tar.gz.
#
# Run from a checkout with the package installed as the README says, in the active Python
# environment (or PYTHON=/path/to/python):
#     pip install -e . && pip install -e ".[app]"
#     bash packaging/build-linux.sh
# It installs the pinned PyInstaller of pyproject.toml's `packaging` extra if it is not there yet
# (from PyPI), then builds with packaging/boxseg.spec. The release workflow
# (.github/workflows/release.yml) runs exactly this script. Check the result with
#     QT_QPA_PLATFORM=offscreen dist/BoxSeg/BoxSeg app --smoke-test assets/sample/CT_small.dcm
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=packaging/prepare.sh
. packaging/prepare.sh  # -> PY, VERSION; installs the pinned PyInstaller if needed
ARCH=$(uname -m)

# Shared libraries the Qt xcb platform plugin links to: bundled when this machine has them, so that
# users do not need them; otherwise the bundle relies on the user's system for them (most desktops
# have them; libxcb-cursor0 is the one Ubuntu < 24.04 often lacks). Offscreen needs none of them.
ldcache=$( (ldconfig -p || /sbin/ldconfig -p) 2>/dev/null || true)
missing=""
for lib in libxcb-cursor.so.0 libxcb-icccm.so.4 libxcb-image.so.0 libxcb-keysyms.so.1 libxcb-render-util.so.0 \
           libxkbcommon-x11.so.0; do
    grep -qF "$lib" <<<"$ldcache" || missing="$missing $lib"
done
[ -z "$missing" ] || echo "build-linux.sh: note: not on this machine, so not bundled (needed by the xcb platform" \
    "plugin on the user's desktop):$missing" >&2

echo "build-linux.sh: building BoxSeg $VERSION for linux-$ARCH"
start=$(date +%s)
rm -rf dist/BoxSeg "dist/BoxSeg-$VERSION-linux-$ARCH.tar.gz"
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/boxseg.spec

test -x dist/BoxSeg/BoxSeg

# Debug information: Python builds such as pyenv's (and some extension wheels) ship libpython and
# their extension modules unstripped (libpython3.11 23 MB -> 6 MB). Strip only files that carry
# .debug_info and were not rewritten by auditwheel (patchelf'd libraries in *.libs folders, or with an
# $ORIGIN/../*.libs rpath, may not survive strip); everything else is left byte-identical.
if command -v strip >/dev/null 2>&1 && command -v readelf >/dev/null 2>&1; then
    before=$(du -sk dist/BoxSeg | cut -f1)
    while IFS= read -r -d '' f; do
        case "$f" in *.libs/*) continue ;; esac
        sections=$(readelf -S --wide "$f" 2>/dev/null || true)
        dynamic=$(readelf -d "$f" 2>/dev/null || true)
        grep -q '\.debug_info' <<<"$sections" || continue
        grep -qE 'R(UN)?PATH.*\.libs' <<<"$dynamic" && continue
        strip --strip-unneeded "$f"
    done < <(find dist/BoxSeg -type f \( -name '*.so' -o -name '*.so.*' \) -print0)
    echo "build-linux.sh: stripped debug information: $(( (before - $(du -sk dist/BoxSeg | cut -f1)) / 1024 )) MB"
else
    echo "build-linux.sh: note: binutils (strip, readelf) not found: debug information left in" >&2
fi
if find dist/BoxSeg | grep -iE 'torch|nncf' >/dev/null; then
    echo "build-linux.sh: torch/nncf files found in the bundle:" >&2
    find dist/BoxSeg | grep -iE 'torch|nncf' | head >&2
    exit 1
fi

tar --sort=name --owner=0 --group=0 --numeric-owner -C dist -czf "dist/BoxSeg-$VERSION-linux-$ARCH.tar.gz" BoxSeg
echo "build-linux.sh: dist/BoxSeg ($(du -sh dist/BoxSeg | cut -f1)) and" \
    "dist/BoxSeg-$VERSION-linux-$ARCH.tar.gz ($(du -h "dist/BoxSeg-$VERSION-linux-$ARCH.tar.gz" | cut -f1))" \
    "in $(( $(date +%s) - start )) s"
