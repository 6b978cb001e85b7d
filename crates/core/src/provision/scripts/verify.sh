# shellcheck shell=bash
# Step "verify": OpenClaw's own check that no secret sits in plain text in its config or
# state (`openclaw secrets audit --check`).
: "${CK_USER:?}"
if ! out=$(openclaw_as_user secrets audit --check 2>&1); then
	echo "$out" | tail -n 8 >&2
	fail "OpenClaw's secrets audit found a secret in plain text."
fi
echo "secrets_audit=clean"
