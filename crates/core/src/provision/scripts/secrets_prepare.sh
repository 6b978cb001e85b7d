# shellcheck shell=bash
# Step "secrets", before any secret is sent: the private credentials directory, and removal
# of credentials this instance no longer uses.
: "${CK_CRED_DIR:?}" "${CK_CRED_OWNER:?}" "${CK_CRED_NAMES?}"
install -d -m 0755 -o root -g root "$(dirname "$CK_CRED_DIR")"
install -d -m 0700 -o "$CK_CRED_OWNER" -g "$CK_CRED_OWNER" "$CK_CRED_DIR"
for f in "$CK_CRED_DIR"/* "$CK_CRED_DIR"/.[!.]*; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	name=$(basename "$f")
	case " $CK_CRED_NAMES " in
	*" $name "*) [ -L "$f" ] && rm -f "$f" ;;
	*)
		rm -rf "$f"
		echo "changed=1"
		;;
	esac
done
