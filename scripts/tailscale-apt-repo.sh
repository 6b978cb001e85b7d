#!/usr/bin/env bash
# Builds (once) an offline stand-in for Tailscale's apt repository
# (https://pkgs.tailscale.com/stable/debian), for the tests that join a test host
# to a tailnet (tests/tests/tailnet_server.rs). The test hosts cannot reach
# pkgs.tailscale.com, so the provisioning step installs from this one instead,
# through the very same code path: the repository's signing key is downloaded,
# checked against a pinned fingerprint by verifying the repository's InRelease
# with gpgv, and apt installs the `tailscale` package with `signed-by=` that key.
#
# What differs from the real repository, and only this:
# - the package is built here from the official static 1.96.4 binaries that
#   scripts/tailscale-bin.sh fetched and sha256-checked, with the same layout as
#   Tailscale's own .deb (/usr/bin/tailscale, /usr/sbin/tailscaled, the
#   tailscaled.service unit, /etc/default/tailscaled, enabled on install);
# - it is signed with a key made here for the purpose (its fingerprint is in
#   FINGERPRINT next to the repository; the tests pin that one instead of
#   Tailscale's).
#
#   scripts/tailscale-apt-repo.sh BIN_DIR   # prints the repository root on stdout
#
# Result: $CK_CACHE/tailscale-apt/<version>-<hash of this script>/stable/debian/{bookworm.noarmor.gpg,
# dists/bookworm/InRelease, dists/bookworm/main/binary-amd64/Packages, pool/…}
# and FINGERPRINT beside stable/.
# Idempotent. Needs gpg (with gpg-agent) and dpkg-deb; no network.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN=${1:?usage: tailscale-apt-repo.sh BIN_DIR}
TS_VERSION="1.96.4"
CODENAME="bookworm"
ARCH="amd64"
BASE="$CK_CACHE/tailscale-apt"
# Keyed by this script too: changing how the repository is built builds it again.
DEST="$BASE/$TS_VERSION-$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"

done_already() {
  if [[ -f "$DEST/.complete" ]]; then
    info "tailscale apt repository present: $DEST"
    printf '%s\n' "$DEST"
    exit 0
  fi
}
done_already
for tool in gpg dpkg-deb sha256sum md5sum; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[[ -x "$BIN/tailscale" && -x "$BIN/tailscaled" ]] || die "$BIN has no tailscale/tailscaled"

ck_lock_dir "$BASE"
done_already

TMP="$(mktemp -d "$BASE/.tmp-apt.XXXXXX")"
trap 'gpgconf --homedir "$TMP/gnupg" --kill all >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
export GNUPGHOME="$TMP/gnupg"
install -d -m 0700 "$GNUPGHOME"

info "signing key (made here, for the tests only)"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-gen-key "Clawkeeper test stand-in for Tailscale's package signing key <tests@clawkeeper.invalid>" rsa3072 sign never
FPR=$(gpg --batch --with-colons --list-keys | awk -F: '$1 == "fpr" {print $10; exit}')
[[ -n "$FPR" ]] || die "no fingerprint for the new key"

info "package tailscale_${TS_VERSION}_$ARCH.deb from the official static binaries"
PKG="$TMP/pkg"
install -d "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/usr/sbin" "$PKG/lib/systemd/system" "$PKG/etc/default"
install -m 0755 "$BIN/tailscale" "$PKG/usr/bin/tailscale"
install -m 0755 "$BIN/tailscaled" "$PKG/usr/sbin/tailscaled"
cat >"$PKG/lib/systemd/system/tailscaled.service" <<'UNIT'
[Unit]
Description=Tailscale node agent
Documentation=https://tailscale.com/kb/
Wants=network-pre.target
After=network-pre.target NetworkManager.service systemd-resolved.service

[Service]
EnvironmentFile=/etc/default/tailscaled
ExecStart=/usr/sbin/tailscaled --state=/var/lib/tailscale/tailscaled.state --socket=/run/tailscale/tailscaled.sock --port=${PORT} $FLAGS
ExecStopPost=/usr/sbin/tailscaled --cleanup
Restart=on-failure
RuntimeDirectory=tailscale
RuntimeDirectoryMode=0755
StateDirectory=tailscale
StateDirectoryMode=0700
CacheDirectory=tailscale
CacheDirectoryMode=0750
Type=notify

[Install]
WantedBy=multi-user.target
UNIT
cat >"$PKG/etc/default/tailscaled" <<'DEFAULTS'
# Set the port to listen on for incoming VPN packets.
# Remote nodes will automatically be informed about the new port number,
# but you might want to configure this in order to set external firewall
# settings.
PORT="41641"

# Extra flags you might want to pass to tailscaled.
FLAGS=""
DEFAULTS
echo /etc/default/tailscaled >"$PKG/DEBIAN/conffiles"
cat >"$PKG/DEBIAN/control" <<CONTROL
Package: tailscale
Version: $TS_VERSION
Section: net
Priority: extra
Architecture: $ARCH
Maintainer: Clawkeeper tests <tests@clawkeeper.invalid>
Description: The easiest, most secure, cross platform way to use WireGuard + oauth2 + 2FA/SSO
 Offline test stand-in built from the official static $TS_VERSION binaries.
CONTROL
cat >"$PKG/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
	systemctl enable tailscaled.service >/dev/null || true
	systemctl restart tailscaled.service >/dev/null || true
fi
POSTINST
chmod 0755 "$PKG/DEBIAN/postinst"
REPO="$TMP/out/stable/debian"
install -d "$REPO/pool" "$REPO/dists/$CODENAME/main/binary-$ARCH"
DEB="pool/tailscale_${TS_VERSION}_$ARCH.deb"
dpkg-deb --root-owner-group -Zgzip --build "$PKG" "$REPO/$DEB" >/dev/null

info "Packages, Release, InRelease"
PACKAGES="$REPO/dists/$CODENAME/main/binary-$ARCH/Packages"
{
  cat "$PKG/DEBIAN/control"
  echo "Filename: $DEB"
  echo "Size: $(stat -c %s "$REPO/$DEB")"
  echo "SHA256: $(sha256sum "$REPO/$DEB" | cut -d' ' -f1)"
} >"$PACKAGES"
rel="main/binary-$ARCH/Packages"
{
  echo "Origin: Tailscale"
  echo "Label: Tailscale"
  echo "Suite: $CODENAME"
  echo "Codename: $CODENAME"
  echo "Architectures: $ARCH"
  echo "Components: main"
  echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
  echo "SHA256:"
  echo " $(sha256sum "$PACKAGES" | cut -d' ' -f1) $(stat -c %s "$PACKAGES") $rel"
} >"$REPO/dists/$CODENAME/Release"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' --local-user "$FPR" \
  --clearsign --output "$REPO/dists/$CODENAME/InRelease" "$REPO/dists/$CODENAME/Release"
gpg --batch --export "$FPR" >"$REPO/$CODENAME.noarmor.gpg"
printf '%s\n' "$FPR" >"$TMP/out/FINGERPRINT"

rm -rf "$DEST"
mv "$TMP/out" "$DEST"
touch "$DEST/.complete"
info "built in $((SECONDS))s: $DEST"
printf '%s\n' "$DEST"
