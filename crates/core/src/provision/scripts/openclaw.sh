# shellcheck shell=bash
# Step "openclaw": the pinned OpenClaw with every dependency checked against the pinned
# lockfile (`npm ci` refuses any tarball whose sha512 differs). No package code ever runs
# as root: npm and OpenClaw's own postinstall run as the service user in the unfinished
# prefix, which is then handed to root and renamed into place.
: "${CK_PREFIX_ROOT:?}" "${CK_USER:?}" "${CK_REGISTRY:?}"
: "${CK_NODE_VERSION:?}" "${CK_NPM_VERSION:?}" "${CK_OPENCLAW_VERSION:?}"
: "${CK_PACKAGE_JSON_B64:?}" "${CK_LOCK_B64:?}"

node=$CK_PREFIX_ROOT/node-$CK_NODE_VERSION/bin/node
npm_cli=$CK_PREFIX_ROOT/npm-$CK_NPM_VERSION/bin/npm-cli.js
prefix=$CK_PREFIX_ROOT/openclaw-$CK_OPENCLAW_VERSION
entry=$prefix/node_modules/openclaw/openclaw.mjs
if ! [ -x "$node" ] || ! [ -f "$npm_cli" ]; then
	fail "Node isn't installed yet."
fi

# as_user DIR CMD…: run as the service user with a clean environment (no provider keys,
# no proxies from root's shell), HOME in DIR.
as_user() {
	local dir=$1
	shift
	runuser -u "$CK_USER" -- env -i \
		PATH="$(dirname "$node"):/usr/bin:/bin" HOME="$dir" LC_ALL=C \
		npm_config_cache="$dir/.npm-cache" npm_config_registry="$CK_REGISTRY" \
		npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false \
		OPENCLAW_NO_AUTO_UPDATE=1 "$@" 9>&-
}

if ! [ -f "$prefix/.complete" ] || [ "$(cat "$prefix/.complete")" != "$CK_OPENCLAW_VERSION" ]; then
	work=$prefix.partial
	rm -rf "$work"
	install -d -m 0755 -o "$CK_USER" -g "$CK_USER" "$work"
	printf '%s' "$CK_PACKAGE_JSON_B64" | base64 -d >"$work/package.json"
	printf '%s' "$CK_LOCK_B64" | base64 -d >"$work/package-lock.json"
	chown "$CK_USER:$CK_USER" "$work/package.json" "$work/package-lock.json"
	log=$(mktemp)
	if ! (cd "$work" && as_user "$work" "$node" "$npm_cli" ci --ignore-scripts --no-audit \
		--no-fund --loglevel=error --fetch-retries=2 --fetch-retry-mintimeout=2000 \
		--fetch-retry-maxtimeout=10000) >"$log" 2>&1; then
		tail -n 8 "$log" >&2
		# Nothing half-installed stays behind (it may be what filled the disk).
		rm -rf "$work"
		if grep -q EINTEGRITY "$log"; then
			rm -f "$log"
			fail_with 11 "A package of OpenClaw did not match its pinned checksum, so nothing was installed."
		fi
		if grep -qE 'ENOSPC|No space left' "$log"; then
			rm -f "$log"
			fail_with 12 "The server's disk is full (No space left on device)."
		fi
		rm -f "$log"
		fail_or_disk_full "Installing OpenClaw with npm failed."
	fi
	rm -f "$log"
	# OpenClaw refuses to run while its lifecycle marker is there; npm skipped the
	# postinstall that removes it, so run it explicitly (as local/runtime.rs does).
	pkg=$work/node_modules/openclaw
	if [ -e "$pkg/.openclaw-lifecycle-pending" ]; then
		if ! (cd "$pkg" && as_user "$work" "$node" scripts/postinstall-bundled-plugins.mjs) >&2; then
			rm -rf "$work"
			fail_or_disk_full "OpenClaw's own setup script failed."
		fi
	fi
	[ ! -e "$pkg/.openclaw-lifecycle-pending" ] || fail "OpenClaw's setup did not finish."
	rm -rf "$work/.npm-cache" "$work/.npm"
	chown -R root:root "$work"
	chmod -R go-w "$work"
	echo "$CK_OPENCLAW_VERSION" >"$work/.complete"
	rm -rf "$prefix"
	mv "$work" "$prefix"
	echo "changed=1"
fi

got=$(cd / && as_user /tmp "$node" "$entry" --version 2>&1) || fail "OpenClaw doesn't start: $(echo "$got" | tail -n 1)"
case "$got" in
*"$CK_OPENCLAW_VERSION"*) ;;
*) fail "OpenClaw reports version $got instead of $CK_OPENCLAW_VERSION." ;;
esac
owner=$(stat -c '%U' "$entry")
[ "$owner" = root ] || fail "OpenClaw's files are owned by $owner, not root."
echo "openclaw=$CK_OPENCLAW_VERSION"
