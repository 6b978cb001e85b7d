# shellcheck shell=bash
# Step "node": Node and npm from pinned, checksummed npm-registry tarballs, each in its own
# versioned, root-owned prefix (unpacked next to it, renamed into place when complete).
: "${CK_PREFIX_ROOT:?}" "${CK_DOWNLOADS:?}"
: "${CK_NODE_VERSION:?}" "${CK_NODE_URL:?}" "${CK_NODE_SHA512:?}"
: "${CK_NPM_VERSION:?}" "${CK_NPM_URL:?}" "${CK_NPM_SHA512:?}"

install -d -m 0755 -o root -g root "$CK_PREFIX_ROOT"
install -d -m 0700 -o root -g root "$CK_DOWNLOADS"

# install_tarball URL SHA512 PREFIX
install_tarball() {
	local url=$1 sha=$2 prefix=$3 file
	if [ -f "$prefix/.complete" ] && [ "$(cat "$prefix/.complete")" = "$sha" ]; then
		return 0
	fi
	file="$CK_DOWNLOADS/$(basename "$url")"
	fetch_verified "$url" "$file" "$sha"
	rm -rf "$prefix.partial"
	install -d -m 0755 "$prefix.partial"
	if ! tar -xzf "$file" -C "$prefix.partial" --strip-components=1 --no-same-owner; then
		rm -rf "$prefix.partial"
		fail_or_disk_full "Could not unpack $(basename "$file")."
	fi
	chown -R root:root "$prefix.partial"
	chmod -R go-w "$prefix.partial"
	echo "$sha" >"$prefix.partial/.complete"
	rm -rf "$prefix"
	mv "$prefix.partial" "$prefix"
	rm -f "$file"
	echo "changed=1"
}

node_prefix=$CK_PREFIX_ROOT/node-$CK_NODE_VERSION
npm_prefix=$CK_PREFIX_ROOT/npm-$CK_NPM_VERSION
install_tarball "$CK_NODE_URL" "$CK_NODE_SHA512" "$node_prefix"
install_tarball "$CK_NPM_URL" "$CK_NPM_SHA512" "$npm_prefix"

got=$("$node_prefix/bin/node" --version 2>&1) || fail "Node doesn't run on this server: $got"
[ "$got" = "v$CK_NODE_VERSION" ] || fail "Node reports $got instead of v$CK_NODE_VERSION."
got=$("$node_prefix/bin/node" "$npm_prefix/bin/npm-cli.js" --version 2>&1) || fail "npm doesn't run: $got"
[ "$got" = "$CK_NPM_VERSION" ] || fail "npm reports $got instead of $CK_NPM_VERSION."
echo "node=$CK_NODE_VERSION"
echo "npm=$CK_NPM_VERSION"
