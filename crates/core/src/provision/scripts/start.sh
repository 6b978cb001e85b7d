# shellcheck shell=bash
# Step "start": (re)start the gateway when anything it reads changed since it was last
# started by us (a fingerprint of unit, config and credentials, kept root-only), then wait
# until it reports itself live on loopback.
: "${CK_UNIT_NAME:?}" "${CK_PORT:?}" "${CK_TIMEOUT:?}" "${CK_FINGERPRINT_PATHS:?}"
stamp_dir=/var/lib/clawkeeper
stamp=$stamp_dir/gateway.deployed
install -d -m 0700 -o root -g root "$stamp_dir"

fp=$(
	for p in $CK_FINGERPRINT_PATHS; do
		if [ -d "$p" ]; then
			find "$p" -type f -print0 | sort -z | xargs -0r sha256sum
		elif [ -f "$p" ]; then
			sha256sum "$p"
		else
			echo "missing $p"
		fi
	done | sha256sum | cut -d' ' -f1
)
systemctl enable --quiet "$CK_UNIT_NAME" || fail "Could not enable $CK_UNIT_NAME."
if [ "$(cat "$stamp" 2>/dev/null)" != "$fp" ] || ! systemctl is-active --quiet "$CK_UNIT_NAME"; then
	systemctl reset-failed "$CK_UNIT_NAME" 2>/dev/null || true
	systemctl restart "$CK_UNIT_NAME" || true
	echo "restarted=1"
fi

deadline=$((SECONDS + CK_TIMEOUT))
while :; do
	health=$(curl -fsS --max-time 3 "http://127.0.0.1:$CK_PORT/health" 2>/dev/null || true)
	if grep -q '"live"' <<<"$health"; then
		break
	fi
	state=$(systemctl show -p ActiveState --value "$CK_UNIT_NAME")
	if [ "$state" = failed ] || [ $SECONDS -ge $deadline ]; then
		journalctl -u "$CK_UNIT_NAME" -n 12 --no-pager -o cat >&2 2>/dev/null || true
		if [ "$state" = failed ]; then
			fail_or_disk_full "The assistant stopped while starting (see its log above)."
		fi
		fail "The assistant did not become ready within $CK_TIMEOUT seconds."
	fi
	sleep 1
done
echo "$fp" >"$stamp"
chmod 600 "$stamp"
echo "health=live"
echo "started_after_s=$((CK_TIMEOUT - (deadline - SECONDS)))"
