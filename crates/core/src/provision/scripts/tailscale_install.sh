# shellcheck shell=bash
# Tailnet step "install": Tailscale from its own apt repository for this system, its
# signing key checked against the fingerprint compiled into Clawkeeper before apt trusts
# it (gpgv verifies the repository's InRelease with the downloaded key and must report
# that fingerprint), then installed with `signed-by=` that key only.
: "${CK_TS_REPO:?}" "${CK_TS_FPR:?}"

# shellcheck disable=SC1091
. /etc/os-release
case "${ID:-}" in
debian | ubuntu) ;;
*) fail_with 10 "Tailscale can't be installed on ${PRETTY_NAME:-this system} by Clawkeeper." ;;
esac
codename=${VERSION_CODENAME:-}
[ -n "$codename" ] || fail_with 10 "This server doesn't say which release of ${PRETTY_NAME:-its system} it runs."
base="$CK_TS_REPO/$ID"
keyring=/usr/share/keyrings/tailscale-archive-keyring.gpg
list=/etc/apt/sources.list.d/tailscale.list
line="deb [signed-by=$keyring] $base $codename main"

trusted_key() { # FILE: is it the key that signs $base, with the pinned fingerprint?
	local release=$1.InRelease status fpr
	curl -fsSL --retry 3 --connect-timeout 20 --max-time 120 -o "$release" "$base/dists/$codename/InRelease" ||
		fail "Could not download Tailscale's package list from $base."
	status=$(gpgv --status-fd 1 --keyring "$1" "$release" 2>/dev/null) || return 1
	fpr=$(awk '$2 == "VALIDSIG" { print ($12 != "" ? $12 : $3); exit }' <<<"$status")
	[ "$fpr" = "$CK_TS_FPR" ]
}

if ! [ -s "$keyring" ] || ! trusted_key "$keyring" 2>/dev/null; then
	tmp=$(mktemp)
	curl -fsSL --retry 3 --connect-timeout 20 --max-time 120 -o "$tmp" "$base/$codename.noarmor.gpg" ||
		fail "Could not download Tailscale's signing key from $base."
	if ! trusted_key "$tmp"; then
		rm -f "$tmp" "$tmp.InRelease"
		fail_with 11 "Tailscale's packages are not signed by the key Clawkeeper knows (fingerprint $CK_TS_FPR), so nothing was installed."
	fi
	install -m 0644 -o root -g root "$tmp" "$keyring"
	rm -f "$tmp" "$tmp.InRelease"
	echo "changed=1"
fi
rm -f "$keyring.InRelease"
if [ "$(cat "$list" 2>/dev/null)" != "$line" ]; then
	printf '%s\n' "$line" >"$list.tmp"
	mv -f "$list.tmp" "$list"
	echo "changed=1"
fi

if ! is_installed tailscale; then
	# Only Tailscale's list is refreshed: the rest of apt is not this step's business.
	log=$(mktemp)
	if ! apt-get update -qq -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- \
		-o APT::Get::List-Cleanup=0 >"$log" 2>&1 ||
		! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tailscale >>"$log" 2>&1; then
		tail -n 5 "$log" >&2
		rm -f "$log"
		fail_or_disk_full "Could not install Tailscale with apt."
	fi
	rm -f "$log"
	echo "changed=1"
fi

# A server without /dev/net/tun (containers, some small VPS plans) runs Tailscale in
# userspace mode, which serves the assistant on the tailnet all the same.
if ! { [ -c /dev/net/tun ] && (exec 3<>/dev/net/tun) 2>/dev/null; }; then
	if ! grep -q -- '--tun=userspace-networking' /etc/default/tailscaled 2>/dev/null; then
		sed -i 's/^FLAGS="\(.*\)"$/FLAGS="\1 --tun=userspace-networking"/' /etc/default/tailscaled
		grep -q -- '--tun=userspace-networking' /etc/default/tailscaled ||
			fail "Could not switch Tailscale to userspace networking on this server (no /dev/net/tun)."
		systemctl restart tailscaled.service || true
		echo "changed=1"
	fi
	echo "tun=userspace"
fi
systemctl enable --quiet tailscaled.service || fail "Could not enable Tailscale at boot."
systemctl is-active --quiet tailscaled.service || systemctl start tailscaled.service ||
	fail "Tailscale's service did not start on the server."
for _ in $(seq 1 50); do
	[ -S /run/tailscale/tailscaled.sock ] && break
	sleep 0.2
done
version=$(tailscale version 2>/dev/null | head -n 1) || fail "Tailscale is installed but doesn't run."
echo "tailscale=$version"
