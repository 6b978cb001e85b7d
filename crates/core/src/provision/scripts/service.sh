# shellcheck shell=bash
# Step "service": the hardened systemd unit that runs the gateway as the service user.
: "${CK_UNIT_NAME:?}" "${CK_UNIT_B64:?}"
unit=/etc/systemd/system/$CK_UNIT_NAME
changed=$(put_file "$CK_UNIT_B64" "$unit" 644 root:root)
[ -z "$changed" ] || echo "$changed"
# Also when an interrupted run wrote the unit but never reloaded systemd.
if [ -n "$changed" ] || [ "$(systemctl show -p NeedDaemonReload --value "$CK_UNIT_NAME")" = yes ]; then
	systemctl daemon-reload || fail "systemd did not reload its units."
fi
load=$(systemctl show -p LoadState --value "$CK_UNIT_NAME")
[ "$load" = loaded ] || fail "systemd could not load $CK_UNIT_NAME ($load)."
if command -v systemd-analyze >/dev/null; then
	if ! out=$(systemd-analyze verify "$unit" 2>&1 | grep -F "$CK_UNIT_NAME"); then
		: # no complaints about our unit
	else
		echo "$out" | tail -n 4 >&2
		fail "systemd reports problems with $CK_UNIT_NAME."
	fi
fi
systemctl enable --quiet "$CK_UNIT_NAME" || fail "Could not enable $CK_UNIT_NAME at boot."
