# shellcheck shell=bash
# Posture report: the server's real state, in sections ("@@name" lines) that posture.rs
# parses. Read-only; every probe tolerates failure (a missing section fails its check).
: "${CK_UNIT_NAME:?}" "${CK_STAT_PATHS:?}"
set +e
echo "@@ss"
ss -ltnpH 2>&1
echo "@@cgroup"
cg=$(systemctl show -p ControlGroup --value "$CK_UNIT_NAME" 2>/dev/null)
# cgroup v2, or the v2/named hierarchy of a hybrid setup.
for root in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
	if [ -n "$cg" ] && [ -r "$root$cg/cgroup.procs" ]; then
		cat "$root$cg/cgroup.procs"
		break
	fi
done
echo "@@sshd"
sshd -T 2>&1
echo "@@nft"
nft -j list table inet clawkeeper 2>&1
echo "@@unit"
systemctl show -p ActiveState,SubState,UnitFileState,MainPID,NRestarts,Result "$CK_UNIT_NAME" 2>&1
echo "@@firewall_unit"
systemctl show -p ActiveState,UnitFileState clawkeeper-firewall.service 2>&1
echo "@@stat"
for p in $CK_STAT_PATHS; do
	stat -c '%a|%U|%G|%h|%F|%n' "$p" 2>&1
done
echo "@@apt"
apt-config dump 2>/dev/null | grep '^APT::Periodic::'
echo "@@audit"
openclaw_as_user security audit --json 2>/dev/null
echo "@@end"
