# shellcheck shell=bash
# `openclaw security audit --fix`: OpenClaw applies the fixes it considers safe.
: "${CK_USER:?}"
if ! out=$(openclaw_as_user security audit --fix 2>&1); then
	echo "$out" | tail -n 6 >&2
	fail "OpenClaw could not apply its security fixes."
fi
