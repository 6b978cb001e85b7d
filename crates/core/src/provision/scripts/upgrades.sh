# shellcheck shell=bash
# Step "upgrades": unattended security upgrades, on.
: "${CK_AUTO_UPGRADES_B64:?}"
apt_install unattended-upgrades
put_file "$CK_AUTO_UPGRADES_B64" /etc/apt/apt.conf.d/20auto-upgrades 644 root:root
for t in apt-daily.timer apt-daily-upgrade.timer; do
	if systemctl cat "$t" >/dev/null 2>&1; then
		systemctl enable --now --quiet "$t" || fail "Could not switch on $t."
	fi
done
dump=$(apt-config dump)
grep -q '^APT::Periodic::Unattended-Upgrade "1";' <<<"$dump" ||
	fail "Automatic security upgrades are not switched on."
grep -q '^APT::Periodic::Update-Package-Lists "1";' <<<"$dump" ||
	fail "Automatic package list updates are not switched on."
