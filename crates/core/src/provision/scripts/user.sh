# shellcheck shell=bash
# Step "user": a dedicated, unprivileged system user that runs the gateway, and its home
# (which holds OpenClaw's state), private to it.
: "${CK_USER:?}" "${CK_HOME:?}" "${CK_STATE_DIR:?}"

if ! id -u "$CK_USER" >/dev/null 2>&1; then
	useradd --system --user-group --home-dir "$CK_HOME" --no-create-home \
		--shell /usr/sbin/nologin --comment "OpenClaw gateway (Clawkeeper)" "$CK_USER" ||
		fail "Could not create the $CK_USER user."
	echo "changed=1"
fi
install -d -m 0700 -o "$CK_USER" -g "$CK_USER" "$CK_HOME" "$CK_STATE_DIR" "$CK_HOME/logs"

# Verify: unprivileged, no login shell, no admin groups, no password, private home.
[ "$(id -u "$CK_USER")" -ne 0 ] || fail "The $CK_USER user has root's user id."
shell=$(getent passwd "$CK_USER" | cut -d: -f7)
case "$shell" in
*/nologin | */false) ;;
*) fail "The $CK_USER user can log in (its shell is $shell)." ;;
esac
for g in $(id -nG "$CK_USER"); do
	case "$g" in
	root | sudo | wheel | adm | admin | docker | lxd) fail "The $CK_USER user is in the administrators' group $g." ;;
	esac
done
pw=$(getent shadow "$CK_USER" | cut -d: -f2)
case "$pw" in
'!'* | '*'*) ;;
*) fail "The $CK_USER user has a password set." ;;
esac
for d in "$CK_HOME" "$CK_STATE_DIR"; do
	[ "$(stat -c '%a %U' "$d")" = "700 $CK_USER" ] || fail "$d is not private to $CK_USER."
done
