// Status window: is it working, what it costs, what to do next, safety checks, key, activity.

import "./styles.css";
import {
  type ApiError,
  type BackendEvent,
  type Check,
  type Overview,
  assistantUse,
  getOverview,
  type StatusDetail,
  statusDetail,
  spendResume,
  onEvent,
  openWindow,
  startInstance,
  stopInstance,
  toApiError,
} from "./api";
import {
  byId,
  errorPanel,
  fixFor,
  formatDate,
  formatTime,
  h,
  icon,
  type IconName,
  renderStatusLine,
  timeAgo,
} from "./ui";
import { onServerEvent, openFromHash, refreshServers, setChatPlace } from "./server";
import { initUsage, onUsageEvent, usagePaused } from "./usage";
import { initKeys, onKeysEvent, openKeysFromHash, refreshKeys } from "./keys";

const el = {
  statusLine: byId("status-line"),
  pageError: byId("page-error"),
  keychain: byId("keychain-warning"),
  heroText: byId("hero-text"),
  primary: byId<HTMLButtonElement>("primary-action"),
  secondary: byId<HTMLButtonElement>("secondary-action"),
  checks: byId("checks"),
  checksSummary: byId("checks-summary"),
  providerBody: byId("provider-body"),
  providerDetails: byId<HTMLDetailsElement>("provider-details"),
  providerKv: byId("provider-kv"),
  changeKey: byId<HTMLButtonElement>("change-key"),
  activity: byId("activity"),
  detailsKv: byId("details-kv"),
};

let ov: Overview | undefined;
let primaryRun: (() => Promise<void>) | undefined;
let secondaryRun: (() => Promise<void>) | undefined;

const goSetup = () => openWindow("setup");
const goChat = () => openWindow("chat");

// ---------- actions ----------

/** Run a command from a button; show what went wrong (with the likely fix) if it fails. */
async function act(btn: HTMLButtonElement, busyLabel: string, fn: () => Promise<void>) {
  el.pageError.replaceChildren();
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  const old = btn.textContent;
  btn.textContent = busyLabel;
  try {
    await fn();
  } catch (e) {
    showError(toApiError(e), () => act(btn, busyLabel, fn));
  } finally {
    btn.disabled = false;
    btn.removeAttribute("aria-busy");
    btn.textContent = old;
    if (ov) render(ov); // the state may have moved on while we waited
  }
}

function showError(err: ApiError, retry: () => void | Promise<void>) {
  el.pageError.replaceChildren(errorPanel(err, [fixFor(err, retry)]));
}

el.primary.addEventListener("click", () => primaryRun && void act(el.primary, el.primary.dataset.busy ?? "…", primaryRun));
el.secondary.addEventListener(
  "click",
  () => secondaryRun && void act(el.secondary, el.secondary.dataset.busy ?? "…", secondaryRun),
);
el.changeKey.addEventListener("click", () => void act(el.changeKey, "Opening…", goSetup));

interface Btn {
  label: string;
  busy?: string;
  run?: () => Promise<void>;
}

function setButton(btn: HTMLButtonElement, spec: Btn | null, assign: (run?: () => Promise<void>) => void) {
  btn.hidden = !spec;
  if (!spec) return assign(undefined);
  // Don't clobber the label while the button's own action is still running.
  if (btn.getAttribute("aria-busy") !== "true") btn.textContent = spec.label;
  btn.dataset.busy = spec.busy ?? `${spec.label}…`;
  btn.disabled = !spec.run;
  assign(spec.run);
}

// ---------- rendering ----------

function heroFor(o: Overview): { text: string; primary: Btn; secondary: Btn | null } {
  const i = o.instance;
  const since = i.since ? formatTime(i.since) : "";
  const start: Btn = { label: "Start", busy: "Starting…", run: startInstance };
  const stop: Btn = { label: "Stop", busy: "Stopping…", run: stopInstance };
  const chat: Btn = { label: "Open chat", busy: "Opening…", run: goChat };
  if (o.assistant.place === "server")
    return {
      text: `Chat goes to your server (${o.assistant.name}). ${o.assistant.pathNote} The assistant on this computer is ${
        i.state === "healthy" || i.state === "degraded" ? "also running" : "not in use"
      }.`,
      primary: chat,
      secondary: {
        label: "Chat on this computer instead",
        busy: "Switching…",
        run: () => assistantUse(null).then(() => undefined),
      },
    };

  if (o.install.state === "installing" || i.state === "installing")
    return {
      text: "Getting your assistant ready on this computer.",
      primary: { label: "Show progress", busy: "Opening…", run: goSetup },
      secondary: null,
    };
  if (o.install.state === "missing" || i.state === "not_installed")
    return {
      text: "Your assistant isn't set up yet. It takes a few minutes.",
      primary: { label: "Finish setup", busy: "Opening…", run: goSetup },
      secondary: null,
    };
  if (usagePaused() && !["healthy", "degraded", "starting"].includes(i.state))
    return {
      text: "Paused because the spend cap was reached. Resume it when you're ready, or raise the cap first (below).",
      primary: { label: "Resume", busy: "Resuming…", run: () => spendResume(30).then(() => undefined) },
      secondary: null,
    };
  if (!o.provider.configured)
    return {
      text: "Your assistant needs an API key from a model provider before it can answer.",
      primary: { label: "Connect a provider", busy: "Opening…", run: goSetup },
      secondary: null,
    };
  switch (i.state) {
    case "healthy":
      return { text: `Running privately on this computer${since ? ` since ${since}` : ""}.`, primary: chat, secondary: stop };
    case "degraded":
      return {
        text: "Running, but something needs your attention — see the safety checks below.",
        primary: chat,
        secondary: stop,
      };
    case "starting":
      return { text: "Starting up. This usually takes a few seconds.", primary: { ...stop, label: "Stop" }, secondary: null };
    case "stopping":
      return { text: "Shutting down.", primary: { label: "Stopping…" }, secondary: null };
    case "error":
      return {
        text: i.detail ?? "Your assistant stopped because of a problem.",
        primary: { label: "Start again", busy: "Starting…", run: startInstance },
        secondary: null,
      };
    default:
      return { text: "Not running. Start it to chat with your assistant.", primary: start, secondary: null };
  }
}

const CHECK_ICON: Record<Check["status"], IconName> = { pass: "ok", fail: "bad", pending: "pending" };
const CHECK_WORD: Record<Check["status"], string> = { pass: "Passed", fail: "Failed", pending: "Waiting" };

function renderChecks(checks: Check[], running: boolean) {
  const fails = checks.filter((c) => c.status === "fail").length;
  const pending = checks.filter((c) => c.status === "pending").length;
  el.checksSummary.textContent = !checks.length
    ? ""
    : fails
      ? `${fails} need${fails === 1 ? "s" : ""} attention`
      : pending
        ? running
          ? "Checking…"
          : "Run when your assistant starts"
        : `All ${checks.length} passed`;
  if (!checks.length) {
    el.checks.replaceChildren(h("li", { class: "empty", text: "Safety checks run when your assistant starts." }));
    return;
  }
  el.checks.replaceChildren(
    ...checks.map((c) =>
      h(
        "li",
        { class: "check", "data-status": c.status, "data-check-id": c.id },
        icon(CHECK_ICON[c.status]),
        h(
          "div",
          { class: "item-main" },
          h("div", { text: c.label }),
          c.detail ? h("div", { class: "item-sub", text: c.detail }) : null,
        ),
        h("span", { class: "check-state", text: CHECK_WORD[c.status] }),
      ),
    ),
  );
}

function kv(dl: HTMLElement, rows: [string, string | undefined][]) {
  dl.replaceChildren(...rows.filter(([, v]) => v).flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
}

function renderProvider(o: Overview) {
  const p = o.provider;
  const name = p.kind === "openrouter" ? "OpenRouter" : p.kind === "openai_compatible" ? "Your own provider" : "";
  if (!p.configured) {
    el.providerBody.replaceChildren(
      h("p", { text: "No API key yet." }),
      h("p", { class: "muted small", text: "Your assistant needs one to answer. It's kept in your keychain." }),
    );
    el.changeKey.textContent = "Add a key";
    el.providerDetails.hidden = true;
    return;
  }
  el.changeKey.textContent = "Change key";
  el.providerBody.replaceChildren(
    h("p", { class: "provider-name", text: name || "Model provider" }),
    h(
      "p",
      { class: "saved", id: "key-saved", "data-testid": "key-saved" },
      icon("ok"),
      h("span", { text: `API key saved in your keychain ✓${p.keySavedAt ? ` on ${formatDate(p.keySavedAt)}` : ""}` }),
    ),
  );
  el.providerDetails.hidden = false;
  kv(el.providerKv, [
    ["Provider", name],
    ["Address", p.baseUrl],
    ["Model", p.model],
    ["Key fingerprint", p.keyFingerprint],
  ]);
}

function renderActivity(o: Overview) {
  if (!o.activity.length) {
    el.activity.replaceChildren(h("li", { class: "empty", text: "Nothing yet. What Clawkeeper does shows up here." }));
    return;
  }
  el.activity.replaceChildren(
    ...o.activity.slice(0, 8).map((a) =>
      h(
        "li",
        {},
        h(
          "div",
          { class: "item-main" },
          h("div", { text: a.action }),
          a.detail ? h("div", { class: "item-sub", text: a.detail }) : null,
        ),
        h("time", { class: "item-side", datetime: a.at, title: new Date(a.at).toLocaleString(), text: timeAgo(a.at) }),
      ),
    ),
  );
}

function renderKeychain(o: Overview) {
  el.keychain.replaceChildren();
  if (o.keychain.status === "ok") return;
  const locked = o.keychain.status === "locked";
  const err: ApiError = {
    code: locked ? "keychain_locked" : "keychain_unavailable",
    message: locked ? "Your keychain is locked, so your assistant can't read its API key." : "Clawkeeper can't reach your keychain.",
    hint: o.keychain.hint ?? (locked ? "Unlock your keychain, then try again." : "Check your system's keychain, then try again."),
  };
  el.keychain.append(errorPanel(err, [fixFor(err, refresh)]));
}

function render(o: Overview) {
  renderStatusLine(el.statusLine, o.instance);
  setChatPlace(o.assistant);
  const hero = heroFor(o);
  el.heroText.textContent = hero.text;
  setButton(el.primary, hero.primary, (r) => (primaryRun = r));
  setButton(el.secondary, hero.secondary, (r) => (secondaryRun = r));
  const running = ["starting", "healthy", "degraded"].includes(o.instance.state);
  renderChecks(o.checks, running);
  renderProvider(o);
  renderActivity(o);
  renderKeychain(o);
  const i = o.instance;
  kv(el.detailsKv, [
    ["Lives on", "This computer"],
    ["Version", i.version],
    [i.state === "healthy" || i.state === "degraded" ? "Running since" : "Since", i.since ? new Date(i.since).toLocaleString() : undefined],
    ["Restarts", String(i.restarts)],
    ["State", i.state],
  ]);
}

// ---------- at a glance ----------

const GB = 1024 ** 3;
const size = (b: number) => (b >= 10 * GB ? `${Math.round(b / GB)} GB` : `${(b / GB).toFixed(1)} GB`);

function renderGlance(d: StatusDetail) {
  const host = d.host;
  const where = d.assistant.place === "local" ? "this computer" : "the server";
  const rows: [string, string | undefined][] = [
    ["Runs on", d.assistant.name],
    ["Reached", d.assistant.pathNote],
    ["OpenClaw", d.version],
    ["Working since", d.upSince ? `${new Date(d.upSince).toLocaleString()} (${timeAgo(d.upSince)})` : undefined],
    ["Memory", host ? `${size(host.memoryAvailable)} free of ${size(host.memoryTotal)} on ${where}` : undefined],
    ["Disk", host ? `${size(host.diskFree)} free of ${size(host.diskTotal)}` : undefined],
    ["Assistant uses", d.gatewayMemory ? `${size(d.gatewayMemory)} of memory` : undefined],
    ["Conversations", d.sessions === undefined ? undefined : String(d.sessions)],
    ["Channels", d.sessions === undefined ? undefined : d.channels.length ? d.channels.join(", ") : "None yet (chat in this app)"],
  ];
  kv(byId("glance-kv"), rows);
  const update = byId("glance-update");
  update.textContent = d.update
    ? d.update.available
      ? `OpenClaw ${d.update.latest} is out`
      : "Up to date"
    : "";
  update.dataset.update = d.update?.available ? "available" : "";
  const notes = byId("glance-notes");
  notes.hidden = d.notes.length === 0;
  notes.textContent = d.notes.join(" ");
}

let glanceAt = 0;
let glanceBusy = false;

/** Read "At a glance" again, at most every 30 s (it asks the assistant and the machine). */
async function refreshGlance(force = false) {
  if (glanceBusy || (!force && Date.now() - glanceAt < 30_000)) return;
  glanceBusy = true;
  try {
    renderGlance(await statusDetail());
    glanceAt = Date.now();
  } catch (e) {
    const err = toApiError(e);
    const notes = byId("glance-notes");
    notes.hidden = false;
    notes.textContent = `${err.message}${err.hint ? ` ${err.hint}` : ""}`;
  } finally {
    glanceBusy = false;
  }
}

// ---------- data ----------

let inflight: Promise<void> | undefined;
let again = false;

/** Fetch the overview once; if events arrive meanwhile, fetch once more afterwards. */
function refresh(): Promise<void> {
  if (inflight) {
    again = true;
    return inflight;
  }
  inflight = (async () => {
    try {
      ov = await getOverview();
      render(ov);
    } catch (e) {
      showError(toApiError(e), refresh);
    } finally {
      inflight = undefined;
      if (again) {
        again = false;
        void refresh();
      }
    }
  })();
  return inflight;
}

function onBackendEvent(e: BackendEvent) {
  switch (e.type) {
    case "instance":
      void refreshGlance(e.state === "healthy");
      // A start notes the keys it uses (their age); a stop changes what can be rotated.
      if (e.state === "healthy" || e.state === "stopped") void refreshKeys();
      if (ov) {
        // Show the new state right away, then fetch the rest.
        ov.instance.state = e.state;
        if (e.detail) ov.instance.detail = e.detail;
        else delete ov.instance.detail;
        render(ov);
      }
      void refresh();
      break;
    case "checks":
      if (ov) {
        ov.checks = e.checks;
        renderChecks(e.checks, ["starting", "healthy", "degraded"].includes(ov.instance.state));
      }
      void refresh();
      break;
    case "provider":
      if (e.error) showError(e.error, goSetup);
      void refresh();
      break;
    case "install":
      if (ov) {
        const { type: _t, ...info } = e;
        ov.install = info;
        render(ov);
      }
      break;
    case "server":
    case "server_checks":
    case "server_removed":
      onServerEvent(e);
      break;
    case "assistant": {
      const { type: _t, ...where } = e;
      setChatPlace(where);
      void refresh();
      break;
    }
    case "usage":
    case "spend_alert":
      onUsageEvent(e);
      break;
    case "rotation":
    case "rotation_reminder":
      onKeysEvent(e);
      break;
    case "chat":
      break;
  }
}

async function init() {
  await onEvent(onBackendEvent);
  await Promise.all([refresh(), refreshServers(), initUsage(() => ov && render(ov)), refreshGlance(true), initKeys()]);
  openFromHash();
  openKeysFromHash();
}

void init();

// Keep "5 minutes ago" honest without polling the backend: re-render times locally.
window.setInterval(() => ov && renderActivity(ov), 60_000);
