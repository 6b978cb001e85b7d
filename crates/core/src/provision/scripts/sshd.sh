# shellcheck shell=bash
# Step "sshd": key-only SSH. A drop-in that sorts before cloud-init's 50-* (sshd keeps the
# first value it reads), checked with `sshd -t` before sshd reloads, and never applied when
# the account we came in with has no SSH key (that would lock the person out).
: "${CK_SSHD_DROPIN_B64:?}" "${CK_LOGIN_USER:?}"
dropin=/etc/ssh/sshd_config.d/10-clawkeeper.conf
command -v sshd >/dev/null || fail "OpenSSH server (sshd) is not installed."

home=$(getent passwd "$CK_LOGIN_USER" | cut -d: -f6)
if ! grep -qsE '^(ssh-|ecdsa-|sk-)' "$home/.ssh/authorized_keys" "$home/.ssh/authorized_keys2"; then
	fail_with 13 "The account $CK_LOGIN_USER has no SSH key on this server, so turning off password logins would lock you out. Add your key first."
fi

install -d -m 0755 /etc/ssh/sshd_config.d
if ! grep -qiE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/\*\.conf' /etc/ssh/sshd_config; then
	cp -p /etc/ssh/sshd_config /etc/ssh/sshd_config.clawkeeper-backup
	{
		echo "Include /etc/ssh/sshd_config.d/*.conf"
		cat /etc/ssh/sshd_config.clawkeeper-backup
	} >/etc/ssh/sshd_config
	echo "changed=1"
fi

backup=""
[ -f "$dropin" ] && backup=$(cat "$dropin")
changed=$(put_file "$CK_SSHD_DROPIN_B64" "$dropin" 644 root:root)
# The running sshd keeps the settings it loaded (`sshd -T` reads the files), so what was
# last reloaded is remembered: an interrupted run that wrote the drop-in but never reloaded
# sshd gets it reloaded by the next one.
stamp=/var/lib/clawkeeper/sshd.applied
files_sum=$(cat /etc/ssh/sshd_config "$dropin" | sha256sum | cut -d' ' -f1)
if [ -n "$changed" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$files_sum" ]; then
	if ! out=$(sshd -t 2>&1); then
		if [ -n "$changed" ]; then
			if [ -n "$backup" ]; then printf '%s\n' "$backup" >"$dropin"; else rm -f "$dropin"; fi
		fi
		echo "$out" | tail -n 3 >&2
		fail_with 13 "sshd rejected the new settings, so they were not applied."
	fi
	echo "changed=1"
	for svc in ssh sshd; do
		if systemctl is-active --quiet "$svc.service"; then
			systemctl reload "$svc.service" || fail "sshd did not reload."
			break
		fi
	done
	install -d -m 0700 -o root -g root "$(dirname "$stamp")"
	echo "$files_sum" >"$stamp"
fi

# Verify the effective settings (what sshd will do, whichever file said it).
eff=$(sshd -T 2>/dev/null) || fail "Could not read sshd's effective settings."
want() {
	grep -qiE "^$1 ($2)\$" <<<"$eff" || fail "sshd's $1 is $(echo "$eff" | awk -v k="$1" 'tolower($1)==k {print $2}'), not $2."
}
want passwordauthentication no
want kbdinteractiveauthentication no
want permitrootlogin "prohibit-password|without-password|no"
want permitemptypasswords no
want maxauthtries 3
