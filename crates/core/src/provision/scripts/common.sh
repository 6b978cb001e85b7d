# shellcheck shell=bash
# Shared by every provisioning script. steps.rs sends, on stdin to `bash -s`:
#   set -euo pipefail; the step's parameters as CK_*='…' lines; this file; the step's script.
# Conventions: a failure prints ONE plain-language line starting with "clawkeeper: " on
# stderr and exits with a code the app understands (see EXIT_* in steps.rs):
#   1 step failed, 10 unsupported system, 11 checksum mismatch, 12 disk full,
#   13 refused because it could lock you out.
# Facts the app reads are printed on stdout as "key=value" lines.
umask 022
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

fail_with() {
	local code=$1
	shift
	echo "clawkeeper: $*" >&2
	exit "$code"
}

fail() { fail_with 1 "$@"; }

# Disk full shows up as many different errors; check the disk itself.
fail_or_disk_full() {
	local free_kb
	free_kb=$(df -Pk / 2>/dev/null | awk 'NR==2 {print $4}')
	if [ -n "$free_kb" ] && [ "$free_kb" -lt 102400 ]; then
		fail_with 12 "The server's disk is full (No space left on device)."
	fi
	fail "$@"
}

# One provisioning script at a time on a server. When the app dies or loses its connection
# in the middle of a step, sshd does not stop that step's processes (no terminal, so no
# SIGHUP): a `tar` or `npm ci` goes on working in the unfinished prefix, and a resumed run
# that cleaned the same prefix would race it. Every script therefore waits here until the
# abandoned one has finished (the lock goes with the last process holding fd 9).
exec 9>>/run/clawkeeper-provision.lock
if ! flock -w 900 9; then
	fail "An earlier Clawkeeper setup is still busy on this server after 15 minutes; restart the server, then try again."
fi

# (No `cmd | grep -q` anywhere: with pipefail, grep exiting early fails the pipeline.)
is_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

# apt_install PKG…: install only what is missing.
apt_install() {
	local missing=() p
	for p in "$@"; do
		is_installed "$p" || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	local log
	log=$(mktemp)
	if ! apt-get update -qq >"$log" 2>&1 ||
		! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
		tail -n 5 "$log" >&2
		rm -f "$log"
		fail_or_disk_full "Could not install ${missing[*]} with apt (is the server online?)."
	fi
	rm -f "$log"
}

sha512_of() { sha512sum "$1" | cut -d' ' -f1; }

# fetch_verified URL DEST SHA512_HEX: download (unless already there and right) and check
# the sha512 before anything reads the file. A wrong file is deleted, never used.
fetch_verified() {
	local url=$1 dest=$2 want=$3
	if [ -s "$dest" ] && [ "$(sha512_of "$dest")" = "$want" ]; then
		return 0
	fi
	rm -f "$dest" "$dest.part"
	if ! curl -fsSL --retry 3 --retry-delay 2 --connect-timeout 20 --max-time 1200 \
		-o "$dest.part" "$url"; then
		rm -f "$dest.part"
		fail_or_disk_full "Could not download $url."
	fi
	if [ "$(sha512_of "$dest.part")" != "$want" ]; then
		rm -f "$dest.part"
		fail_with 11 "The download of $(basename "$url") did not match its pinned checksum, so it was not installed."
	fi
	mv "$dest.part" "$dest"
}

# put_file B64 DEST MODE OWNER: write decoded content if it differs; prints changed=1 then.
put_file() {
	local b64=$1 dest=$2 mode=$3 owner=$4 tmp
	tmp=$(mktemp "$(dirname "$dest")/.ck.XXXXXX")
	printf '%s' "$b64" | base64 -d >"$tmp" || {
		rm -f "$tmp"
		fail_or_disk_full "Could not write $dest."
	}
	chmod "$mode" "$tmp"
	chown "$owner" "$tmp"
	if [ -f "$dest" ] && cmp -s "$tmp" "$dest" &&
		[ "$(stat -c '%a %U:%G' "$dest")" = "$(stat -c '%a %U:%G' "$tmp")" ]; then
		rm -f "$tmp"
		return 0
	fi
	mv -f "$tmp" "$dest"
	echo "changed=1"
}

# openclaw_as_user ARG…: the pinned OpenClaw CLI as the service user, in the gateway's
# environment (needs CK_USER, CK_HOME, CK_STATE_DIR, CK_CONFIG_PATH, CK_NODE, CK_ENTRY).
openclaw_as_user() {
	(cd "${CK_HOME:?}" && runuser -u "${CK_USER:?}" -- env -i \
		PATH="$(dirname "${CK_NODE:?}"):/usr/bin:/bin" HOME="$CK_HOME" LC_ALL=C \
		OPENCLAW_STATE_DIR="${CK_STATE_DIR:?}" OPENCLAW_CONFIG_PATH="${CK_CONFIG_PATH:?}" \
		OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 \
		"$CK_NODE" "${CK_ENTRY:?}" "$@" 9>&-)
}
