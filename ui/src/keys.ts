// Status window: "Keys". Every key the assistant depends on — what it is, where it lives,
// how old it is, how it is rotated — with "Rotate" for the keys that rotate in one click,
// "Rotate all", the steps while a rotation runs (from the `rotation` events), and what
// came of it. Only labels, dates and fingerprints ever reach this page, never a key.

import {
  type ApiError,
  type BackendEvent,
  type KeyId,
  type KeyInfo,
  type KeyReminders,
  type ResumeResult,
  type RotateResult,
  type Rotation,
  ROTATION_STEP_LABELS,
  ROTATION_STEPS,
  keyReminders,
  keysInventory,
  openaiAdminSave,
  rotateAll,
  rotateKey,
  rotateKeySignIn,
  rotateKeySignInCancel,
  rotateKeyWith,
  rotationsResume,
  setKeyReminders,
  toApiError,
} from "./api";
import { byId, errorPanel, fixFor, h, icon, type IconName } from "./ui";

// ---------- words ----------

const DAY_MS = 86_400_000;
const startOfDay = (t: number) => {
  const d = new Date(t);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
};

/** "today", "yesterday", "3 days ago", "2 months ago", "over a year ago": days as a person counts them. */
export function daysAgoWords(iso: string, now = Date.now()): string {
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return "";
  const days = Math.max(0, Math.round((startOfDay(now) - startOfDay(t)) / DAY_MS));
  if (days === 0) return "today";
  if (days === 1) return "yesterday";
  if (days < 60) return `${days} days ago`;
  if (days < 365) return `${Math.round(days / 30)} months ago`;
  return days < 730 ? "over a year ago" : `${Math.floor(days / 365)} years ago`;
}

/** "Rotated 3 days ago", "Set today · never rotated", "Never rotated". */
export function ageWords(k: Pick<KeyInfo, "setAt" | "rotatedAt">, now = Date.now()): string {
  if (k.rotatedAt) return `Rotated ${daysAgoWords(k.rotatedAt, now)}`;
  if (k.setAt) return `Set ${daysAgoWords(k.setAt, now)} · never rotated`;
  return "Never rotated";
}

/** "24 February 2027" in the person's own date format. */
export function dateWords(iso: string): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  return t.toLocaleDateString(undefined, { day: "numeric", month: "long", year: "numeric" });
}

const lowerFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);
const listWords = (items: string[]) =>
  items.length <= 1 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;

/** What the Keys section says under the schedule: which keys are due, or when the next reminder is. */
export function reminderWords(r: KeyReminders, now = Date.now()): string {
  if (r.everyDays === null)
    return "No reminders. Your keys keep working; changing them now and then limits the harm if one ever leaks.";
  if (r.due.length) {
    const names = listWords(r.due.map((d) => lowerFirst(d.label)));
    const verb = r.due.length === 1 ? "is" : "are";
    return `Your ${names} ${verb} due for a change. Clawkeeper reminds you every ${r.againAfterDays} days until ${r.due.length === 1 ? "it is" : "they are"} changed.`;
  }
  if (r.nextAt && r.nextKeys.length) {
    const when = new Date(r.nextAt).getTime() <= now ? "soon" : `on ${dateWords(r.nextAt)}`;
    return `Next reminder ${when}, for your ${listWords(r.nextKeys.map(lowerFirst))}.`;
  }
  return "You'll be reminded once your assistant has keys.";
}

const HOW: Record<KeyInfo["how"], string> = {
  one_click: "Rotates in one click",
  guided: "Rotated with a few steps at the provider",
  not_yet: "Can't be rotated from here yet",
};

// ---------- state ----------

let keys: KeyInfo[] = [];
let loadError: ApiError | undefined;
let reminders: KeyReminders | undefined;
/** The schedule couldn't be read or saved: said under it. */
let remindError: ApiError | undefined;
/** A rotation started from this page is running: every button waits. */
let busy = false;
/** Which key of which instance: the key's id for this computer's assistant (`gateway-token`),
 * `<server id>/<key>` for a server's (`srv/ssh-key`). */
type Slot = string;
const LOCAL = "local";
const slotOf = (instanceId: string, key: KeyId): Slot =>
  instanceId === LOCAL ? key : `${instanceId}/${key}`;

/** The keys of the current (or last) run, in order, with their latest step. */
let run: { keys: { slot: Slot; label: string }[]; rotations: Map<Slot, Rotation> } | undefined;

interface Shown {
  slot: Slot;
  label: string;
  tone: "ok" | "info" | "warn" | "bad";
  title: string;
  text?: string;
}
/** What came of the last run. */
let results: Shown[] | undefined;
/** Keys the person makes at their provider and pastes here ("Change…"). */
const PASTED: KeyId[] = ["provider-key", "cloud-token", "telegram-token", "discord-token", "tailscale-api"];
/** Of those, the chat bots' tokens (checked to be the same bot's). */
const BOT_TOKENS: KeyId[] = ["telegram-token", "discord-token"];

/** The key whose "Change…" form is open (a guided rotation: the person pastes a new key). */
let changing: KeyId | undefined;
/** What came of the last "Save admin key" (OpenAI): saved, or why not. */
let adminResult: { ok: true; project: string } | { ok: false; error: ApiError } | undefined;
/** The "Make changing it one click" form is open (kept open across re-renders, so what came of
 * "Check and save" stays in view), and the project typed there (not a secret). */
let adminOpen = false;
let adminProject = "";
/** "Get a new key from OpenRouter" waits for the person to approve in their browser. */
let signingIn = false;
/** The person pressed Cancel on that wait. */
let signInCancelled = false;

// ---------- the skeleton ----------

let list: HTMLElement;
let progress: HTMLElement;
let progressTitle: HTMLElement;
let progressBlocks: HTMLElement;
let resultBox: HTMLElement;
let errorSlot: HTMLElement;
let allBtn: HTMLButtonElement;
let summary: HTMLElement;
let remindSelect: HTMLSelectElement;
let remindNext: HTMLElement;

/** A key's name on this page: a server's keys say which server. */
function shownLabel(k: Pick<KeyInfo, "instanceId" | "label">): string {
  return k.instanceId === LOCAL ? k.label : `${k.label} · server ${k.instanceId}`;
}

function labelOf(slot: Slot): string {
  const k = keys.find((k) => slotOf(k.instanceId, k.key) === slot);
  return k ? shownLabel(k) : slot;
}

// ---------- rendering ----------

function render() {
  if (!list) return; // before initKeys
  renderList();
  renderProgress();
  renderResults();
  renderReminders();
  const oneClick = keys.filter((k) => k.how === "one_click");
  allBtn.hidden = oneClick.length === 0;
  allBtn.disabled = busy;
  allBtn.textContent = busy && run && run.keys.length > 1 ? "Rotating…" : "Rotate all";
  summary.textContent = busy
    ? "Rotating…"
    : keys.some((k) => k.running)
      ? "A change is unfinished"
      : keys.some((k) => k.due)
        ? `${keys.filter((k) => k.due).length} due for a change`
        : keys.length
        ? `${keys.length} key${keys.length === 1 ? "" : "s"}`
        : "";
}

function renderList() {
  if (loadError) {
    list.replaceChildren();
    errorSlot.replaceChildren(errorPanel(loadError, [fixFor(loadError, refreshKeys)], { compact: true }));
    return;
  }
  errorSlot.replaceChildren();
  if (!keys.length) {
    list.replaceChildren(
      h("li", { class: "empty", text: "No keys yet. Your assistant's keys appear here once it is set up." }),
    );
    return;
  }
  // The list is rebuilt whenever the app says something (the assistant started, a reminder):
  // a key being typed into a form stays in its field, and the focus where it was.
  const typing = ["key-new-secret", "openai-admin-key"].map((id) => {
    const el = document.getElementById(id) as HTMLInputElement | null;
    return { id, value: el?.value ?? "", focused: el !== null && document.activeElement === el };
  });
  list.replaceChildren(...keys.map(keyItem));
  for (const t of typing) {
    const el = document.getElementById(t.id) as HTMLInputElement | null;
    if (!el) continue;
    if (t.value) el.value = t.value;
    if (t.focused) el.focus();
  }
}

function keyItem(k: KeyInfo): HTMLLIElement {
  const slot = slotOf(k.instanceId, k.key);
  const domId = slot.replace(/[^A-Za-z0-9_-]/g, "-");
  const label = shownLabel(k);
  const side =
    k.how === "one_click"
      ? h("button", {
          type: "button",
          id: `key-rotate-${domId}`,
          class: "btn btn-secondary btn-small",
          "data-testid": `key-rotate-${domId}`,
          "aria-label": `Rotate ${label}`,
          text: busy && run?.keys.some((r) => r.slot === slot) ? "Rotating…" : "Rotate",
          disabled: busy || Boolean(k.running),
          on: { click: () => void rotateOne(k) },
        })
      : k.how === "guided" && PASTED.includes(k.key)
        ? h("button", {
            type: "button",
            id: `key-change-${k.key}`,
            class: "btn btn-secondary btn-small",
            "data-testid": `key-change-${k.key}`,
            "aria-label": `Change ${label}`,
            "aria-expanded": String(changing === k.key),
            text: "Change…",
            disabled: busy || Boolean(k.running),
            on: {
              click: () => {
                changing = changing === k.key ? undefined : k.key;
                renderList();
                if (changing) byId<HTMLInputElement>("key-new-secret").focus();
              },
            },
          })
        : null;
  const form = changing === k.key && !k.running ? changeForm(k) : null;
  const running = k.running
    ? h(
        "div",
        { class: "notice warn mt-quarter", id: `key-running-${domId}`, "data-testid": "key-running" },
        icon("pending"),
        h(
          "div",
          { class: "notice-body" },
          h("span", {
            class: "notice-title",
            text: k.waitingForYou ? "One more step: delete the old key" : "Finishing the last change…",
          }),
          h("span", {
            text: k.waitingForYou
              ? "Your assistant already uses the new key. Delete the old one at your provider; Clawkeeper checks that it no longer works and finishes (it checks by itself every few minutes)."
              : (k.running.error ? `${k.running.error}. ` : "") +
                "Your assistant keeps working meanwhile; Clawkeeper finishes it by itself when it can.",
          }),
          h(
            "div",
            { class: "row" },
            h("button", {
              type: "button",
              id: "keys-resume",
              class: "btn btn-primary btn-small",
              "data-testid": "keys-resume",
              text: k.waitingForYou ? "Check again" : "Try again",
              disabled: busy,
              on: { click: () => void resume() },
            }),
          ),
        ),
      )
    : null;
  return h(
    "li",
    { class: "key", "data-key": k.key, "data-instance": k.instanceId, "data-how": k.how },
    icon("key"),
    h(
      "div",
      { class: "item-main" },
      h("div", {}, h("strong", { text: label })),
      h("div", { class: "item-sub", text: k.lives }),
      h("div", { class: "item-sub", "data-testid": "key-age", text: `${ageWords(k)} · ${HOW[k.how]}` }),
      k.due && !k.running
        ? h(
            "div",
            { class: "item-sub key-due", "data-testid": "key-due" },
            icon("warn"),
            h("span", {
              text: reminders?.everyDays
                ? `Due for a change: older than your ${reminders.everyDays}-day reminder`
                : "Due for a change",
            }),
          )
        : null,
      k.expiresAt
        ? h(
            "div",
            {
              class: `item-sub${new Date(k.expiresAt).getTime() - Date.now() < 14 * 864e5 ? " key-due" : ""}`,
              "data-testid": "key-expires",
            },
            h("span", {
              text: `${new Date(k.expiresAt).getTime() <= Date.now() ? "Expired" : "Expires"} on ${dateWords(k.expiresAt)}`,
            }),
          )
        : null,
      k.note ? h("div", { class: "item-sub", "data-testid": "key-note", text: k.note }) : null,
      form,
      k.adminKey && !k.running ? adminKeyForm() : null,
      adminResult?.ok && k.key === "provider-key" && k.instanceId === LOCAL && k.how === "one_click"
        ? h(
            "div",
            { class: "item-sub", "data-testid": "openai-admin-saved" },
            icon("ok"),
            h("span", {
              text: `OpenAI Admin key saved in your keychain (project ${adminResult.project}). Changing this key is now one click: press Rotate.`,
            }),
          )
        : null,
      running,
      k.fingerprint
        ? h(
            "details",
            { class: "disclosure" },
            h("summary", { text: "Details" }),
            h("p", { class: "fingerprint small" }, "Fingerprint: ", h("code", { text: k.fingerprint })),
          )
        : null,
    ),
    side ? h("div", { class: "item-side" }, side) : null,
  );
}

/** "Change…" of a guided key: paste the new key, "Check and switch". The field is emptied
 * as soon as its text is sent; the key never comes back to this page. */
function changeForm(k: KeyInfo): HTMLElement {
  const input = h("input", {
    id: "key-new-secret",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    class: "input",
    "data-testid": "key-new-secret",
    "aria-describedby": "key-new-help",
  }) as HTMLInputElement;
  const submit = (e: Event) => {
    e.preventDefault();
    const secret = input.value.trim();
    input.value = "";
    if (!secret) {
      input.focus();
      return;
    }
    changing = undefined;
    void changeWith(k, secret);
  };
  const signIn = k.signIn
    ? h(
        "div",
        { class: "key-sign-in" },
        h("button", {
          type: "button",
          class: "btn btn-primary btn-small",
          "data-testid": "key-sign-in",
          text: "Get a new key from OpenRouter",
          on: {
            click: () => {
              changing = undefined;
              void changeBySignIn(k);
            },
          },
        }),
        h("p", {
          class: "muted small",
          text: "Opens OpenRouter in your browser: sign in and press Authorize. Or paste a key you made there:",
        }),
      )
    : null;
  return h(
    "form",
    { class: "key-change mt-quarter", "data-testid": "key-change-form", on: { submit } },
    signIn,
    h("label", { for: "key-new-secret", text: k.key === "provider-key" ? "New key" : "New token" }),
    input,
    h("p", {
      id: "key-new-help",
      class: "muted small",
      text: BOT_TOKENS.includes(k.key)
        ? "Clawkeeper checks first that it works and is your bot's token: if not, nothing changes."
        : "Clawkeeper checks it at the provider first: if it doesn't work, nothing changes.",
    }),
    h(
      "div",
      { class: "row" },
      h("button", { type: "submit", class: "btn btn-primary btn-small", "data-testid": "key-change-submit", text: "Check and switch" }),
      h("button", {
        type: "button",
        class: "btn btn-secondary btn-small",
        text: "Cancel",
        on: {
          click: () => {
            changing = undefined;
            renderList();
          },
        },
      }),
    ),
  );
}

/** OpenAI: "Make changing it one click" — the person's Admin key (and project), so Clawkeeper
 * makes each new key itself. The field is emptied as soon as its text is sent. */
function adminKeyForm(): HTMLElement {
  const key = h("input", {
    id: "openai-admin-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    class: "input",
    "data-testid": "openai-admin-key",
  }) as HTMLInputElement;
  const project = h("input", {
    id: "openai-admin-project",
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    class: "input",
    placeholder: "proj_…",
    value: adminProject,
    "data-testid": "openai-admin-project",
    on: { input: () => (adminProject = project.value) },
  }) as HTMLInputElement;
  const save = h("button", {
    type: "submit",
    class: "btn btn-secondary btn-small",
    "data-testid": "openai-admin-save",
    text: "Check and save",
  }) as HTMLButtonElement;
  const submit = async (e: Event) => {
    e.preventDefault();
    const secret = key.value.trim();
    key.value = "";
    if (!secret) {
      key.focus();
      return;
    }
    save.disabled = true;
    save.textContent = "Checking at OpenAI…";
    try {
      const saved = await openaiAdminSave(secret, project.value.trim());
      adminResult = { ok: true, project: saved.projectId };
      adminOpen = false;
      adminProject = "";
      await refreshKeys();
    } catch (err) {
      adminResult = { ok: false, error: toApiError(err) };
      renderList();
    }
  };
  const outcome =
    adminResult === undefined
      ? null
      : adminResult.ok
        ? h("p", { class: "small", "data-testid": "openai-admin-result", text: `Saved for project ${adminResult.project}.` })
        : errorPanel(adminResult.error, [], { compact: true });
  const details = h(
    "details",
    { class: "disclosure", "data-testid": "openai-admin", open: adminOpen },
    h("summary", { text: "Make changing it one click: give Clawkeeper an OpenAI Admin key" }),
    h(
      "form",
      { class: "key-change mt-quarter", on: { submit: (e: Event) => void submit(e) } },
      h("p", {
        class: "muted small",
        text: "Make an Admin key at platform.openai.com (Settings → Organization → Admin keys). It stays in your keychain; your assistant never gets it. Clawkeeper uses it only to make your assistant's new key and delete the old one.",
      }),
      h("label", { for: "openai-admin-key", text: "Admin key" }),
      key,
      h("label", { for: "openai-admin-project", text: "Project ID (only if your organization has several projects)" }),
      project,
      h(
        "div",
        { class: "row" },
        save,
      ),
      outcome,
    ),
  );
  details.addEventListener("toggle", () => (adminOpen = details.open));
  return details;
}

const STEP_ICON: Record<string, IconName> = { done: "ok", active: "busy", todo: "pending", failed: "bad" };

function renderProgress() {
  if (!busy || !run) {
    progress.hidden = true;
    progressBlocks.replaceChildren();
    return;
  }
  progress.hidden = false;
  if (signingIn && !run.rotations.size) {
    progressBlocks.replaceChildren(
      h(
        "div",
        { class: "notice", "data-testid": "key-sign-in-wait" },
        icon("busy"),
        h(
          "div",
          { class: "notice-body" },
          h("span", { class: "notice-title", text: "Finish signing in in your browser" }),
          h("span", {
            text: "OpenRouter opened in your browser: sign in there and press Authorize. Clawkeeper carries on by itself when you're done.",
          }),
          h(
            "div",
            { class: "row" },
            h("button", {
              type: "button",
              class: "btn btn-secondary btn-small",
              "data-testid": "key-sign-in-cancel",
              text: "Cancel",
              on: {
                click: () => {
                  signInCancelled = true;
                  void rotateKeySignInCancel().catch(() => undefined);
                },
              },
            }),
          ),
        ),
      ),
    );
    return;
  }
  const blocks = run.keys.map(({ slot, label }) => {
    const r = run?.rotations.get(slot);
    const at = r ? ROTATION_STEPS.indexOf(r.step) : -1;
    const finished = r?.outcome === "done";
    const back = r?.direction === "rollback" || r?.outcome === "rolled_back";
    const doneCount = finished ? ROTATION_STEPS.length : Math.max(at, 0);
    const steps = ROTATION_STEPS.map((s, i) => {
      const status = finished || i < at ? "done" : r && i === at ? (back ? "failed" : "active") : "todo";
      return h(
        "li",
        { "data-status": status, "data-step": s, ...(status === "active" ? { "aria-current": "step" } : {}) },
        icon(STEP_ICON[status] ?? "pending"),
        h(
          "span",
          { class: "step-text" },
          h("span", { text: ROTATION_STEP_LABELS[s] }),
          status === "active" ? h("span", { class: "step-now", text: "Now" }) : null,
        ),
      );
    });
    return h(
      "div",
      { class: "progress-wrap", "data-key": slot },
      h("p", {}, h("strong", { text: label }), r ? "" : h("span", { class: "muted", text: " — waiting its turn" })),
      h("progress", {
        max: String(ROTATION_STEPS.length),
        value: String(doneCount),
        "aria-label": `${label}: ${doneCount} of ${ROTATION_STEPS.length} steps done`,
      }),
      h(
        "div",
        { class: "progress-meta" },
        h("span", {
          text: back
            ? "Undoing the change — your old key stays in use"
            : `Step ${Math.min(doneCount + 1, ROTATION_STEPS.length)} of ${ROTATION_STEPS.length}`,
        }),
        h("span", { text: "Usually a few seconds" }),
      ),
      h("ol", { class: "step-list" }, ...steps),
    );
  });
  progressBlocks.replaceChildren(...blocks);
}

function renderResults() {
  if (busy || !results) {
    resultBox.replaceChildren();
    return;
  }
  const TONE_ICON: Record<Shown["tone"], IconName> = { ok: "ok", info: "idle", warn: "warn", bad: "warn" };
  resultBox.replaceChildren(
    h(
      "ul",
      { class: "keys-results", "data-testid": "keys-results" },
      ...results.map((r) =>
        h(
          "li",
          { class: r.tone === "info" ? "notice" : `notice ${r.tone}`, "data-key": r.slot, "data-result": r.tone },
          icon(TONE_ICON[r.tone]),
          h(
            "div",
            { class: "notice-body" },
            h("span", { class: "notice-title", text: `${r.label}: ${r.title}` }),
            r.text ? h("span", { text: r.text }) : null,
          ),
        ),
      ),
    ),
  );
}

function renderReminders() {
  if (!remindSelect) return;
  if (reminders) {
    const value = reminders.everyDays === null ? "never" : String(reminders.everyDays);
    // A schedule set elsewhere (the CLI: any number of days) is shown as it is.
    if (![...remindSelect.options].some((o) => o.value === value))
      remindSelect.append(h("option", { value, text: `Every ${value} days` }));
    remindSelect.value = value;
  }
  remindSelect.disabled = !reminders;
  remindNext.textContent = remindError
    ? [remindError.message, remindError.hint].filter(Boolean).join(" ")
    : reminders
      ? reminderWords(reminders)
      : "";
}

async function changeSchedule() {
  const v = remindSelect.value;
  const everyDays = v === "never" ? null : Number(v);
  remindSelect.disabled = true;
  try {
    reminders = await setKeyReminders(everyDays);
    remindError = undefined;
    keys = await keysInventory();
  } catch (e) {
    remindError = toApiError(e);
  }
  render();
  remindSelect.focus();
}

// ---------- what came of it ----------

const words = (p?: ApiError) => [p?.message, p?.hint].filter(Boolean).join(" ");

function unchanged(slot: Slot, label: string, p?: ApiError): Shown {
  return { slot, label, tone: "bad", title: "Not changed — your old key still works", text: words(p) };
}
function pending(slot: Slot, label: string, p?: ApiError): Shown {
  return { slot, label, tone: "warn", title: "Finishing later", text: words(p) };
}
function rotated(slot: Slot, label: string): Shown {
  return { slot, label, tone: "ok", title: "Rotated", text: "The new key is in use and saved in your keychain; the old one no longer works." };
}

/** A rotation's end, as said to the person. */
function fromRotation(r: Rotation, label: string): Shown {
  const slot = slotOf(r.instanceId, r.key);
  if (r.outcome === "done") return rotated(slot, label);
  if (r.outcome === "rolled_back")
    return unchanged(slot, label, r.error ? { code: "rotation_rolled_back", message: r.error } : undefined);
  return pending(slot, label, r.error ? { code: "rotation_pending", message: r.error } : undefined);
}

function signInStopped(slot: Slot, label: string): Shown {
  return {
    slot,
    label,
    tone: "info",
    title: "Cancelled — nothing changed",
    text: "Your assistant keeps using the key it has. Press Change… whenever you want a new one.",
  };
}

function needsYou(slot: Slot, label: string, p?: ApiError): Shown {
  return { slot, label, tone: "warn", title: "One more step: delete the old key", text: words(p) };
}

function fromProblem(slot: Slot, label: string, p: ApiError): Shown {
  if (p.code === "rotation_needs_you") return needsYou(slot, label, p);
  return p.code === "rotation_pending" ? pending(slot, label, p) : unchanged(slot, label, p);
}

function fromResult(r: RotateResult): Shown {
  const slot = slotOf(r.instanceId, r.key);
  const label = shownLabel(r);
  switch (r.result) {
    case "rotated":
      return rotated(slot, label);
    case "pending":
      return pending(slot, label, r.problem);
    case "needs_you":
      return r.problem?.code === "rotation_needs_you"
        ? needsYou(slot, label, r.problem)
        : { slot, label, tone: "warn", title: "Needs you", text: r.problem?.message ?? "It can't be rotated from here yet." };
    default:
      return unchanged(slot, label, r.problem);
  }
}

function fromResume(r: ResumeResult): Shown {
  const slot = slotOf(r.rotation.instanceId, r.rotation.key);
  const label = labelOf(slot);
  return r.problem ? fromProblem(slot, label, r.problem) : fromRotation(r.rotation, label);
}

// ---------- actions ----------

/** Run a rotation from this page: buttons wait, the steps show, then what came of it. */
async function during(runKeys: Slot[], work: () => Promise<Shown[]>) {
  if (busy) return;
  busy = true;
  run = { keys: runKeys.map((slot) => ({ slot, label: labelOf(slot) })), rotations: new Map() };
  results = undefined;
  adminResult = undefined; // said once, until the next change
  render();
  progressTitle.focus();
  try {
    results = await work();
  } catch (e) {
    const p = toApiError(e);
    results = runKeys.map((k) => fromProblem(k, labelOf(k), p));
  } finally {
    busy = false;
    await refreshKeys();
    render();
    resultBox.focus();
  }
}

async function rotateOne(k: KeyInfo) {
  const slot = slotOf(k.instanceId, k.key);
  await during([slot], async () => {
    try {
      const r = await rotateKey(k.key, k.instanceId === LOCAL ? undefined : k.instanceId);
      return [fromRotation(r, labelOf(slot))];
    } catch (e) {
      return [fromProblem(slot, labelOf(slot), toApiError(e))];
    }
  });
}

async function changeWith(k: KeyInfo, secret: string) {
  const slot = slotOf(k.instanceId, k.key);
  await during([slot], async () => {
    try {
      const r = await rotateKeyWith(k.key, secret);
      return [fromRotation(r, labelOf(slot))];
    } catch (e) {
      return [fromProblem(slot, labelOf(slot), toApiError(e))];
    }
  });
}

async function changeBySignIn(k: KeyInfo) {
  const slot = slotOf(k.instanceId, k.key);
  signingIn = true;
  signInCancelled = false;
  await during([slot], async () => {
    try {
      const r = await rotateKeySignIn();
      return [fromRotation(r, labelOf(slot))];
    } catch (e) {
      const p = toApiError(e);
      // The person's own Cancel is no error. (Pressed before the wait had begun, it can
      // come back as "no sign-in is waiting": nothing was changed either way.)
      if (p.code === "rotation_sign_in_cancelled" || (signInCancelled && p.code === "rotation_sign_in_missing"))
        return [signInStopped(slot, labelOf(slot))];
      return [fromProblem(slot, labelOf(slot), p)];
    } finally {
      signingIn = false;
      signInCancelled = false;
    }
  });
}

async function rotateEverything() {
  const oneClick = keys.filter((k) => k.how === "one_click").map((k) => slotOf(k.instanceId, k.key));
  await during(oneClick, async () => (await rotateAll()).map(fromResult));
}

async function resume() {
  const unfinished = keys.filter((k) => k.running).map((k) => slotOf(k.instanceId, k.key));
  await during(unfinished, async () => {
    const done = await rotationsResume();
    if (!done.length) {
      return unfinished.map((slot) => ({ slot, label: labelOf(slot), tone: "ok" as const, title: "Already finished" }));
    }
    return done.map(fromResume);
  });
}

// ---------- data ----------

export async function refreshKeys() {
  try {
    keys = await keysInventory();
    loadError = undefined;
  } catch (e) {
    loadError = toApiError(e);
  }
  try {
    reminders = await keyReminders();
    remindError = undefined;
  } catch (e) {
    remindError = toApiError(e);
  }
  render();
}

/** A `rotation` event: the step it is at (or its end). */
export function onKeysEvent(e: BackendEvent) {
  if (e.type === "rotation_reminder") {
    if (!busy) void refreshKeys();
    return;
  }
  if (e.type !== "rotation") return;
  const { type: _t, ...r } = e;
  if (busy && run) {
    const slot = slotOf(r.instanceId, r.key);
    if (!run.keys.some((k) => k.slot === slot)) run.keys.push({ slot, label: labelOf(slot) });
    run.rotations.set(slot, r);
    renderProgress();
  } else if (r.outcome) {
    // Finished by itself in the background (after a restart, or the daemon's retry).
    void refreshKeys();
  }
}

/** `status.html#keys` (the tray's "Rotate keys…"): bring the section into view. The
 * fragment is dropped again, so the same request later is a change the page hears. */
export function openKeysFromHash() {
  if (location.hash !== "#keys") return;
  history.replaceState(null, "", location.pathname + location.search);
  const section = byId("keys");
  section.scrollIntoView({ block: "start" });
  const title = byId("keys-title");
  title.tabIndex = -1;
  title.focus({ preventScroll: true });
}
window.addEventListener("hashchange", openKeysFromHash);

export async function initKeys() {
  list = byId("keys-list");
  progress = byId("keys-progress");
  progressTitle = h("h3", { id: "keys-progress-title", tabindex: "-1", text: "Rotating…" });
  progressBlocks = h("div", { "aria-live": "polite" });
  progress.replaceChildren(
    progressTitle,
    h("p", { class: "muted small", text: "Your old key keeps working until the new one has been checked." }),
    progressBlocks,
  );
  resultBox = byId("keys-result");
  errorSlot = byId("keys-error");
  summary = byId("keys-summary");
  allBtn = byId<HTMLButtonElement>("keys-rotate-all");
  remindSelect = byId<HTMLSelectElement>("keys-remind-every");
  remindNext = byId("keys-remind-next");
  remindSelect.addEventListener("change", () => void changeSchedule());
  resultBox.tabIndex = -1;
  allBtn.addEventListener("click", () => void rotateEverything());
  await refreshKeys();
}
