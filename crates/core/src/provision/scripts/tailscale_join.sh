# shellcheck shell=bash
# Tailnet step "join": log the server in with the single-use auth key Clawkeeper minted,
# which the app wrote just before (0600, root, in /run) and which is deleted whatever
# happens here. The key is only ever read from that file (`--auth-key=file:`), never put
# in a command line. (The app runs this only when the server is not on the tailnet yet.)
: "${CK_TS_HOSTNAME:?}" "${CK_TS_TAG:?}" "${CK_TS_KEYFILE:?}" "${CK_TS_TIMEOUT:?}"
trap 'rm -f "$CK_TS_KEYFILE"' EXIT

[ -s "$CK_TS_KEYFILE" ] || fail_with 14 "The server is not on your tailnet yet, and no key to join was given."
if ! out=$(tailscale up --auth-key="file:$CK_TS_KEYFILE" --hostname="$CK_TS_HOSTNAME" \
	--advertise-tags="$CK_TS_TAG" --accept-dns=false --timeout="${CK_TS_TIMEOUT}s" 2>&1); then
	printf '%s\n' "$out" | tail -n 3 >&2
	case "$out" in
	*"invalid key"* | *"not valid"* | *"expired"*)
		fail_with 15 "Tailscale refused the key Clawkeeper made for this server." ;;
	*"requested tags"* | *"tag:"*)
		fail_with 16 "Your tailnet does not let this server use the tag $CK_TS_TAG." ;;
	*)
		fail_with 17 "The server could not reach Tailscale to join your tailnet." ;;
	esac
fi
echo "changed=1"
