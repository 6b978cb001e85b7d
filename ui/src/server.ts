// The "Your server" section of the status window: the server's safety checklist, the
// progress of setting it up (with a safe Cancel), support access for a helper, delete,
// and adding a server ("Connect a server I have" / "Create a server at Hetzner").
// State arrives as events (`server`, `server_checks`, `server_removed`): no polling.

import {
  type ApiError,
  type AssistantInfo,
  type BackendEvent,
  type Check,
  type CloudOptions,
  type HetznerServerType,
  type ScannedHost,
  type ServerInfo,
  type ServerJob,
  type SupportGrant,
  type TailnetInfo,
  assistantUse,
  cancelServerJob,
  cloudDeploy,
  cloudOptions,
  cloudTokenSave,
  serverConnect,
  serverDelete,
  serverPosture,
  serverProvision,
  serverTailnetJoin,
  tailnetUseEmbedded,
  serverScan,
  servers as listServers,
  supportIssue,
  supportList,
  supportRevoke,
  tailnetCheck,
  tailnetKeyForget,
  tailnetKeySave,
  tailnetView,
  toApiError,
} from "./api";
import { type Action, byId, errorPanel, formatDate, formatTime, h, icon, type IconName, timeAgo } from "./ui";

const root = byId("server-body");
const summaryEl = byId("server-summary");

let list: ServerInfo[] = [];
const grants = new Map<string, SupportGrant[]>();
/** What the person is doing in this section right now (forms keep their own state). */
let mode: "view" | "connect" | "cloud" = "view";
/** A per-server message (error or result) shown above its checklist. */
const notes = new Map<string, HTMLElement>();
/** Where a just-issued support key is shown: kept across re-renders (it is shown once). */
const keyBoxes = new Map<string, HTMLElement>();
/** Which servers' "Support access" is unfolded. */
const supportOpen = new Set<string>();
/** Which servers' "Details" is unfolded, and which show the delete question: kept across
 * re-renders (progress events, the minute timer), so a question being read stays put. */
const detailsOpen = new Set<string>();
const confirmingDelete = new Set<string>();
/** Servers whose job was asked to stop: "Stopping after this step…" until it has. */
const stopping = new Set<string>();
/** What the last delete removed: shown until the person adds a server. */
let removedNote: HTMLElement | undefined;

// ---------- helpers ----------

function fixFor(err: ApiError, retry: () => void | Promise<void>): Action {
  if (err.code === "cloud_token_missing") return { label: "Add the token", run: () => openCloud(), primary: true };
  return { label: "Try again", run: retry, primary: true };
}

/** Run `fn` from a button, with a busy label; errors go to `slot` with message + hint
 * and the likely fix (`fix` may name a better one than "Try again" for some errors). */
async function run(
  btn: HTMLButtonElement,
  busy: string,
  slot: HTMLElement,
  fn: () => Promise<void>,
  fix?: (err: ApiError) => Action | undefined,
) {
  slot.replaceChildren();
  const old = btn.textContent;
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  btn.textContent = busy;
  try {
    await fn();
  } catch (e) {
    const err = toApiError(e);
    const action = fix?.(err) ?? fixFor(err, () => run(btn, busy, slot, fn, fix));
    slot.replaceChildren(errorPanel(err, [action], { compact: true }));
  } finally {
    btn.disabled = false;
    btn.removeAttribute("aria-busy");
    btn.textContent = old;
  }
}

function button(label: string, cls: string, attrs: Record<string, string> = {}): HTMLButtonElement {
  return h("button", { type: "button", class: `btn ${cls}`, text: label, ...attrs });
}

function field(label: string, input: HTMLElement, help?: string): HTMLElement {
  return h(
    "div",
    { class: "field" },
    h("label", { for: input.id, text: label }),
    input,
    help ? h("p", { class: "help", text: help }) : null,
  );
}

const money = (amount: string) => {
  const n = Number(amount);
  if (!Number.isFinite(n)) return amount;
  return new Intl.NumberFormat(undefined, { style: "currency", currency: "EUR" }).format(n);
};

/** What a running job is doing, in a few words (the server's status line). */
const JOB_BUSY: Record<ServerJob["kind"], string> = {
  deploy: "Creating the server",
  provision: "Setting up",
  tailnet: "Joining your tailnet",
};

/** The progress box's title for a job. */
const JOB_TITLE: Record<ServerJob["kind"], string> = {
  deploy: "Creating your server at Hetzner",
  provision: "Setting up your server",
  tailnet: "Putting your server on your tailnet",
};

export function serverTone(s: ServerInfo): { tone: "ok" | "busy" | "warn" | "bad" | "idle"; label: string } {
  const j = s.job;
  if (j?.state === "running")
    // The step being worked on, as the progress box says it ("Step N of M").
    return { tone: "busy", label: `${JOB_BUSY[j.kind]}… ${Math.min(j.index + 1, j.total)}/${j.total}` };
  if (j?.state === "failed") return { tone: "bad", label: "Needs attention" };
  if (j?.state === "cancelled") return { tone: "warn", label: "Setup paused" };
  if (s.checks.some((c) => c.status === "fail")) return { tone: "warn", label: "Needs attention" };
  if (!s.checks.length) return { tone: "idle", label: "Not checked yet" };
  return { tone: "ok", label: "Safe" };
}

const TONE_ICON: Record<string, IconName> = { ok: "ok", busy: "busy", warn: "warn", bad: "bad", idle: "idle" };
const CHECK_ICON: Record<Check["status"], IconName> = { pass: "ok", fail: "bad", pending: "pending" };
const CHECK_WORD: Record<Check["status"], string> = { pass: "Passed", fail: "Failed", pending: "Waiting" };

// ---------- rendering ----------

function render() {
  if (mode === "connect") return renderConnect();
  if (mode === "cloud") return void renderCloud();
  const s = list[0];
  summaryEl.textContent = s ? serverTone(s).label : "";
  if (!s) {
    root.replaceChildren(
      ...(removedNote ? [removedNote] : []),
      h(
        "p",
        { class: "muted" },
        "Your assistant can also live on a server of your own, so it's there even when this computer is off. Clawkeeper sets it up safely and keeps checking it.",
      ),
      addButtons(),
    );
    return;
  }
  root.replaceChildren(...(removedNote ? [removedNote] : []), ...list.map(renderServer), addButtons(true));
}

function addButtons(quiet = false): HTMLElement {
  const connect = button("Connect a server I have", quiet ? "btn-quiet btn-small" : "btn-primary", {
    id: "server-add-connect",
    "data-testid": "server-add-connect",
  });
  const cloud = button("Create a server at Hetzner", quiet ? "btn-quiet btn-small" : "btn-secondary", {
    id: "server-add-cloud",
    "data-testid": "server-add-cloud",
  });
  connect.addEventListener("click", () => openConnect());
  cloud.addEventListener("click", () => openCloud());
  return h("div", { class: "row server-add" }, connect, cloud);
}

function renderServer(s: ServerInfo): HTMLElement {
  const tone = serverTone(s);
  const where = s.address ? `${s.user ?? "root"}@${s.address}${s.port && s.port !== 22 ? `:${s.port}` : ""}` : "Being created…";
  const head = h(
    "div",
    { class: "server-head", "data-tone": tone.tone },
    icon(TONE_ICON[tone.tone], "icon status-icon"),
    h(
      "div",
      { class: "item-main" },
      h("strong", { text: s.name }),
      " ",
      h("span", { class: "muted", text: s.kind === "cloud" ? `at Hetzner · ${where}` : where }),
    ),
    h("span", { class: "server-state", "data-testid": "server-state", text: tone.label }),
  );
  const note = notes.get(s.id) ?? h("div", { class: "error-slot" });
  notes.set(s.id, note);
  return h(
    "div",
    { class: "server", "data-server-id": s.id },
    head,
    note,
    s.job ? renderJob(s, s.job) : null,
    renderChatPlace(s),
    renderChecks(s),
    renderTailnet(s),
    renderSupport(s),
    renderDetails(s),
  );
}

// ---------- which assistant chat goes to ----------

/** The server chat goes to (undefined: this computer), as the status page last heard. */
let chatServer: string | undefined;
/** How chat reaches it (tailnet / SSH) and why, as the status page last heard. */
let chatWay: AssistantInfo | undefined;

export function setChatPlace(a: AssistantInfo) {
  const next = a.place === "server" ? a.serverId : undefined;
  if (next === chatServer && a.path === chatWay?.path && a.pathNote === chatWay?.pathNote) return;
  chatServer = next;
  chatWay = a;
  if (mode === "view") render();
}

/** "Chat goes to this server", or a button to make it so once the server is set up. */
function renderChatPlace(s: ServerInfo): HTMLElement | null {
  if (chatServer === s.id)
    return h(
      "p",
      { class: "muted small", id: "server-chat-place", "data-testid": "server-chat-place", "data-path": chatWay?.path ?? "ssh" },
      `Chat goes to the assistant on this server. ${chatWay?.pathNote ?? "Chat goes through a private SSH tunnel to your server."}`,
    );
  const setUp = s.checks.length > 0 && (!s.job || s.job.state === "succeeded");
  if (!setUp) return null;
  const slot = h("div", { class: "error-slot" });
  const use = button("Chat with this server's assistant", "btn-secondary btn-small", {
    id: "server-chat-use",
    "data-testid": "server-chat-use",
  });
  use.addEventListener("click", () => run(use, "Switching…", slot, () => assistantUse(s.id).then(() => undefined)));
  return h("div", { class: "row" }, use, slot);
}

function renderJob(s: ServerInfo, j: ServerJob): HTMLElement | null {
  if (j.state === "succeeded") return null;
  const pct = j.total ? Math.round((j.index / j.total) * 100) : 0;
  const what = JOB_TITLE[j.kind];
  const title = j.state === "running" ? what : j.state === "cancelled" ? `${what}: paused` : `${what}: stopped`;
  const box = h("div", { class: "server-job", id: "server-job", "data-testid": "server-job", "data-state": j.state });
  const bar = h("progress", { id: "server-progress", max: "100", value: String(pct), "aria-label": title });
  box.append(h("h3", { class: "server-sub", text: title }));
  if (j.state === "running")
    box.append(h("p", { id: "server-step", "data-testid": "server-step" }, h("strong", { text: j.step }), j.detail ? ` — ${j.detail}` : ""));
  box.append(
    h(
      "div",
      { class: "progress-wrap" },
      bar,
      h(
        "div",
        { class: "progress-meta" },
        h("span", {
          text: j.state === "running" ? `Step ${Math.min(j.index + 1, j.total)} of ${j.total}` : `${j.index} of ${j.total} steps done`,
        }),
        h("span", { text: `${pct} %` }),
      ),
    ),
  );
  if (j.state === "running") {
    const asked = stopping.has(s.id);
    const cancel = button(asked ? "Stopping after this step…" : "Cancel", "btn-secondary btn-small", {
      id: "server-cancel",
      "data-testid": "server-cancel",
    });
    cancel.disabled = asked;
    const slot = h("div", { class: "error-slot" });
    cancel.addEventListener("click", () =>
      run(cancel, "Stopping after this step…", slot, async () => {
        // Before asking: the job may stop (and say so) before the answer comes back.
        stopping.add(s.id);
        try {
          await cancelServerJob();
        } catch (e) {
          stopping.delete(s.id);
          throw e;
        }
        if (mode === "view") render();
      }),
    );
    box.append(
      h(
        "div",
        { class: "row" },
        cancel,
        h("span", { class: "muted small", text: "Cancel is safe: Clawkeeper stops after the current step, and Continue picks up where it stopped." }),
      ),
      slot,
    );
  } else {
    const slot = h("div", { class: "error-slot" });
    // The backend picks up where it stopped: creating the server, or setting it up, or
    // joining the tailnet (each run checks what is done already).
    const retry = () => {
      stopping.delete(s.id);
      return j.kind === "tailnet" ? serverTailnetJoin(s.id) : serverProvision(s.id);
    };
    const again = button(j.state === "cancelled" ? "Continue" : "Try again", "btn-primary btn-small", { id: "server-retry" });
    again.addEventListener("click", () => run(again, "Starting…", slot, retry));
    if (j.error && j.state === "failed") box.append(errorPanel(j.error, [], { compact: true }));
    if (j.state === "cancelled")
      box.append(h("p", { class: "muted small", text: "Stopped safely between two steps. Continue picks up where it stopped." }));
    box.append(h("div", { class: "row" }, again), slot);
  }
  return box;
}

function renderChecks(s: ServerInfo): HTMLElement {
  const fails = s.checks.filter((c) => c.status === "fail").length;
  const summary = !s.checks.length
    ? "Not checked yet"
    : fails
      ? `${fails} need${fails === 1 ? "s" : ""} attention`
      : `All ${s.checks.length} passed`;
  const items = s.checks.length
    ? s.checks.map((c) =>
        h(
          "li",
          { class: "check", "data-status": c.status, "data-check-id": c.id },
          icon(CHECK_ICON[c.status]),
          h("div", { class: "item-main" }, h("div", { text: c.label }), c.detail ? h("div", { class: "item-sub", text: c.detail }) : null),
          h("span", { class: "check-state", text: CHECK_WORD[c.status] }),
        ),
      )
    : [h("li", { class: "empty", text: "The checks run when the server is set up, or when you press Check again." })];
  const slot = h("div", { class: "error-slot" });
  const busy = s.job?.state === "running";
  const again = button("Check again", "btn-secondary btn-small", { id: "server-recheck", "data-testid": "server-recheck" });
  const fix = button("Let OpenClaw fix what it can", "btn-quiet btn-small", { id: "server-fix", "data-testid": "server-fix" });
  again.disabled = busy;
  fix.disabled = busy;
  again.addEventListener("click", () => run(again, "Checking…", slot, () => serverPosture(s.id, false).then(() => undefined)));
  fix.addEventListener("click", () => run(fix, "Fixing…", slot, () => serverPosture(s.id, true).then(() => undefined)));
  return h(
    "div",
    { class: "server-block" },
    h(
      "div",
      { class: "section-title" },
      h("h3", { class: "server-sub", text: "Safety checks" }),
      h(
        "span",
        { class: "muted", id: "server-checks-summary" },
        summary,
        s.checkedAt
          ? h("time", { datetime: s.checkedAt, title: new Date(s.checkedAt).toLocaleString(), text: ` · checked ${timeAgo(s.checkedAt)}` })
          : "",
      ),
    ),
    h("ul", { class: "list", id: "server-checks", "data-testid": "server-checks", "data-checked-at": s.checkedAt ?? "" }, ...items),
    h("div", { class: "row server-actions" }, again, fix),
    slot,
  );
}

// ---------- private network (Tailscale) ----------

/** What the status page knows of each server's tailnet section (never the key itself). */
const tailnetInfo = new Map<string, TailnetInfo>();
/** Which servers' "Private network" is unfolded (kept across re-renders). */
const tailnetOpen = new Set<string>();
const tailnetLoading = new Set<string>();
/** Why the last "Save and check" failed: shown once, with fresh empty fields. */
const tailnetErrors = new Map<string, ApiError>();

async function loadTailnet(id: string, check = false) {
  tailnetLoading.add(id);
  try {
    tailnetInfo.set(id, check ? await tailnetCheck(id) : await tailnetView(id));
  } finally {
    tailnetLoading.delete(id);
  }
  if (mode === "view") render();
}

function tailnetComputerLine(t: TailnetInfo): string {
  const c = t.thisComputer;
  if (!c) return "Tailscale isn't running on this computer, so chat uses a private SSH connection to your server.";
  switch (c.state) {
    case "connected":
      return `This computer is on your tailnet as ${c.node}.`;
    case "needs_login":
      return "Tailscale on this computer needs you to log in (open the Tailscale app). Until then chat uses a private SSH connection.";
    case "starting":
      return "Tailscale on this computer is starting.";
    case "stopped":
      return "Tailscale is switched off on this computer, so chat uses a private SSH connection. Switch it on in the Tailscale app.";
    default:
      return "Tailscale isn't running on this computer, so chat uses a private SSH connection to your server.";
  }
}

function renderTailnetDevice(s: ServerInfo, t: TailnetInfo): HTMLElement {
  const d = t.device;
  if (!d) {
    const line = h("p", { class: "muted small", id: "tailnet-device", "data-testid": "tailnet-device" }, "Your server isn't on your tailnet yet.");
    if (t.tagOwnersOk !== true) return line;
    const slot = h("div", { class: "error-slot" });
    const join = button("Put my server on my tailnet", "btn-primary btn-small", { id: "tailnet-join", "data-testid": "tailnet-join" });
    join.disabled = s.job?.state === "running";
    join.addEventListener("click", () => run(join, "Starting…", slot, () => serverTailnetJoin(s.id)));
    return h(
      "div",
      { id: "tailnet-join-box" },
      line,
      h(
        "p",
        { class: "muted small" },
        "Clawkeeper installs Tailscale on the server from Tailscale's own signed packages, joins it with a key that works once, and offers the assistant on your tailnet only. It stays off the public internet.",
      ),
      h("div", { class: "row" }, join),
      slot,
    );
  }
  if (!d.found)
    return h(
      "p",
      { class: "muted small", id: "tailnet-device", "data-testid": "tailnet-device" },
      `Your server joined as ${d.hostname}, but Tailscale doesn't list it right now. If it was removed in the admin console, set the server up again.`,
    );
  const expiry = d.keyExpiry ? `key expires ${formatDate(d.keyExpiry)}` : "key never expires";
  const seen = d.online ? "online now" : d.lastSeen ? `last seen ${timeAgo(d.lastSeen)}` : "not seen yet";
  return h(
    "div",
    { id: "tailnet-device", "data-testid": "tailnet-device" },
    h(
      "p",
      { class: "small" },
      h("strong", { text: d.name }),
      " ",
      h("span", { class: "muted", text: [d.address, seen, expiry].filter(Boolean).join(" · ") }),
    ),
    d.dnsName ? h("p", { class: "muted small", text: `Its private name: ${d.dnsName}` }) : null,
  );
}

/** The policy check: passed, or the snippet to paste and where, with "Check again". */
function renderTagCheck(s: ServerInfo, t: TailnetInfo, slot: HTMLElement): HTMLElement | null {
  if (t.tagOwnersOk === true)
    return h(
      "p",
      { class: "small", id: "tailnet-tag-ok", "data-testid": "tailnet-tag-ok" },
      icon("ok", "icon"),
      " Your tailnet's access rules let your server join as Clawkeeper's tagged device.",
    );
  const again = button(t.tagOwnersOk === false ? "Check again" : "Check now", "btn-secondary btn-small", {
    id: "tailnet-check",
    "data-testid": "tailnet-check",
  });
  again.addEventListener("click", () => run(again, "Checking…", slot, () => loadTailnet(s.id, true)));
  if (t.tagOwnersOk === undefined) return h("div", { class: "row" }, again);
  const snippet = h("textarea", {
    id: "tailnet-snippet",
    class: "input key-once",
    readonly: true,
    rows: "2",
    spellcheck: "false",
    "aria-label": "The line to add to your tailnet's access rules",
    "data-testid": "tailnet-snippet",
  });
  snippet.value = t.snippet;
  const copied = h("span", { class: "muted small", role: "status" });
  const copy = button("Copy", "btn-primary btn-small", { id: "tailnet-snippet-copy" });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(snippet.value);
      copied.textContent = "Copied.";
    } catch {
      snippet.select();
      copied.textContent = "Select the text and copy it (Ctrl+C).";
    }
  });
  return h(
    "div",
    { class: "key-once-panel", id: "tailnet-tag-missing", "data-testid": "tailnet-tag-missing", role: "alert" },
    icon("warn", "icon"),
    h(
      "div",
      { class: "item-main" },
      h("p", { class: "small", text: t.explanation }),
      snippet,
      h("p", { class: "muted small", text: "Once you've saved it on the Access controls page, press Check again." }),
      h("div", { class: "row" }, copy, again, copied),
    ),
  );
}

function renderTailnet(s: ServerInfo): HTMLElement {
  const slot = h("div", { class: "error-slot", id: "tailnet-error" });
  const t = tailnetInfo.get(s.id);
  const body: (HTMLElement | null)[] = [
    h(
      "p",
      { class: "muted small" },
      "Tailscale can link this computer and your server in a private network that only your own devices can join. When it's on, chat goes over it; otherwise through a private SSH connection.",
    ),
  ];
  if (!t) {
    body.push(h("p", { class: "muted small", text: "Loading…" }));
    if (!tailnetLoading.has(s.id)) void loadTailnet(s.id).catch((e) => slot.replaceChildren(errorPanel(toApiError(e), [], { compact: true })));
  } else if (!t.keySaved) {
    const secret = h("input", {
      id: "tailnet-secret",
      class: "input",
      type: "password",
      autocomplete: "off",
      "data-testid": "tailnet-secret",
    });
    const clientId = h("input", {
      id: "tailnet-client-id",
      class: "input",
      type: "password",
      autocomplete: "off",
      "data-testid": "tailnet-client-id",
    });
    const save = button("Save and check", "btn-primary btn-small", { id: "tailnet-save", "data-testid": "tailnet-save" });
    save.addEventListener("click", async () => {
      const v = secret.value;
      const c = clientId.value.trim();
      // Out of the page at once: the key only lives on in the keychain.
      secret.value = "";
      clientId.value = "";
      secret.remove();
      clientId.remove();
      save.disabled = true;
      save.setAttribute("aria-busy", "true");
      save.textContent = "Checking with Tailscale…";
      try {
        tailnetInfo.set(s.id, await tailnetKeySave(v, c || null, s.id));
      } catch (e) {
        tailnetErrors.set(s.id, toApiError(e));
      }
      tailnetOpen.add(s.id);
      if (mode === "view") render();
    });
    body.push(
      field(
        "API access token or OAuth client secret",
        secret,
        "In the Tailscale admin console: Settings → Keys → Generate access token (starts with tskey-api-), or Settings → OAuth clients (tskey-client-). It is kept in your keychain and never shown again.",
      ),
      field("OAuth client ID (only for an OAuth client)", clientId),
      h("div", { class: "row" }, save),
    );
  } else {
    const forget = button("Remove the key", "btn-quiet btn-small", { id: "tailnet-forget", "data-testid": "tailnet-forget" });
    forget.addEventListener("click", () =>
      run(forget, "Removing…", slot, async () => {
        await tailnetKeyForget();
        await loadTailnet(s.id);
      }),
    );
    body.push(
      h(
        "div",
        { class: "row" },
        h(
          "p",
          { class: "small", id: "tailnet-key-saved", "data-testid": "tailnet-key-saved" },
          icon("key", "icon"),
          ` Tailscale ${t.keyKind === "oauth_client" ? "OAuth client" : "access token"} saved in your keychain ✓`,
        ),
        forget,
      ),
      renderTagCheck(s, t, slot),
      renderTailnetDevice(s, t),
    );
  }
  if (t) body.push(h("p", { class: "muted small", id: "tailnet-computer", text: tailnetComputerLine(t) }));
  if (t?.keySaved && (!t.thisComputer || t.thisComputer.state === "unavailable")) {
    // No Tailscale on this computer: Clawkeeper's own node, labelled as what it is.
    const own = button("Use Clawkeeper's own Tailscale node", "btn-secondary btn-small", {
      id: "tailnet-embedded",
      "data-testid": "tailnet-embedded",
    });
    own.addEventListener("click", () =>
      run(own, "Joining your tailnet…", slot, async () => {
        tailnetInfo.set(s.id, await tailnetUseEmbedded());
        if (mode === "view") render();
      }),
    );
    body.push(
      h(
        "div",
        { class: "row" },
        own,
        h("span", { class: "badge", text: "experimental" }),
        h("span", {
          class: "muted small",
          text: "Without the Tailscale app, Clawkeeper can join this computer to your tailnet itself. It is new and marked experimental by its makers; the Tailscale app is the safer choice.",
        }),
      ),
    );
  }
  if (t && chatServer === s.id && chatWay)
    body.push(h("p", { class: "small", id: "tailnet-path", "data-testid": "tailnet-path", "data-path": chatWay.path, text: chatWay.pathNote }));
  const failed = tailnetErrors.get(s.id) ?? t?.error;
  tailnetErrors.delete(s.id);
  if (failed) slot.replaceChildren(errorPanel(failed, [], { compact: true }));
  const details = h(
    "details",
    { class: "disclosure server-block", id: "tailnet", open: tailnetOpen.has(s.id) || undefined },
    h("summary", { text: "Private network (Tailscale)" }),
    ...body,
    slot,
  );
  details.addEventListener("toggle", () => (details.open ? tailnetOpen.add(s.id) : tailnetOpen.delete(s.id)));
  return details;
}

// ---------- support access ----------

function renderSupport(s: ServerInfo): HTMLElement {
  const slot = h("div", { class: "error-slot" });
  const keyBox = keyBoxes.get(s.id) ?? h("div", { id: "support-key-box" });
  keyBoxes.set(s.id, keyBox);
  const hours = h(
    "select",
    { id: "support-hours", class: "input", "data-testid": "support-hours" },
    ...[
      [1, "1 hour"],
      [4, "4 hours"],
      [24, "1 day"],
      [72, "3 days"],
      [168, "1 week"],
    ].map(([v, t]) => h("option", { value: String(v), text: String(t), selected: v === 4 })),
  );
  const note = h("input", {
    id: "support-note",
    class: "input",
    type: "text",
    maxlength: "120",
    placeholder: "Who is it for? (for your records)",
    "data-testid": "support-note",
  });
  const issue = button("Give a helper access", "btn-secondary btn-small", { id: "support-issue", "data-testid": "support-issue" });
  issue.addEventListener("click", () =>
    run(issue, "Making a key…", slot, async () => {
      const issued = await supportIssue(s.id, Number(hours.value), note.value);
      note.value = "";
      showKeyOnce(keyBox, issued.privateKey, issued.grant);
      issued.privateKey = "";
      await loadGrants(s.id);
    }),
  );
  const listEl = h("ul", { class: "list", id: "support-list", "data-testid": "support-list" });
  fillGrants(listEl, s.id);
  const details = h(
    "details",
    { class: "disclosure server-block", id: "support", open: supportOpen.has(s.id) || keyBox.childElementCount > 0 || undefined },
    h("summary", { text: "Support access" }),
    h(
      "p",
      { class: "muted small" },
      "If someone helps you with the server, give them a key that works only for a few hours and then removes itself. You can take it back any time.",
    ),
    h("div", { class: "row support-form" }, field("Valid for", hours), field("Note", note), issue),
    slot,
    keyBox,
    listEl,
  );
  details.addEventListener("toggle", () => (details.open ? supportOpen.add(s.id) : supportOpen.delete(s.id)));
  return details;
}

/** The helper's private key, shown once in a copyable box; gone when hidden or the window closes. */
function showKeyOnce(box: HTMLElement, key: string, grant: SupportGrant) {
  const area = h("textarea", {
    id: "support-key",
    class: "input key-once",
    readonly: true,
    rows: "8",
    spellcheck: "false",
    "aria-label": "The helper's private key",
    "data-testid": "support-key",
  });
  area.value = key;
  const copied = h("span", { class: "muted small", role: "status" });
  const copy = button("Copy", "btn-primary btn-small", { id: "support-key-copy" });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(area.value);
      copied.textContent = "Copied.";
    } catch {
      area.select();
      copied.textContent = "Select the text and copy it (Ctrl+C).";
    }
  });
  const done = button("I've passed it on — hide it", "btn-secondary btn-small", { id: "support-key-hide", "data-testid": "support-key-hide" });
  done.addEventListener("click", () => {
    area.value = "";
    box.replaceChildren();
  });
  box.replaceChildren(
    h(
      "div",
      { class: "key-once-panel", role: "alert" },
      icon("key", "icon"),
      h(
        "div",
        { class: "item-main" },
        h("p", {}, h("strong", { text: "This key is shown only once." }), " Send it to your helper privately (not by email in plain text). Anyone who has it can log in to your server until ", h("strong", { text: new Date(grant.expiresAt).toLocaleString() }), "."),
        area,
        h("div", { class: "row" }, copy, done, copied),
      ),
    ),
  );
  area.focus();
  area.select();
}

/** Servers whose support keys are being read from the server right now. */
const grantsLoading = new Set<string>();

async function loadGrants(id: string) {
  grantsLoading.add(id);
  try {
    grants.set(id, await supportList(id));
  } finally {
    grantsLoading.delete(id);
  }
  const el = document.getElementById("support-list");
  if (el) fillGrants(el, id);
}

function fillGrants(el: HTMLElement, id: string) {
  const gs = grants.get(id);
  if (!gs) {
    el.replaceChildren(h("li", { class: "empty", text: "Loading support keys…" }));
    return;
  }
  if (!gs.length) {
    el.replaceChildren(h("li", { class: "empty", text: "No support keys yet." }));
    return;
  }
  const word = { active: "Active", expired: "Expired", revoked: "Revoked" } as const;
  el.replaceChildren(
    ...gs.map((g) => {
      const slot = h("div", { class: "error-slot" });
      let revoke: HTMLButtonElement | null = null;
      if (g.state === "active") {
        const b = button("Revoke", "btn-secondary btn-small", { "data-testid": "support-revoke", "data-grant": g.id });
        b.addEventListener("click", () =>
          run(b, "Revoking…", slot, async () => {
            await supportRevoke(id, g.id);
            await loadGrants(id);
          }),
        );
        revoke = b;
      }
      const until =
        g.state === "active"
          ? `works until ${new Date(g.expiresAt).toLocaleString()}`
          : g.state === "revoked"
            ? `revoked ${timeAgo(g.revokedAt ?? undefined)}`
            : `expired ${timeAgo(g.expiresAt)}`;
      return h(
        "li",
        { class: "grant", "data-grant": g.id, "data-state": g.state },
        icon(g.state === "active" ? "key" : "idle"),
        h(
          "div",
          { class: "item-main" },
          h("div", { text: `${word[g.state]}${g.note ? ` — ${g.note}` : ""}` }),
          h(
            "div",
            { class: "item-sub", text: `${until}${g.onServer === false && g.state === "active" ? " · not found on the server" : ""} · ${g.fingerprint}` },
          ),
          slot,
        ),
        revoke,
      );
    }),
  );
}

// ---------- details and delete ----------

function renderDetails(s: ServerInfo): HTMLElement {
  const rows: [string, string | undefined][] = [
    ["Address", s.address],
    ["Port", s.port ? String(s.port) : undefined],
    ["Logs in as", s.user],
    ["Server identity", s.hostFingerprint ? `${s.hostFingerprint} (${s.hostKeyAlgorithm ?? ""})` : undefined],
    ["Identity confirmed", s.pinnedAt ? new Date(s.pinnedAt).toLocaleString() : undefined],
    ["Clawkeeper's key", s.appKeyFingerprint],
  ];
  const slot = h("div", { class: "error-slot" });
  const confirmBox = h("div", {});
  const details = h(
    "details",
    { class: "disclosure", id: "server-details", open: detailsOpen.has(s.id) || undefined },
    h("summary", { text: "Details" }),
  );
  details.addEventListener("toggle", () => (details.open ? detailsOpen.add(s.id) : detailsOpen.delete(s.id)));
  const del = button(s.kind === "cloud" ? "Delete this server…" : "Remove this server…", "btn-quiet btn-small", {
    id: "server-delete",
    "data-testid": "server-delete",
  });
  const ask = (focus: boolean) => {
    confirmingDelete.add(s.id);
    const what =
      s.kind === "cloud"
        ? [
            "At Hetzner: the server with everything on it (your assistant, its conversations and settings), its firewall and Clawkeeper's key. Billing for it stops.",
            "On this computer: the server's identity and Clawkeeper's key for it in your keychain.",
          ]
        : [
            "On this computer: the server's confirmed identity, Clawkeeper's key for it and its assistant's password in your keychain.",
            "On the server: support keys that still work, and Clawkeeper's own key (so Clawkeeper can no longer log in there).",
            "The server itself and everything on it stay as they are (the assistant keeps running there).",
          ];
    const yes = button(s.kind === "cloud" ? "Delete for good" : "Remove it", "btn-danger btn-small", {
      id: "server-delete-confirm",
      "data-testid": "server-delete-confirm",
    });
    const no = button("Keep it", "btn-secondary btn-small", { id: "server-delete-cancel" });
    no.addEventListener("click", () => {
      confirmingDelete.delete(s.id);
      confirmBox.replaceChildren();
    });
    yes.addEventListener("click", () =>
      run(yes, "Deleting…", slot, async () => {
        const r = await serverDelete(s.id);
        confirmingDelete.delete(s.id);
        detailsOpen.delete(s.id);
        removedNote = h(
          "div",
          { class: "notice ok", role: "status", id: "server-removed", "data-testid": "server-removed" },
          icon("ok"),
          h("div", {}, h("p", { text: `${s.name} was ${s.kind === "cloud" ? "deleted" : "removed"}. Removed:` }), h("ul", {}, ...r.removed.map((x) => h("li", { text: x })))),
        );
        await refreshServers();
        render();
      }),
    );
    confirmBox.replaceChildren(
      h(
        "div",
        { class: "confirm", role: "alertdialog", "aria-labelledby": "delete-q" },
        h("p", { id: "delete-q" }, h("strong", { text: s.kind === "cloud" ? "Delete this server for good?" : "Remove this server from Clawkeeper?" })),
        h("p", { text: "This removes:" }),
        h("ul", { id: "delete-what" }, ...what.map((w) => h("li", { text: w }))),
        h("div", { class: "row" }, yes, no),
      ),
    );
    if (focus) yes.focus();
  };
  del.addEventListener("click", () => ask(true));
  if (confirmingDelete.has(s.id)) ask(false);
  details.append(
    h("dl", { class: "kv" }, ...rows.filter(([, v]) => v).flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])),
    h("div", { class: "row" }, del),
    confirmBox,
    slot,
  );
  return details;
}

// ---------- connect a server I have ----------

let connectState: { step: "address" } | { step: "confirm"; host: string; port: number; user: string; name: string; scanned: ScannedHost } = {
  step: "address",
};

function backToView() {
  mode = "view";
  render();
}

function openConnect() {
  removedNote = undefined;
  mode = "connect";
  connectState = { step: "address" };
  render();
}

function renderConnect() {
  summaryEl.textContent = "";
  const slot = h("div", { class: "error-slot", id: "connect-error" });
  const cancel = button("Back", "btn-quiet", { id: "connect-back" });
  cancel.addEventListener("click", backToView);
  if (connectState.step === "address") {
    const host = h("input", { id: "connect-host", class: "input", type: "text", autocomplete: "off", placeholder: "203.0.113.7", "data-testid": "connect-host" });
    const port = h("input", { id: "connect-port", class: "input", type: "number", min: "1", max: "65535", value: "22" });
    const user = h("input", { id: "connect-user", class: "input", type: "text", value: "root", autocomplete: "off" });
    const name = h("input", { id: "connect-name", class: "input", type: "text", value: "My server" });
    const next = button("Check the server", "btn-primary", { id: "connect-scan", "data-testid": "connect-scan" });
    const go = () =>
      run(next, "Asking the server…", slot, async () => {
        const p = Number(port.value) || 22;
        const scanned = await serverScan(host.value.trim(), p, user.value.trim());
        connectState = { step: "confirm", host: host.value.trim(), port: p, user: user.value.trim(), name: name.value.trim(), scanned };
        render();
      });
    next.addEventListener("click", () => void go());
    root.replaceChildren(
      h("h3", { class: "server-sub", text: "Connect a server I have" }),
      h("p", { class: "muted small", text: "A Debian or Ubuntu server you rent or run. Clawkeeper logs in once with your key or password, puts its own key there, and sets everything up." }),
      field("Address", host, "The IP address or name your hosting provider shows."),
      h("div", { class: "row" }, field("User", user), field("SSH port", port)),
      field("A name for it", name),
      slot,
      h("div", { class: "row" }, next, cancel),
    );
    host.focus();
    return;
  }
  const c = connectState;
  const keyFile = h("input", { id: "connect-keyfile", class: "input", type: "file", "data-testid": "connect-keyfile" });
  const passphrase = h("input", { id: "connect-passphrase", class: "input", type: "password", autocomplete: "off" });
  const password = h("input", { id: "connect-password", class: "input", type: "password", autocomplete: "off", "data-testid": "connect-password" });
  const yes = button("Yes, it matches — connect", "btn-primary", { id: "connect-confirm", "data-testid": "connect-confirm" });
  const back = button("No, stop here", "btn-secondary", { id: "connect-no" });
  back.addEventListener("click", backToView);
  // A refused login: the fields were cleared, so "Try again" would only ask for them.
  let triedKey = false;
  const fixLogin = (err: ApiError): Action | undefined =>
    ["host_auth_rejected", "ssh_key_invalid", "ssh_key_passphrase", "login_missing"].includes(err.code)
      ? {
          label: triedKey ? "Pick the key again" : "Type the password again",
          run: () => (triedKey ? keyFile : password).focus(),
          primary: true,
        }
      : undefined;
  yes.addEventListener("click", () =>
    run(yes, "Connecting…", slot, async () => {
      let keyText: string | undefined;
      const f = keyFile.files?.[0];
      triedKey = !!f;
      if (f) {
        if (f.size > 64 * 1024) throw { code: "ssh_key_invalid", message: "That file is too big to be a private SSH key.", hint: "Pick the private key file (not the .pub one)." };
        keyText = await f.text();
      }
      if (!keyText && !password.value)
        throw { code: "login_missing", message: "Say how Clawkeeper should log in the first time.", hint: "Pick your private key file, or type the server's one-time password." };
      try {
        const s = await serverConnect({
          host: c.host,
          port: c.port,
          user: c.user,
          name: c.name,
          confirmedFingerprint: c.scanned.fingerprint,
          ...(keyText ? { keyText, ...(passphrase.value ? { passphrase: passphrase.value } : {}) } : { password: password.value }),
        });
        // Added: the section shows it from now on; setting it up is its own job.
        mode = "view";
        try {
          await serverProvision(s.id);
        } catch (e) {
          const err = toApiError(e);
          notes.set(s.id, h("div", { class: "error-slot" }, errorPanel(err, [{ label: "Set it up", run: () => serverProvision(s.id).catch(() => undefined), primary: true }], { compact: true })));
        }
        await refreshServers();
      } finally {
        keyText = undefined;
        password.value = "";
        passphrase.value = "";
        keyFile.value = "";
      }
    }, fixLogin),
  );
  root.replaceChildren(
    h("h3", { class: "server-sub", text: "Is this your server?" }),
    h("p", {}, `The server at ${c.user}@${c.host}${c.port !== 22 ? `:${c.port}` : ""} identifies itself with this fingerprint:`),
    h("p", { class: "fingerprint", id: "connect-fingerprint", "data-testid": "connect-fingerprint" }, h("code", { text: c.scanned.fingerprint }), ` (${c.scanned.algorithm})`),
    h("p", { class: "muted small", text: "Compare it with the one your hosting provider shows for this server. Nothing has been sent to the server yet." }),
    h(
      "fieldset",
      { class: "choices" },
      h("legend", { text: "How should Clawkeeper log in the first time?" }),
      field("Your private key file", keyFile, "Read on this computer only; a copy is kept in your keychain as a way back in."),
      field("Its passphrase, if it has one", passphrase),
      h("p", { class: "muted small", text: "— or —" }),
      field("A one-time password", password, "Used once and never stored. Clawkeeper switches password logins off afterwards."),
    ),
    slot,
    h("div", { class: "row" }, yes, back),
  );
  yes.focus();
}

// ---------- create a server at Hetzner ----------

let cloud: CloudOptions | undefined;

function openCloud() {
  removedNote = undefined;
  mode = "cloud";
  cloud = undefined;
  render();
}

async function renderCloud() {
  summaryEl.textContent = "";
  const slot = h("div", { class: "error-slot", id: "cloud-error" });
  const back = button("Back", "btn-quiet", { id: "cloud-back" });
  back.addEventListener("click", backToView);
  if (!cloud) {
    root.replaceChildren(h("p", { class: "muted", text: "Asking Hetzner for today's prices…" }));
    try {
      cloud = await cloudOptions();
    } catch (e) {
      const err = toApiError(e);
      if (err.code === "cloud_token_missing" || err.code === "cloud_auth" || err.code === "provider_auth") return renderToken(err);
      root.replaceChildren(errorPanel(err, [{ label: "Try again", run: () => openCloud(), primary: true }]), h("div", { class: "row" }, back));
      return;
    }
  }
  const opts = cloud;
  const location = h(
    "select",
    { id: "cloud-location", class: "input", "data-testid": "cloud-location" },
    ...opts.locations.map((l) => h("option", { value: l.name, text: `${l.city}, ${l.country} (${l.name})` })),
  );
  const typesEl = h("fieldset", { class: "choices", id: "cloud-types" }, h("legend", { text: "Size (price per month, VAT included)" }));
  const name = h("input", { id: "cloud-name", class: "input", type: "text", value: "My server" });
  const create = button("Create the server", "btn-primary", { id: "cloud-create", "data-testid": "cloud-create" });
  const fill = () => {
    const loc = location.value;
    const sold = opts.serverTypes.filter((t) => t.prices.some((p) => p.location === loc));
    typesEl.replaceChildren(
      h("legend", { text: "Size (price per month, VAT included)" }),
      ...sold.map((t: HetznerServerType, i) => {
        const price = t.prices.find((p) => p.location === loc);
        const id = `cloud-type-${t.name}`;
        return h(
          "label",
          { class: "choice", for: id },
          h("input", { type: "radio", name: "cloud-type", id, value: t.name, checked: i === 0 }),
          h("span", { class: "radio-dot", "aria-hidden": "true" }),
          h(
            "span",
            { class: "choice-text" },
            h("span", { class: "choice-title", text: `${t.name.toUpperCase()} — ${price ? money(price.price_monthly.gross) : "?"} a month` }),
            h("span", { class: "choice-desc", text: `${t.cores} processors, ${t.memory} GB memory, ${t.disk} GB disk (${t.architecture})` }),
          ),
        );
      }),
    );
    if (!sold.length) typesEl.append(h("p", { class: "muted", text: "No sizes are sold in this place right now. Pick another." }));
  };
  location.addEventListener("change", fill);
  fill();
  create.addEventListener("click", () =>
    run(create, "Creating…", slot, async () => {
      const type = typesEl.querySelector<HTMLInputElement>("input[name=cloud-type]:checked")?.value;
      if (!type) throw { code: "cloud_type", message: "Pick a size.", hint: "The smallest is plenty for one person." };
      await cloudDeploy(name.value, type, location.value);
      mode = "view";
      await refreshServers();
    }),
  );
  root.replaceChildren(
    h("h3", { class: "server-sub", text: "Create a server at Hetzner" }),
    h("p", { class: "muted small", text: `Prices straight from Hetzner, updated ${formatTime(new Date().toISOString())}. You pay Hetzner directly; delete the server here any time and billing stops.` }),
    field("Where", location),
    typesEl,
    field("A name for it", name),
    slot,
    h("div", { class: "row" }, create, back),
  );
}

function renderToken(err?: ApiError) {
  const slot = h("div", { class: "error-slot", id: "cloud-error" });
  if (err && err.code !== "cloud_token_missing") slot.append(errorPanel(err, [], { compact: true }));
  const token = h("input", { id: "cloud-token", class: "input", type: "password", autocomplete: "off", "data-testid": "cloud-token" });
  const save = button("Save and continue", "btn-primary", { id: "cloud-token-save" });
  const back = button("Back", "btn-quiet");
  back.addEventListener("click", backToView);
  save.addEventListener("click", () =>
    run(save, "Saving…", slot, async () => {
      const t = token.value;
      token.value = "";
      await cloudTokenSave(t);
      openCloud();
    }),
  );
  root.replaceChildren(
    h("h3", { class: "server-sub", text: "Connect your Hetzner account" }),
    h("p", { class: "muted small", text: "In your Hetzner Cloud project: Security → API tokens → Generate API token, with Read & Write. It is kept in your keychain and only used to create and delete your server." }),
    field("API token", token),
    slot,
    h("div", { class: "row" }, save, back),
  );
  token.focus();
}

// ---------- data and events ----------

let inflight: Promise<void> | undefined;

export function refreshServers(): Promise<void> {
  inflight ??= (async () => {
    try {
      list = await listServers();
      if (mode === "view") render();
      // Once per server, and not while it is being set up (that logs in to it anyway;
      // the list is read when the job ends).
      for (const s of list)
        if (s.address && !grants.has(s.id) && !grantsLoading.has(s.id) && s.job?.state !== "running")
          void loadGrants(s.id).catch(() => undefined);
    } catch (e) {
      root.replaceChildren(errorPanel(toApiError(e), [{ label: "Try again", run: refreshServers, primary: true }]));
    } finally {
      inflight = undefined;
    }
  })();
  return inflight;
}

export function onServerEvent(e: BackendEvent) {
  switch (e.type) {
    case "server": {
      const s = list.find((x) => x.id === e.id);
      if (!s) {
        void refreshServers();
        return;
      }
      s.job = e.job;
      if (e.job.state !== "running") {
        stopping.delete(e.id);
        // After joining the tailnet: the device, as Tailscale lists it now.
        if (e.job.kind === "tailnet" && e.job.state === "succeeded") {
          tailnetOpen.add(e.id);
          void loadTailnet(e.id, true).catch(() => undefined);
        }
        void refreshServers();
      } else if (!s.address && e.job.kind === "provision") {
        // A new cloud server was logged in to: its address and identity are known now.
        void refreshServers();
      } else if (mode === "view") render();
      break;
    }
    case "server_checks": {
      const s = list.find((x) => x.id === e.id);
      if (s) {
        s.checks = e.checks;
        s.checkedAt = e.checkedAt;
        if (mode === "view") render();
      }
      break;
    }
    case "server_removed":
      grants.delete(e.id);
      tailnetInfo.delete(e.id);
      detailsOpen.delete(e.id);
      confirmingDelete.delete(e.id);
      void refreshServers();
      break;
    default:
      break;
  }
}

/** `status.html#server-cloud` / `#server-connect` (the setup window leads here when the
 * person chose a server): open that form. The fragment is dropped again, so the same
 * request later is a change the page hears (`hashchange`). */
export function openFromHash() {
  const want = location.hash.slice(1);
  if (want !== "server-cloud" && want !== "server-connect") return;
  history.replaceState(null, "", location.pathname + location.search);
  if (want === "server-cloud") openCloud();
  else openConnect();
  byId("server-section").scrollIntoView({ block: "start" });
}
window.addEventListener("hashchange", openFromHash);

// Keep "checked 2 minutes ago" honest without asking the backend.
window.setInterval(() => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName ?? "");
  if (mode === "view" && list.length && !typing) render();
}, 60_000);
