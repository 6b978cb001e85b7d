# shellcheck shell=bash
# Step "secrets": what is on the server, as "cred NAME SHA256 MODE OWNER GROUP LINKS TYPE"
# (or "cred NAME missing"). The app compares the hashes with the secrets it holds and sends
# only what differs; secrets themselves never appear in a command or in this output.
: "${CK_CRED_DIR:?}" "${CK_CRED_NAMES?}"
for name in $CK_CRED_NAMES; do
	f=$CK_CRED_DIR/$name
	if [ -f "$f" ] && ! [ -L "$f" ]; then
		sum=$(sha256sum <"$f" | cut -d' ' -f1)
		echo "cred $name $sum $(stat -c '%a %U %G %h' "$f") file"
	else
		echo "cred $name missing"
	fi
done
