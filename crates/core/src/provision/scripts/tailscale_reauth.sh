# shellcheck shell=bash
# Key rotation of the server's tailnet node: log the node in again with a fresh single-use
# auth key (`tailscale up --force-reauth`), which makes it generate a new node key and
# register it in place of the old one (same device, same addresses). The key was written
# by the app just before (0600, root, in /run) and is deleted whatever happens here; it is
# only ever read from that file (`--auth-key=file:`), never put in a command line.
#
# `tailscale up` refuses to change settings without every non-default flag, so the flags
# are exactly the join's (tailscale_join.sh): hostname, tag, no DNS takeover. If the
# person changed other settings by hand, tailscale refuses before doing anything (18).
# A re-auth that can't reach Tailscale leaves tailscaled trying in the background with the
# new key in memory; the app then revokes that key and restarts tailscaled, which comes
# back with its old, still registered node key (the new one is persisted only once
# Tailscale accepted it).
: "${CK_TS_HOSTNAME:?}" "${CK_TS_TAG:?}" "${CK_TS_KEYFILE:?}" "${CK_TS_TIMEOUT:?}"
trap 'rm -f "$CK_TS_KEYFILE"' EXIT

[ -s "$CK_TS_KEYFILE" ] || fail_with 14 "The key to log the server in again is missing."
if ! out=$(tailscale up --force-reauth --auth-key="file:$CK_TS_KEYFILE" --hostname="$CK_TS_HOSTNAME" \
	--advertise-tags="$CK_TS_TAG" --accept-dns=false --timeout="${CK_TS_TIMEOUT}s" 2>&1); then
	printf '%s\n' "$out" | tail -n 3 >&2
	case "$out" in
	*"non-default flags"* | *"mentioning all"*)
		fail_with 18 "Tailscale's settings on the server were changed by hand." ;;
	*"invalid key"* | *"not valid"* | *"expired"*)
		fail_with 15 "Tailscale refused the key Clawkeeper made for this server." ;;
	*"requested tags"*)
		fail_with 16 "Your tailnet does not let this server use the tag $CK_TS_TAG." ;;
	*)
		fail_with 17 "The server could not reach Tailscale to log in again." ;;
	esac
fi
echo "changed=1"
