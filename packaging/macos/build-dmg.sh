#!/usr/bin/env bash
# macOS: build dist/BoxSeg.app with packaging/boxseg.spec and pack it into
# dist/BoxSeg-<version>-macos-<arch>.dmg (the app and a link to /Applications).
#
# Run from a checkout with the package installed as the README says (pip install -e . &&
# pip install -e ".[app]"); the pinned PyInstaller of the `packaging` extra is installed if needed.
#     bash packaging/macos/build-dmg.sh
#
# Signing and notarisation run only when their environment variables are set (the release
# workflow sets them from repository secrets; without them the app is ad-hoc signed, which runs
# on the machine that built it, and users elsewhere must right-click > Open it the first time):
#   BOXSEG_CODESIGN_IDENTITY  a "Developer ID Application: NAME (TEAMID)" identity in the keychain:
#                             PyInstaller signs every binary and the .app with the hardened runtime
#                             and packaging/macos/entitlements.plist; the .dmg is signed too.
#   APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD (an app-specific password of that Apple ID):
#                             the signed .dmg is notarised (xcrun notarytool submit --wait) and the
#                             ticket stapled to it (xcrun stapler staple).
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=packaging/prepare.sh
. packaging/prepare.sh  # -> PY, VERSION; installs the pinned PyInstaller if needed
ARCH=$(uname -m)
DMG="dist/BoxSeg-$VERSION-macos-$ARCH.dmg"

echo "build-dmg.sh: building BoxSeg $VERSION for macos-$ARCH"
rm -rf dist/BoxSeg dist/BoxSeg.app "$DMG"
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/boxseg.spec
test -x dist/BoxSeg.app/Contents/MacOS/BoxSeg
if find dist/BoxSeg.app | grep -iE 'torch|nncf' >/dev/null; then
    echo "build-dmg.sh: torch/nncf files found in the bundle" >&2
    exit 1
fi
codesign --verify --deep --strict dist/BoxSeg.app

# The disk image: the app and a link to /Applications to drag it onto.
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
ditto dist/BoxSeg.app "$staging/BoxSeg.app"
ln -s /Applications "$staging/Applications"
hdiutil create -volname "BoxSeg $VERSION" -srcfolder "$staging" -fs HFS+ -format UDZO -ov "$DMG"

if [ -n "${BOXSEG_CODESIGN_IDENTITY:-}" ]; then
    codesign --force --timestamp --sign "$BOXSEG_CODESIGN_IDENTITY" "$DMG"
    if [ -n "${APPLE_ID:-}" ] && [ -n "${APPLE_TEAM_ID:-}" ] && [ -n "${APPLE_APP_PASSWORD:-}" ]; then
        xcrun notarytool submit "$DMG" --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" \
            --password "$APPLE_APP_PASSWORD" --wait
        xcrun stapler staple "$DMG"
        xcrun stapler validate "$DMG"
    else
        echo "build-dmg.sh: APPLE_ID/APPLE_TEAM_ID/APPLE_APP_PASSWORD not set: signed, not notarised" >&2
    fi
else
    echo "build-dmg.sh: BOXSEG_CODESIGN_IDENTITY not set: ad-hoc signed, not notarised" >&2
fi
echo "build-dmg.sh: $DMG ($(du -h "$DMG" | cut -f1)); app $(du -sh dist/BoxSeg.app | cut -f1)"
