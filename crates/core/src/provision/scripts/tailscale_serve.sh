# shellcheck shell=bash
# Tailnet step "serve": the gateway (still on 127.0.0.1 only) is offered on the tailnet
# and nowhere else, as a plain TCP forward of its port: only devices of the person's own
# tailnet, as their policy allows, can open it, and WireGuard already encrypts and
# authenticates them. Clawkeeper owns this server's serve settings: anything else there
# (web handlers, other ports, Funnel to the public internet) is reset first — the app
# decides that from `tailscale serve status --json` and sets CK_TS_RESET.
: "${CK_PORT:?}" "${CK_TS_RESET:?}"
if [ "$CK_TS_RESET" = 1 ]; then
	tailscale serve reset >/dev/null 2>&1 || fail "Could not clear Tailscale's serve settings on the server."
fi
tailscale serve --bg --yes --tcp "$CK_PORT" "tcp://127.0.0.1:$CK_PORT" >/dev/null 2>&1 ||
	fail "Could not offer the assistant on your tailnet (tailscale serve)."
echo "changed=1"
