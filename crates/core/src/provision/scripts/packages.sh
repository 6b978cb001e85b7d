# shellcheck shell=bash
# Step "packages": the few system packages provisioning relies on.
apt_install ca-certificates curl nftables unattended-upgrades
for cmd in curl sha512sum tar gzip nft systemctl runuser; do
	command -v "$cmd" >/dev/null || fail "The command $cmd is missing on the server."
done
