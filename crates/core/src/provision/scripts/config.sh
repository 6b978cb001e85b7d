# shellcheck shell=bash
# Step "config": the hardened gateway configuration (no secrets in it: only SecretRefs),
# private to the service user, and accepted by OpenClaw itself.
: "${CK_CONFIG_B64:?}" "${CK_CONFIG_PATH:?}" "${CK_USER:?}"
put_file "$CK_CONFIG_B64" "$CK_CONFIG_PATH" 600 "$CK_USER:$CK_USER"
if ! out=$(openclaw_as_user config validate 2>&1); then
	echo "$out" | tail -n 6 >&2
	fail "OpenClaw did not accept the configuration."
fi
