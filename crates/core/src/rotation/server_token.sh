# shellcheck shell=bash
# A server's secret files (the gateway token; the provider key), as their rotations see and
# change them (run as root; see server_token.rs). CK_PREFIX names the secret's files. Sent
# on stdin to `bash -s` after `set -euo pipefail` and the CK_* parameters. No secret is ever
# in here or in what it prints: secret files are written by a separate `install …
# /dev/stdin` and only named by their sha256 here.
#   CK_ACTION=state   prints "@@config", the gateway's config (SecretRefs only), then
#                     "@@files" and "<sha256> <name>" per file of CK_PREFIX, then "@@env" and
#                     "env_token=unit|process" when an OPENCLAW_GATEWAY_TOKEN is set.
#   CK_ACTION=config  writes CK_CONFIG_B64 as the config (atomically, once the last write
#                     is 2 s old or was seen applied, only if it differs unless
#                     CK_FORCE=1), then waits up to CK_WAIT s for the gateway's "reload
#                     applied" line; prints waited=0|1 (for the last write), changed=1,
#                     applied=0|1.
#   CK_ACTION=prune   removes the files of CK_PREFIX not named in CK_KEEP.
: "${CK_ACTION:?}" "${CK_PREFIX:?}" "${CK_DIR:?}" "${CK_CONFIG_PATH:?}" "${CK_LOG:?}" "${CK_UNIT:?}" "${CK_USER:?}"
export LC_ALL=C
umask 077

case "$CK_ACTION" in
state)
	echo "@@config"
	cat "$CK_CONFIG_PATH"
	echo
	echo "@@files"
	if [ -d "$CK_DIR" ]; then
		for f in "$CK_DIR/$CK_PREFIX"*; do
			if ! [ -f "$f" ] || [ -L "$f" ]; then continue; fi
			echo "$(sha256sum <"$f" | cut -d' ' -f1) $(basename "$f")"
		done
	fi
	echo "@@env"
	# Names only, never values.
	unit_env=$(systemctl show -p Environment -p EnvironmentFiles "$CK_UNIT" 2>/dev/null || true)
	case "$unit_env" in *OPENCLAW_GATEWAY_TOKEN*) echo "env_token=unit" ;; esac
	pid=$(systemctl show -p MainPID --value "$CK_UNIT" 2>/dev/null || echo 0)
	if [ "${pid:-0}" != 0 ] && [ -r "/proc/$pid/environ" ]; then
		if tr '\0' '\n' <"/proc/$pid/environ" | awk -F= '$1 == "OPENCLAW_GATEWAY_TOKEN" {f=1} END {exit !f}'; then
			echo "env_token=process"
		fi
	fi
	;;
config)
	: "${CK_CONFIG_B64:?}" "${CK_WAIT:?}"
	tmp=$(mktemp "$(dirname "$CK_CONFIG_PATH")/.ck-rotate.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	printf '%s' "$CK_CONFIG_B64" | base64 -d >"$tmp"
	chmod 600 "$tmp"
	chown "$CK_USER:$CK_USER" "$tmp"
	if [ "${CK_FORCE:-0}" != 1 ] && cmp -s "$tmp" "$CK_CONFIG_PATH"; then
		echo "applied=1"
		exit 0
	fi
	# A change written while the gateway applies the last one can be dropped ("config
	# reload superseded"): wait until the last write is 2 s old, unless this script saw
	# the gateway apply it (the mark names the config file as it is: inode and mtime).
	applied_mark="$(dirname "$CK_CONFIG_PATH")/.ck-config-applied"
	this_config() { stat -c '%i %.9Y' "$CK_CONFIG_PATH" 2>/dev/null || echo none; }
	waited=0
	while [ "$(cat "$applied_mark" 2>/dev/null)" != "$(this_config)" ]; do
		age=$(awk -v now="$(date +%s.%N)" -v m="$(stat -c %.3Y "$CK_CONFIG_PATH" 2>/dev/null || echo 0)" \
			'BEGIN {print (now - m >= 2) ? "old" : "new"}')
		[ "$age" = old ] && break
		waited=1
		sleep 0.2
	done
	echo "waited=$waited"
	mark=$(stat -c %s "$CK_LOG" 2>/dev/null || echo 0)
	mv -f "$tmp" "$CK_CONFIG_PATH"
	trap - EXIT
	echo "changed=1"
	end=$((SECONDS + CK_WAIT))
	while [ "$SECONDS" -lt "$end" ]; do
		sleep 0.1
		if tail -c +"$((mark + 1))" "$CK_LOG" 2>/dev/null |
			awk '/gateway\/reload/ && /reload (applied|failed)/ {f=1} END {exit !f}'; then
			this_config >"$applied_mark"
			echo "applied=1"
			exit 0
		fi
	done
	echo "applied=0"
	;;
prune)
	: "${CK_KEEP:?}"
	for f in "$CK_DIR/$CK_PREFIX"* "$CK_DIR/.$CK_PREFIX"*; do
		[ -e "$f" ] || [ -L "$f" ] || continue
		case " $CK_KEEP " in
		*" $(basename "$f") "*) ;;
		*) rm -f "$f" ;;
		esac
	done
	;;
*)
	echo "clawkeeper: unknown action $CK_ACTION" >&2
	exit 2
	;;
esac
