# shellcheck shell=bash
# Step "firewall": an nftables table of our own (other tables, e.g. Docker's or
# Tailscale's, are left alone). Inbound: loopback, replies, ICMP and SSH only, with a
# per-source limit on new SSH connections (brute-force protection). Outbound: open, or,
# when an allowlist is given, only DNS/NTP/DHCP and the listed host:port pairs (resolved
# now; running provisioning again refreshes the addresses). Checked with `nft -c` before it
# is loaded, loaded atomically, and loaded again at every boot by clawkeeper-firewall.service.
: "${CK_SSH_RATE:?}" "${CK_SSH_BURST:?}" "${CK_FW_UNIT_B64:?}"
CK_EGRESS=${CK_EGRESS:-}
# Tailscale's WireGuard port, when the server is on the person's tailnet (direct
# connections instead of relays); empty otherwise. Nothing else is opened for it.
CK_TS_UDP=${CK_TS_UDP:-}
case "$CK_TS_UDP" in
'' | [0-9] | [0-9][0-9] | [0-9][0-9][0-9] | [0-9][0-9][0-9][0-9] | [0-9][0-9][0-9][0-9][0-9]) ;;
*) fail "The Tailscale port $CK_TS_UDP is not a port number." ;;
esac
rules=/etc/clawkeeper/nftables.nft
install -d -m 0755 -o root -g root /etc/clawkeeper

ports=$(sshd -T 2>/dev/null | awk '$1 == "port" {print $2}' | sort -un | paste -sd, -)
[ -n "$ports" ] || ports=22

v4=()
v6=()
unresolved=()
for entry in $CK_EGRESS; do
	host=${entry%:*}
	port=${entry##*:}
	case "$port" in
	'' | *[!0-9]*) fail "The outbound allowlist entry $entry has no port." ;;
	esac
	while read -r addr; do v4+=("$addr . $port"); done < <(getent ahostsv4 "$host" | awk '{print $1}' | sort -u)
	while read -r addr; do v6+=("$addr . $port"); done < <(getent ahostsv6 "$host" | awk '$1 !~ /^::ffff:/ {print $1}' | sort -u)
	getent ahosts "$host" >/dev/null || unresolved+=("$host")
done
# A name that does not resolve now (DNS hiccup, typo) is reported, not fatal; an allowlist
# where nothing resolves would cut the server off, so that is refused.
if [ -n "$CK_EGRESS" ] && [ "${#v4[@]}" -eq 0 ] && [ "${#v6[@]}" -eq 0 ]; then
	fail "The server could not look up any host of the outbound allowlist, so it was not applied."
fi
[ "${#unresolved[@]}" -eq 0 ] || echo "unresolved=${unresolved[*]}"
join() {
	local IFS=,
	echo "$*"
}

tmp=$(mktemp)
{
	cat <<NFT
#!/usr/sbin/nft -f
# Written by Clawkeeper. Do not edit: provisioning rewrites it.
table inet clawkeeper
delete table inet clawkeeper
table inet clawkeeper {
	set ssh_flood_v4 { type ipv4_addr; flags dynamic, timeout; timeout 2m; }
	set ssh_flood_v6 { type ipv6_addr; flags dynamic, timeout; timeout 2m; }
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state invalid drop
		ct state established,related accept
		meta l4proto icmp accept
		meta l4proto icmpv6 accept
		ip6 saddr fe80::/10 udp dport 546 accept
		tcp dport { $ports } ct state new update @ssh_flood_v4 { ip saddr limit rate over $CK_SSH_RATE burst $CK_SSH_BURST packets } counter drop comment "ssh-bruteforce"
		tcp dport { $ports } ct state new update @ssh_flood_v6 { ip6 saddr limit rate over $CK_SSH_RATE burst $CK_SSH_BURST packets } counter drop comment "ssh-bruteforce"
		tcp dport { $ports } accept comment "ssh"
NFT
	[ -z "$CK_TS_UDP" ] || echo "		udp dport $CK_TS_UDP accept comment \"tailscale\""
	cat <<NFT
		counter comment "dropped"
	}
NFT
	if [ -n "$CK_EGRESS" ]; then
		echo "	set egress_v4 { type ipv4_addr . inet_service;"
		[ "${#v4[@]}" -gt 0 ] && echo "		elements = { $(join "${v4[@]}") }"
		echo "	}"
		echo "	set egress_v6 { type ipv6_addr . inet_service;"
		[ "${#v6[@]}" -gt 0 ] && echo "		elements = { $(join "${v6[@]}") }"
		echo "	}"
		cat <<NFT
	chain output {
		type filter hook output priority filter; policy drop;
		oif "lo" accept
		ct state established,related accept
		meta l4proto icmp accept
		meta l4proto icmpv6 accept
		udp dport { 53, 67, 123, 547 } accept
		tcp dport 53 accept
NFT
		# Tailscale: WireGuard to peers and STUN to find a direct path (its relays are
		# HTTPS, in the allowlist).
		[ -z "$CK_TS_UDP" ] || echo "		udp dport { $CK_TS_UDP, 3478 } accept comment \"tailscale\""
		cat <<NFT
		ip daddr . tcp dport @egress_v4 accept
		ip6 daddr . tcp dport @egress_v6 accept
		counter reject with icmpx type admin-prohibited comment "egress-not-allowed"
	}
NFT
	fi
	echo "}"
} >"$tmp"

if ! out=$(nft -c -f "$tmp" 2>&1); then
	rm -f "$tmp"
	echo "$out" | tail -n 4 >&2
	fail "The firewall rules were not accepted by nftables, so nothing was changed."
fi
chmod 600 "$tmp"
if ! [ -f "$rules" ] || ! cmp -s "$tmp" "$rules" || ! nft list table inet clawkeeper >/dev/null 2>&1; then
	# Loaded first, then kept: a crash in between leaves a file that differs, so the next
	# run loads it again (the other way round, it would find the file "up to date").
	nft -f "$tmp" || fail "The firewall rules could not be loaded."
	mv -f "$tmp" "$rules"
	echo "changed=1"
else
	rm -f "$tmp"
fi

changed=$(put_file "$CK_FW_UNIT_B64" /etc/systemd/system/clawkeeper-firewall.service 644 root:root)
[ -z "$changed" ] || echo "$changed"
if [ -n "$changed" ] || [ "$(systemctl show -p NeedDaemonReload --value clawkeeper-firewall.service)" = yes ]; then
	systemctl daemon-reload
fi
systemctl enable --quiet clawkeeper-firewall.service || fail "Could not enable the firewall at boot."
if ! systemctl is-active --quiet clawkeeper-firewall.service; then
	systemctl start clawkeeper-firewall.service || fail "The firewall service did not start."
fi
# Debian's own nftables.service flushes the whole ruleset when it runs; if it is enabled,
# ours is ordered after it (see the unit), so ours wins.

# Verify what the kernel has now.
live=$(nft list chain inet clawkeeper input 2>&1) || fail "The firewall table is not loaded."
grep -q "policy drop" <<<"$live" || fail "The firewall does not drop unsolicited traffic."
grep -q "ssh-bruteforce" <<<"$live" || fail "The SSH brute-force limit is missing."
grep -q 'comment "ssh"' <<<"$live" || fail "The SSH rule is missing (this would lock you out)."
if [ -n "$CK_TS_UDP" ]; then
	grep -q "udp dport $CK_TS_UDP accept comment \"tailscale\"" <<<"$live" || fail "The rule for Tailscale is missing."
fi
echo "ssh_ports=$ports"
