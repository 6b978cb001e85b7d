# shellcheck shell=bash
# Step "os": is this a system we support, with systemd, and room on disk?
: "${CK_MIN_FREE_MB:?}"

[ -r /etc/os-release ] || fail_with 10 "This server doesn't say which system it runs (no /etc/os-release)."
# shellcheck disable=SC1091
. /etc/os-release
case "${ID:-}:${VERSION_ID:-}" in
debian:12 | debian:13 | ubuntu:22.04 | ubuntu:24.04) ;;
*) fail_with 10 "This server runs ${PRETTY_NAME:-an unknown system}; Clawkeeper supports Debian 12 or 13 and Ubuntu 22.04 or 24.04." ;;
esac

arch=$(uname -m)
case "$arch" in
x86_64 | aarch64) ;;
*) fail_with 10 "This server's processor ($arch) isn't supported; Clawkeeper needs a 64-bit Intel/AMD or ARM server." ;;
esac

[ -d /run/systemd/system ] || fail_with 10 "This server doesn't run systemd, which Clawkeeper needs to keep the assistant running."

# A freshly created cloud server is still running cloud-init (its own apt runs, the SSH
# keys, the first-boot setup): let it finish before changing anything.
if command -v cloud-init >/dev/null 2>&1; then
	ci_status=$(timeout 900 cloud-init status --wait 2>/dev/null | tail -n 1) || true
	case "$ci_status" in
	*done* | *disabled* | *"not run"*) ;;
	*error*) echo "clawkeeper: cloud-init reported an error on first boot; continuing ($ci_status)" >&2 ;;
	*) fail "The server's first-boot setup (cloud-init) has not finished after 15 minutes ($ci_status)." ;;
	esac
	echo "cloud_init=${ci_status##*: }"
fi

free_mb=$(df -Pm / | awk 'NR==2 {print $4}')
if [ "${free_mb:-0}" -lt "$CK_MIN_FREE_MB" ]; then
	fail_with 12 "The server has only ${free_mb:-0} MB free on its disk; it needs about $CK_MIN_FREE_MB MB."
fi

echo "os=$ID $VERSION_ID"
echo "pretty=${PRETTY_NAME:-}"
echo "arch=$arch"
echo "virt=$(systemd-detect-virt 2>/dev/null || true)"
echo "free_mb=$free_mb"
