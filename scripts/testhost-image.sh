#!/usr/bin/env bash
# Builds (once) the root file system image of the provisioning test host: a
# believable fresh Debian 12 VPS, booted by tests/src/testhost.rs under
# systemd-nspawn.
#
#   scripts/testhost-image.sh            # prints the image path on stdout
#
# Result: $CK_CACHE/testhost/bookworm-<hash>.tar.zst, where <hash> is a short
# hash of the recipe below (change the recipe and a new image is built; the
# old one stays until you delete it). Idempotent: an existing image is reused.
# Needs root, debootstrap, zstd and the Debian mirror (network).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE=bookworm
VARIANT=minbase
# What a fresh VPS image has that minbase lacks. libpam-systemd: without it ssh
# logins get no login session. unattended-upgrades is pre-installed because the
# tests have no offline apt mirror yet: provisioning that apt-installs it finds
# it present instead of needing the network.
INCLUDE=systemd,systemd-sysv,dbus,openssh-server,sudo,nftables,iproute2,procps,ca-certificates,curl,xz-utils,libpam-systemd,unattended-upgrades
# Bump when the steps after debootstrap change.
RECIPE_VERSION=1

RECIPE="v$RECIPE_VERSION $SUITE $VARIANT $INCLUDE"
HASH="$(printf '%s' "$RECIPE" | sha256sum | cut -c1-12)"
DIR="$CK_CACHE/testhost"
IMAGE="$DIR/$SUITE-$HASH.tar.zst"

# The machine's configured Debian mirror (deb822 .sources or one-line .list),
# else the public one.
debian_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    uri="$(awk '/^URIs:/ {print $2; exit}' "$f")"
    if [[ "$uri" =~ ^https?://.*/debian/?$ ]]; then printf '%s\n' "${uri%/}"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    uri="$(awk '$1 == "deb" && $2 ~ /^https?:\/\/.*\/debian\/?$/ {print $2; exit}' "$f")"
    if [[ -n "$uri" ]]; then printf '%s\n' "${uri%/}"; return; fi
  done
  printf '%s\n' "http://deb.debian.org/debian"
}

if [[ -f "$IMAGE" ]]; then
  info "test host image present: $IMAGE"
  printf '%s\n' "$IMAGE"
  exit 0
fi

[[ $EUID -eq 0 ]] || die "building the test host image needs root (debootstrap)"
for tool in debootstrap zstd tar; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/setup.sh --test installs it)"
done

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9
if [[ -f "$IMAGE" ]]; then # built by a concurrent run while we waited
  info "test host image present: $IMAGE"
  printf '%s\n' "$IMAGE"
  exit 0
fi

TMP="$(mktemp -d "$DIR/.tmp-image.XXXXXX")"
cleanup() {
  # debootstrap may leave /proc etc. mounted inside the target when it fails.
  if [[ -d "$TMP/rootfs" ]]; then
    awk -v p="$TMP/rootfs" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

MIRROR="$(debian_mirror)"
START=$SECONDS
step "Building the test host image (debootstrap $SUITE from $MIRROR, about 2 minutes)"
info "recipe: $RECIPE"
info "into:   $TMP/rootfs"
debootstrap --variant="$VARIANT" --include="$INCLUDE" "$SUITE" "$TMP/rootfs" "$MIRROR" \
  >"$TMP/debootstrap.log" 2>&1 || {
  tail -n 40 "$TMP/debootstrap.log" >&2
  die "debootstrap failed (log above)"
}

step "Making it a fresh, never-booted image"
R="$TMP/rootfs"
info "removing SSH host keys (each test host makes its own)"
rm -f "$R"/etc/ssh/ssh_host_*
info "emptying machine-id (systemd makes one at first boot) and resolv.conf"
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
rm -f "$R/etc/resolv.conf"
: >"$R/etc/resolv.conf"
info "clearing apt lists and caches"
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb
mkdir -p "$R/var/lib/apt/lists/partial"
info "hostname: vps"
printf 'vps\n' >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tvps\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
rm -rf "$R"/var/log/*.log "$R"/var/log/apt/* "$R/debootstrap"

step "Packing $IMAGE"
tar --numeric-owner --xattrs --acls -C "$R" -cf - . | zstd -q -T0 -o "$TMP/image.tar.zst"
mv "$TMP/image.tar.zst" "$IMAGE"
info "size: rootfs $(du -sh "$R" | cut -f1), image $(du -h "$IMAGE" | cut -f1); took $((SECONDS - START)) s"
printf '%s\n' "$IMAGE"
