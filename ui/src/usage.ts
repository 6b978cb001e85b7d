// Status window: "Usage and spend". What the assistant cost (today, this month, per
// day), what is left of the spend cap, what OpenRouter says, and exports.
//
// The section is built once into #usage-body as a few stable parts; each part re-renders
// from the latest UsageView on its own, so a background update never clobbers a form the
// person is typing in or moves keyboard focus. The charts (uPlot) load lazily from
// ./usage-charts; every chart has its numbers as a table one click away.

import {
  type ApiError,
  type BackendEvent,
  type CapPeriod,
  type ExportBy,
  type ExportFormat,
  type UsageRow,
  type UsageView,
  providerManagementForget,
  providerManagementSave,
  spendCapSet,
  spendResume,
  startInstance,
  toApiError,
  usageExport,
  usageSync,
  usageView,
} from "./api";
import { type Action, byId, errorPanel, fixFor, focusFirst, h, icon, LOCALE, timeAgo } from "./ui";
import type { ChartSpec } from "./usage-charts";

// ---------- words for money, tokens, days ----------

const USD = (digits: number) =>
  new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: digits, maximumFractionDigits: digits });
const USD2 = USD(2);
const USD3 = USD(3);

/** "$0.42", "$6.10", "$0.004": as the core and the tray say it (small amounts keep a digit). */
export function money(d: number): string {
  if (d === 0 || !Number.isFinite(d)) return "$0.00";
  return Math.abs(d) < 0.01 ? USD3.format(d) : USD2.format(d);
}

const COMPACT = new Intl.NumberFormat(LOCALE, { notation: "compact", maximumFractionDigits: 1 });
const WHOLE = new Intl.NumberFormat(LOCALE);
/** "1.2M", "340K". */
export const tokens = (n: number) => COMPACT.format(n);
const percent = (p: number) => `${Math.round(p)}%`;

const DAY_MS = 86_400_000;
const dayMs = (day: string) => Date.parse(`${day}T00:00:00Z`);
const dayPlus = (day: string, n: number) => new Date(dayMs(day) + n * DAY_MS).toISOString().slice(0, 10);
/** Every UTC day from `from` to `to`, inclusive. */
function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let d = from; d <= to && out.length < 4000; d = dayPlus(d, 1)) out.push(d);
  return out;
}
const DAY_WORDS = new Intl.DateTimeFormat(LOCALE, { day: "numeric", month: "short", timeZone: "UTC" });
const DAY_LONG = new Intl.DateTimeFormat(LOCALE, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
/** "24 Nov" / "Nov 24" (the person's format), for a UTC day. */
export const dayWords = (day: string) => DAY_WORDS.format(new Date(dayMs(day)));
const dayLong = (day: string) => DAY_LONG.format(new Date(dayMs(day)));

const PERIOD: Record<CapPeriod, { now: string; label: string; name: string }> = {
  daily: { now: "today", label: "Daily", name: "daily" },
  weekly: { now: "this week", label: "Weekly (Monday to Sunday)", name: "weekly" },
  monthly: { now: "this month", label: "Monthly", name: "monthly" },
};

/** "anthropic/claude-sonnet-4.5" reads as "claude-sonnet-4.5". */
export const modelName = (key: string) => key.slice(key.lastIndexOf("/") + 1) || key;

const CHANNELS: Record<string, string> = {
  app: "Chat in this app",
  telegram: "Telegram",
  whatsapp: "WhatsApp",
  signal: "Signal",
  discord: "Discord",
  slack: "Slack",
  imessage: "iMessage",
  email: "Email",
  webchat: "Web chat",
};
export const channelName = (key: string) =>
  Object.hasOwn(CHANNELS, key) ? CHANNELS[key]! : key ? key[0]!.toUpperCase() + key.slice(1) : "Other";

// ---------- state ----------

const RANGES = [7, 30, 90] as const;
const DAYS_KEY = "clawkeeper-usage-days";
let days: number = (() => {
  const saved = Number(sessionStorage.getItem(DAYS_KEY));
  return (RANGES as readonly number[]).includes(saved) ? saved : 30;
})();

let view: UsageView | undefined;
type Tab = "model" | "channel" | "session";
let tab: Tab = "model";
/** Spend alerts heard this session (newest first), until dismissed. */
let alerts: { summary: string; body: string; kind: string; level: number }[] = [];
/** The cap form's fields were changed by the person: don't overwrite them. */
let formDirty = false;

// ---------- the skeleton ----------

let root: HTMLElement;
const part = (cls: string, extra: Record<string, unknown> = {}) => h("div", { class: cls, ...extra });
const parts = {
  head: part("usage-head"),
  paused: part("usage-slot", { "data-testid": "usage-paused" }),
  alerts: part("usage-slot", { "aria-live": "polite" }),
  error: part("usage-slot"),
  cap: part("usage-block usage-cap"),
  charts: part("usage-block usage-charts"),
  breakdown: part("usage-block usage-breakdown"),
  provider: part("usage-block usage-provider"),
  export: part("usage-block usage-export"),
};

/**
 * Replace `el`'s content only when what it shows changed (`key`), so a background update
 * doesn't take keyboard focus from a button or close an open "Show the numbers".
 */
function renderIf(el: HTMLElement, key: string, build: () => Node[]) {
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  el.replaceChildren(...build());
}

// ---------- actions ----------

/** Run a command from a button: busy words while it runs, errors in `slot` with the likely fix. */
async function act(btn: HTMLButtonElement, busy: string, slot: HTMLElement, fn: () => Promise<void>): Promise<void> {
  slot.replaceChildren();
  // Disabling a focused button drops focus: give it back afterwards (or to the heading if
  // the button went away, like "Resume").
  const hadFocus = document.activeElement === btn;
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  const old = btn.textContent;
  btn.textContent = busy;
  try {
    await fn();
  } catch (e) {
    const err = toApiError(e);
    slot.replaceChildren(errorPanel(err, [usageFix(err, () => act(btn, busy, slot, fn))], { compact: true }));
  } finally {
    btn.disabled = false;
    btn.removeAttribute("aria-busy");
    btn.textContent = old;
    if (hadFocus && (document.activeElement === document.body || !document.activeElement)) {
      if (btn.isConnected) btn.focus();
      else focusFirst(byId("usage-section"));
    }
  }
}

/** The likely fix: when the assistant isn't running, start it (or resume it after a pause at the cap). */
function usageFix(err: ApiError, retry: () => void | Promise<void>): Action {
  if (err.code === "assistant_not_running")
    return view?.summary.paused
      ? { label: "Resume", run: resume, primary: true }
      : {
          label: "Start your assistant",
          run: () =>
            startInstance().catch((e) => {
              const err = toApiError(e);
              parts.error.replaceChildren(errorPanel(err, [fixFor(err, startInstance)], { compact: true }));
            }),
          primary: true,
        };
  return fixFor(err, retry);
}

/** A view the core answered with after a change covers 30 days; ask again for the chosen range. */
async function settle(v: UsageView) {
  if (daysBetween(v.from, v.to).length === days) show(v);
  else await load();
}

async function resume() {
  settle(await spendResume(days));
}

// ---------- loading ----------

let inflight: Promise<void> | undefined;
let again = false;

/** Read the view for the chosen range; if asked again meanwhile, once more afterwards. */
function load(): Promise<void> {
  if (inflight) {
    again = true;
    return inflight;
  }
  inflight = (async () => {
    try {
      show(await usageView(days));
    } catch (e) {
      const err = toApiError(e);
      if (!view) root.replaceChildren(errorPanel(err, [usageFix(err, load)]));
      else parts.error.replaceChildren(errorPanel(err, [usageFix(err, load)], { compact: true }));
    } finally {
      inflight = undefined;
      if (again) {
        again = false;
        void load();
      }
    }
  })();
  return inflight;
}

/** Whether the assistant is paused at the spend cap (as last read). */
export const usagePaused = () => view?.summary.paused ?? false;
let onPausedChange: (paused: boolean) => void = () => {};

function show(v: UsageView) {
  const first = !view;
  const wasPaused = usagePaused();
  view = v;
  if (v.summary.paused !== wasPaused) onPausedChange(v.summary.paused);
  if (first) {
    root.replaceChildren(...Object.values(parts));
    buildStatic();
  }
  renderHead(v);
  renderPaused(v);
  renderAlerts();
  renderCap(v);
  renderCharts(v);
  renderBreakdown(v);
  renderProvider(v);
  renderExport(v);
}

// ---------- head: the headline, freshness, "Update now" ----------

const updateBtn = h("button", {
  type: "button",
  class: "btn btn-secondary btn-small",
  id: "usage-update",
  "data-testid": "usage-update",
  text: "Update now",
});
updateBtn.addEventListener("click", () =>
  void act(updateBtn, "Updating…", parts.error, async () => {
    await settle(await usageSync(days));
  }),
);

function freshness(v: UsageView): HTMLElement {
  const s = v.summary;
  if (s.error)
    return h(
      "p",
      { class: "usage-fresh is-stale", "data-testid": "usage-fresh" },
      icon("warn"),
      h(
        "span",
        {},
        `Couldn't update: ${s.error}`,
        s.syncedAt ? ` The numbers are from ${timeAgo(s.syncedAt)}.` : "",
      ),
    );
  return h(
    "p",
    { class: "usage-fresh", "data-testid": "usage-fresh" },
    s.syncedAt
      ? h("time", { datetime: s.syncedAt, title: new Date(s.syncedAt).toLocaleString(), text: `Updated ${timeAgo(s.syncedAt)}` })
      : "Not updated yet",
  );
}

const headText = h("div", { class: "usage-head-text" });

function renderHead(v: UsageView) {
  // The button stays put (re-inserting it would drop keyboard focus).
  if (!parts.head.contains(updateBtn)) parts.head.replaceChildren(headText, updateBtn);
  headText.replaceChildren(
    h(
      "p",
      { class: "usage-headline", "data-testid": "usage-headline" },
      h("strong", { text: money(v.summary.today) }),
      " today · ",
      h("strong", { text: money(v.summary.month) }),
      " this month",
    ),
    freshness(v),
    h("p", { class: "muted small", text: "Days are counted in UTC (as your provider counts them)." }),
  );
}

// ---------- notices: paused at the cap, spend alerts ----------

function renderPaused(v: UsageView) {
  const c = v.cap;
  renderIf(parts.paused, JSON.stringify([v.summary.paused, c?.spent, c?.amount, c?.period]), () =>
    v.summary.paused ? pausedNotice(v) : [],
  );
}

function pausedNotice(v: UsageView): Node[] {
  const btn = h("button", {
    type: "button",
    // The hero's primary button says "Resume" too: one primary action per screen.
    class: "btn btn-secondary",
    id: "usage-resume",
    "data-testid": "usage-resume",
    text: "Resume",
  });
  const slot = h("div", { class: "usage-slot" });
  btn.addEventListener("click", () => void act(btn, "Resuming…", slot, resume));
  const c = v.cap;
  return [
    h(
      "div",
      { class: "notice bad usage-paused", role: "alert" },
      icon("warn"),
      h(
        "div",
        { class: "notice-body" },
        h("p", { class: "notice-title", text: "Your assistant is paused: the spend cap was reached." }),
        h("p", {
          text: `${c ? `It used ${money(c.spent)} of your ${money(c.amount)} ${PERIOD[c.period].name} cap. ` : ""}Resume to start it again, or raise the cap below first so it isn't paused again ${
            c ? PERIOD[c.period].now : "soon"
          }.`,
        }),
        slot,
      ),
      btn,
    ),
  ];
}

function renderAlerts() {
  // "Spend cap reached" says no more than the paused notice above it.
  const shown = alerts.filter((a) => !(a.level >= 100 && usagePaused()));
  renderIf(parts.alerts, JSON.stringify(shown), () =>
    shown.map((a) =>
      h(
        "div",
        { class: "notice warn usage-alert", "data-testid": "usage-alert", "data-kind": a.kind },
        icon("warn"),
        h("div", { class: "notice-body" }, h("p", { class: "notice-title", text: a.summary }), h("p", { text: a.body })),
        h("button", {
          type: "button",
          class: "btn btn-quiet btn-small",
          text: "Dismiss",
          "aria-label": `Dismiss: ${a.summary}`,
          on: {
            click: () => {
              alerts = alerts.filter((x) => x !== a);
              renderAlerts();
              updateBtn.focus();
            },
          },
        }),
      ),
    ),
  );
}

// ---------- the spend cap: where it stands, and the form ----------

const form = {
  amount: h("input", {
    class: "input",
    id: "cap-amount",
    "data-testid": "cap-amount",
    inputmode: "decimal",
    autocomplete: "off",
    placeholder: "20",
    "aria-describedby": "cap-amount-error",
  }),
  period: h(
    "select",
    { class: "input", id: "cap-period", "data-testid": "cap-period" },
    h("option", { value: "daily", text: "Day" }),
    h("option", { value: "weekly", text: "Week (Monday to Sunday)" }),
    h("option", { value: "monthly", text: "Month" }),
  ),
  levels: h("input", {
    class: "input",
    id: "cap-levels",
    "data-testid": "cap-levels",
    autocomplete: "off",
    placeholder: "50, 80, 100",
    "aria-describedby": "cap-levels-help cap-levels-error",
  }),
  pause: h("input", { type: "checkbox", id: "cap-pause", "data-testid": "cap-pause" }),
  amountError: h("p", { class: "field-error", id: "cap-amount-error", hidden: true }),
  levelsError: h("p", { class: "field-error", id: "cap-levels-error", hidden: true }),
  save: h("button", { type: "submit", class: "btn btn-primary btn-small", id: "cap-save", "data-testid": "cap-save", text: "Save cap" }),
  remove: h("button", {
    type: "button",
    class: "btn btn-secondary btn-small",
    id: "cap-remove",
    "data-testid": "cap-remove",
    text: "Remove cap",
  }),
  slot: h("div", { class: "usage-slot" }),
  saved: h("p", { class: "saved small", role: "status" }),
};

const formEl = h(
  "form",
  { class: "cap-form", id: "cap-form", "data-testid": "cap-form", novalidate: true },
  h(
    "div",
    { class: "cap-fields" },
    h(
      "div",
      { class: "field" },
      h("label", { for: "cap-amount", text: "Cap in US dollars" }),
      h("div", { class: "input-money" }, h("span", { "aria-hidden": "true", text: "$" }), form.amount),
      form.amountError,
    ),
    h("div", { class: "field" }, h("label", { for: "cap-period", text: "Counted per" }), form.period),
    h(
      "div",
      { class: "field" },
      h("label", { for: "cap-levels", text: "Warn me at (%)" }),
      form.levels,
      h("p", { class: "help", id: "cap-levels-help", text: "Percent of the cap, separated by commas." }),
      form.levelsError,
    ),
  ),
  h(
    "label",
    { class: "checkbox", for: "cap-pause" },
    form.pause,
    h("span", { text: "Pause my assistant when the cap is reached" }),
  ),
  form.slot,
  h("div", { class: "row" }, form.save, form.remove, form.saved),
);
const capSummary = h("summary", { "data-testid": "cap-open", text: "Change the cap" });
const capDetails = h("details", { class: "disclosure", id: "cap-details" }, capSummary);
const capStatus = h("div", { class: "cap-status" });

formEl.addEventListener("input", () => {
  formDirty = true;
  form.saved.replaceChildren();
});

function fieldError(input: HTMLInputElement, el: HTMLElement, msg: string | null) {
  el.hidden = !msg;
  el.textContent = msg ?? "";
  if (msg) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/** "20", "$20", "20.50", "20,50" → 20.5; null if it isn't an amount. */
function parseAmount(s: string): number | null {
  let t = s.trim().replace(/^\$/, "").replace(/\s/g, "");
  if (/^\d+,\d{1,2}$/.test(t)) t = t.replace(",", ".");
  t = t.replace(/,/g, "");
  if (!/^\d+(\.\d+)?$|^\.\d+$/.test(t)) return null;
  return Number(t);
}

function parseLevels(s: string): number[] | null {
  const bits = s.split(/[\s,;%]+/).filter(Boolean);
  const out = bits.map(Number);
  if (out.some((n) => !Number.isInteger(n) || n < 1 || n > 100)) return null;
  return [...new Set(out)].sort((a, b) => a - b);
}

formEl.addEventListener("submit", (e) => {
  e.preventDefault();
  const amount = parseAmount(form.amount.value);
  const amountMsg =
    amount === null
      ? "Enter an amount in US dollars, such as 20."
      : amount <= 0
        ? "The cap must be an amount above zero."
        : amount > 1_000_000
          ? "The cap is too large."
          : null;
  let levels = parseLevels(form.levels.value);
  const levelsMsg = levels === null ? "Use percentages from 1 to 100, such as 50, 80, 100." : null;
  fieldError(form.amount, form.amountError, amountMsg);
  fieldError(form.levels, form.levelsError, levelsMsg);
  if (amountMsg) return form.amount.focus();
  if (levelsMsg || !levels) return form.levels.focus();
  void act(form.save, "Saving…", form.slot, async () => {
    const v = await spendCapSet(
      {
        amount: amount!,
        period: form.period.value as CapPeriod,
        levels: levels!,
        pauseAtCap: form.pause.checked,
      },
      days,
    );
    formDirty = false;
    await settle(v);
    form.saved.replaceChildren(icon("ok"), h("span", { text: "Saved" }));
  });
});

form.remove.addEventListener("click", () =>
  void act(form.remove, "Removing…", form.slot, async () => {
    const v = await spendCapSet({ amount: null, period: "monthly", levels: [50, 80, 100], pauseAtCap: false }, days);
    formDirty = false;
    await settle(v);
    form.saved.replaceChildren(icon("ok"), h("span", { text: "Cap removed" }));
  }),
);

function fillForm(v: UsageView) {
  form.remove.hidden = !v.cap;
  form.save.textContent = form.save.getAttribute("aria-busy") ? form.save.textContent : v.cap ? "Save cap" : "Set cap";
  if (formDirty) return;
  const c = v.cap;
  form.amount.value = c ? String(c.amount) : "";
  form.period.value = c?.period ?? "monthly";
  form.levels.value = (c?.levels.length ? c.levels : [50, 80, 100]).join(", ");
  form.pause.checked = c?.pauseAtCap ?? false;
  fieldError(form.amount, form.amountError, null);
  fieldError(form.levels, form.levelsError, null);
}

function capTone(p: number): "ok" | "warn" | "bad" {
  return p >= 100 ? "bad" : p >= 80 ? "warn" : "ok";
}

function renderCap(v: UsageView) {
  fillForm(v);
  const c = v.cap;
  const title = h("h3", { id: "cap-title", text: "Spend cap" });
  capSummary.textContent = c ? "Change the cap" : "Set a spend cap";
  // The form stays put while the rest re-renders (it may have focus, or half-typed values).
  if (!capDetails.contains(formEl)) capDetails.append(formEl);
  if (!parts.cap.contains(capDetails)) parts.cap.replaceChildren(capStatus, capDetails);
  if (!c) {
    capStatus.replaceChildren(
      title,
      h("p", { class: "muted", "data-testid": "cap-none", text: "No spend cap yet. Set one so a busy month can't surprise you." }),
    );
    return;
  }
  const p = c.percent;
  const tone = capTone(p);
  const line = `${money(c.spent)} of ${money(c.amount)} ${PERIOD[c.period].now} — ${percent(p)}`;
  const bar = h("progress", {
    class: "cap-bar",
    "data-tone": tone,
    "data-testid": "cap-bar",
    max: "100",
    value: String(Math.min(100, Math.max(0, p))),
    "aria-label": `Spend cap used: ${line}`,
  });
  const words = [
    c.levels.length ? `Warns you at ${c.levels.map((l) => `${l}%`).join(", ")}.` : "No warnings.",
    c.pauseAtCap ? "Pauses your assistant at the cap." : "Doesn't pause your assistant.",
  ].join(" ");
  capStatus.replaceChildren(
    h(
      "div",
      { class: "section-title usage-subtitle" },
      title,
      h("span", { class: "muted", text: `${PERIOD[c.period].label}, starts again on ${dayWords(dayPlus(c.periodEnd, 1))}` }),
    ),
    h(
      "p",
      { class: "cap-line", "data-tone": tone, "data-testid": "cap-line" },
      tone === "ok" ? null : icon(tone === "bad" ? "bad" : "warn"),
      h("span", { text: line }),
    ),
    bar,
    h("p", { class: "muted small mt-quarter", text: words }),
    enforcement(v),
  );
}

// ---------- enforcement at the provider (OpenRouter management key) ----------

const mgmt = {
  input: h("input", {
    type: "password",
    id: "mgmt-key",
    class: "input",
    autocomplete: "off",
    spellcheck: "false",
    "data-testid": "mgmt-key",
    "aria-describedby": "mgmt-help",
  }) as HTMLInputElement,
  save: h("button", {
    type: "button",
    class: "btn btn-secondary btn-small",
    "data-testid": "mgmt-save",
    text: "Let OpenRouter enforce it",
  }) as HTMLButtonElement,
  forget: h("button", {
    type: "button",
    class: "btn btn-link btn-small",
    "data-testid": "mgmt-forget",
    text: "Forget the management key",
  }) as HTMLButtonElement,
  slot: h("div", { class: "error-slot" }),
};

mgmt.save.addEventListener("click", () => {
  const key = mgmt.input.value.trim();
  if (!key) return mgmt.input.focus();
  // The key leaves the page once; the field is cleared before the answer comes back.
  mgmt.input.value = "";
  void act(mgmt.save, "Checking with OpenRouter…", mgmt.slot, async () => {
    await settle(await providerManagementSave(key, days));
  });
});

mgmt.forget.addEventListener("click", () =>
  void act(mgmt.forget, "Forgetting…", mgmt.slot, async () => {
    await settle(await providerManagementForget(days));
  }),
);

/** Who holds the cap: OpenRouter (with a management key), or only Clawkeeper. */
function enforcement(v: UsageView): HTMLElement {
  const p = v.provider;
  const box = h("div", { class: "mt-quarter", "data-testid": "cap-enforced" });
  if (!p) {
    box.append(
      h("p", {
        class: "small",
        text: "Clawkeeper warns you (and can pause your assistant); your provider can't be told to stop at the cap from here.",
      }),
    );
    return box;
  }
  if (p.capEnforced) {
    box.append(
      h("p", { class: "small", text: `Enforced by ${p.name}: your key stops at the cap even if Clawkeeper is closed.` }),
      mgmt.forget,
      mgmt.slot,
    );
    return box;
  }
  if (p.managementKey) {
    box.append(
      h("p", {
        class: "small",
        text: `Clawkeeper couldn't set the cap at ${p.name} yet${p.error ? `: ${p.error}` : "."} It still warns you. Save the cap again to retry.`,
      }),
      mgmt.forget,
      mgmt.slot,
    );
    return box;
  }
  box.append(
    h("p", {
      class: "small",
      text: `Clawkeeper warns you. To make ${p.name} itself stop your key at the cap, even when Clawkeeper is closed, add a management key.`,
    }),
    h(
      "div",
      { class: "row mt-quarter" },
      h("label", { for: "mgmt-key", class: "visually-hidden", text: `${p.name} management key` }),
      mgmt.input,
      mgmt.save,
    ),
    h("p", {
      class: "muted small",
      id: "mgmt-help",
      text: "Create one on openrouter.ai under Settings → Management keys. It stays in your keychain and is used only to set this cap and read your spend.",
    }),
    mgmt.slot,
  );
  return box;
}

// ---------- charts ----------

const rangeName = (n: number) => `${n} days`;
const rangeGroup = h(
  "div",
  { class: "segmented", role: "radiogroup", "aria-label": "Show the last", "data-testid": "usage-range" },
  ...RANGES.map((n) =>
    h(
      "label",
      {},
      h("input", {
        type: "radio",
        name: "usage-days",
        value: String(n),
        "data-testid": `usage-range-${n}`,
        on: {
          change: () => {
            days = n;
            sessionStorage.setItem(DAYS_KEY, String(n));
            void load();
          },
        },
      }),
      h("span", { text: rangeName(n) }),
    ),
  ),
);
const rangeTotal = h("p", { class: "muted small", "data-testid": "usage-range-total" });
const chartsBody = h("div", { class: "charts" });

/** Up to 4 models by cost in the range, then "Other models". */
function modelGroups(v: UsageView): { keys: string[]; names: string[]; of: (model: string) => number } {
  const top = v.models.slice(0, v.models.length > 5 ? 4 : 5).map((r) => r.key);
  const other = v.models.length > top.length;
  return {
    keys: top,
    names: [...top.map(modelName), ...(other ? ["Other models"] : [])],
    of: (m) => {
      const i = top.indexOf(m);
      return i >= 0 ? i : top.length;
    },
  };
}

/** The numbers behind a chart, for everyone: a table one click away. */
function numbersTable(caption: string, head: string[], rows: (string | number)[][]): HTMLElement {
  return h(
    "details",
    { class: "chart-numbers" },
    h("summary", { text: "Show the numbers" }),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "usage-table" },
        h("caption", { class: "visually-hidden", text: caption }),
        h("thead", {}, h("tr", {}, ...head.map((c, i) => h("th", { scope: "col", class: i ? "num" : "", text: c })))),
        h(
          "tbody",
          {},
          ...rows.map((r) =>
            h("tr", {}, ...r.map((c, i) => (i ? h("td", { class: "num", text: String(c) }) : h("th", { scope: "row", text: String(c) })))),
          ),
        ),
      ),
    ),
  );
}

function legend(names: string[]): HTMLElement {
  return h(
    "ul",
    { class: "legend", "aria-hidden": "true" },
    ...names.map((n, i) => h("li", {}, h("span", { class: `swatch c${i + 1}` }), h("span", { text: n }))),
  );
}

const HOVER_HINT = "Point at a day to see its numbers.";

interface Figure {
  el: HTMLElement;
  spec: ChartSpec;
}

function figure(id: string, title: string, summary: string, extra: Node[], spec: Omit<ChartSpec, "host" | "readout">, table: HTMLElement): Figure {
  const host = h("div", { class: "chart", role: "img", "aria-label": `${title}. ${summary}`, "data-testid": `chart-${id}` });
  // The hint once, under the first chart; the others keep the line free for the numbers.
  const hint = id === "spend" ? HOVER_HINT : "";
  const readout = h("p", { class: "chart-readout", "aria-hidden": "true", "data-hint": hint, text: hint });
  const el = h(
    "figure",
    { class: "chart-figure", id: `chart-${id}` },
    h("figcaption", {}, h("span", { class: "chart-title", text: title }), h("span", { class: "muted small", text: summary })),
    ...extra,
    host,
    readout,
    table,
  );
  return { el, spec: { ...spec, host, readout } };
}

function spendFigure(v: UsageView, dayList: string[]): Figure {
  const g = modelGroups(v);
  const index = new Map(dayList.map((d, i) => [d, i]));
  const series = g.names.map(() => dayList.map(() => 0));
  for (const r of v.modelDaily) {
    const i = r.day ? index.get(r.day) : undefined;
    if (i === undefined) continue;
    series[g.of(r.key)]![i]! += r.cost;
  }
  const totals = dayList.map((_, i) => series.reduce((s, ser) => s + ser[i]!, 0));
  let peak = 0;
  totals.forEach((t, i) => (t > totals[peak]! ? (peak = i) : 0));
  const summary = `${money(v.rangeTotals.cost)} in ${rangeName(days)}; the most on ${dayLong(dayList[peak]!)} (${money(totals[peak]!)}).`;
  return figure(
    "spend",
    "Spend per day",
    summary,
    [legend(g.names)],
    { kind: "money", days: dayList, names: g.names, series },
    numbersTable(
      "Spend per day by model",
      ["Day", ...g.names, "Total"],
      dayList
        .map((d, i) => [dayLong(d), ...series.map((s) => money(s[i]!)), money(totals[i]!)])
        .filter((_, i) => totals[i]! > 0)
        .reverse(),
    ),
  );
}

function tokensFigure(v: UsageView, dayList: string[]): Figure {
  const index = new Map(dayList.map((d, i) => [d, i]));
  const read = dayList.map(() => 0);
  const written = dayList.map(() => 0);
  for (const r of v.daily) {
    const i = r.day ? index.get(r.day) : undefined;
    if (i === undefined) continue;
    written[i] += r.tokens.output;
    read[i] += Math.max(0, r.tokens.total - r.tokens.output);
  }
  const names = ["Read by the model", "Written by the model"];
  const t = v.rangeTotals.tokens;
  return figure(
    "tokens",
    "Tokens per day",
    `${tokens(t.total)} tokens in ${rangeName(days)}, ${tokens(t.output)} of them written by the model.`,
    [legend(names)],
    { kind: "tokens", days: dayList, names, series: [read, written] },
    numbersTable(
      "Tokens per day",
      ["Day", ...names, "Total"],
      dayList
        .map((d, i) => [dayLong(d), WHOLE.format(read[i]!), WHOLE.format(written[i]!), WHOLE.format(read[i]! + written[i]!)])
        .filter((_, i) => read[i]! + written[i]! > 0)
        .reverse(),
    ),
  );
}

/** Spend so far in the cap's period, day by day, against the cap. */
function capFigure(v: UsageView): Figure | null {
  const c = v.cap;
  const src = capSource(v);
  if (!c || !src) return null;
  const dayList = daysBetween(c.periodStart, c.periodEnd);
  const cost = new Map(src.daily.map((r) => [r.day ?? "", r.cost]));
  // Spent by the end of day d = spent in the period − what came after d (all within the view).
  const known = (d: string) => d >= dayPlus(src.from, -1) && d <= v.today;
  let after = 0;
  const cum: (number | null)[] = dayList.map(() => null);
  for (let i = dayList.length - 1; i >= 0; i--) {
    const d = dayList[i]!;
    if (d > v.today) continue;
    if (!known(d)) break;
    cum[i] = Math.max(0, c.spent - after);
    after += cost.get(d) ?? 0;
  }
  const name = c.period === "monthly" ? "This month against your cap" : "This week against your cap";
  const summary = `${money(c.spent)} of ${money(c.amount)} so far (${percent(c.percent)}), ${dayWords(c.periodStart)} to ${dayWords(c.periodEnd)}.`;
  const f = figure(
    "cap",
    name,
    summary,
    [legend(["Spent so far", "Your cap"])],
    { kind: "cap", days: dayList, names: ["Spent so far"], series: [cum], cap: c.amount, tone: capTone(c.percent) },
    numbersTable(
      name,
      ["Day", "Spent so far", "Cap"],
      dayList
        .map((d, i) => [dayLong(d), cum[i] === null ? "—" : money(cum[i]!), money(c.amount)])
        .filter((_, i) => cum[i] !== null)
        .reverse(),
    ),
  );
  f.el.dataset.tone = capTone(c.percent);
  return f;
}

/** A view that covers the cap's whole period, when the chosen range (7 days) doesn't. */
let wide: UsageView | undefined;
let wideFor: UsageView | undefined;

/** The days behind the cap chart: the view itself, or a wider one asked for once (fast: the local ledger). */
function capSource(v: UsageView): UsageView | null {
  const c = v.cap;
  if (!c || c.period === "daily") return null;
  const covers = (w: UsageView) => c.periodStart >= dayPlus(w.from, -1) && w.today === v.today;
  if (covers(v)) return v;
  if (wide && covers(wide) && wide.cap?.spent === c.spent) return wide;
  if (wideFor !== v) {
    wideFor = v;
    usageView(daysBetween(c.periodStart, v.today).length).then(
      (w) => {
        wide = w;
        if (view === v) renderCharts(v);
      },
      () => {}, // the cap chart just stays away; the bar above says where the cap stands
    );
  }
  return null;
}

let chartsModule: Promise<typeof import("./usage-charts")> | undefined;

/**
 * The charting code. uPlot makes a number formatter from `navigator.language` when it
 * loads, and WebKit refuses that when the app runs with LANG=C ("invalid language tag: C"):
 * then the page's language is given as a locale it takes (the system's default, else US
 * English).
 */
function loadCharts(): Promise<typeof import("./usage-charts")> {
  try {
    new Intl.NumberFormat(navigator.language);
  } catch {
    const fallback = LOCALE ?? "en-US";
    Object.defineProperty(navigator, "language", { get: () => fallback, configurable: true });
  }
  return import("./usage-charts");
}

function renderCharts(v: UsageView) {
  for (const input of rangeGroup.querySelectorAll<HTMLInputElement>("input")) input.checked = Number(input.value) === days;
  const t = v.rangeTotals;
  rangeTotal.textContent = v.daily.length
    ? `${money(t.cost)} and ${tokens(t.tokens.total)} tokens in the last ${rangeName(days)}.`
    : "";
  // Unchanged numbers: leave the charts (and any open table, or focus) alone.
  const key = JSON.stringify([days, v.from, v.to, v.daily, v.modelDaily, v.cap, capSource(v)?.from ?? null]);
  if (chartsBody.dataset.key === key) return;
  chartsBody.dataset.key = key;
  if (!v.daily.length) {
    const never = !v.summary.month && !v.summary.syncedAt;
    chartsBody.replaceChildren(
      h(
        "div",
        { class: "usage-empty", "data-testid": "usage-empty" },
        h("p", {
          text: never
            ? "Nothing used yet. When you chat with your assistant, what it costs shows up here, day by day."
            : `Nothing used in the last ${rangeName(days)}.`,
        }),
      ),
    );
    void chartsModule?.then((m) => m.destroyCharts());
    return;
  }
  const dayList = daysBetween(v.from, v.to);
  const figs = [spendFigure(v, dayList), tokensFigure(v, dayList), capFigure(v)].filter((f): f is Figure => !!f);
  chartsBody.replaceChildren(...figs.map((f) => f.el));
  chartsModule ??= loadCharts();
  chartsModule.then(
    (m) => m.drawCharts(figs.map((f) => f.spec)),
    (e: unknown) => {
      // Without the charts the numbers are still there: open the tables. The next update
      // tries the charts again (a failed load is not kept).
      for (const d of chartsBody.querySelectorAll("details")) d.open = true;
      chartsModule = undefined;
      delete chartsBody.dataset.key;
      chartsBody.dataset.chartsError = String(e);
      console.warn("the usage charts could not be loaded", e);
    },
  );
}

// ---------- breakdown: by model, where, conversation ----------

const TABS: { id: Tab; label: string }[] = [
  { id: "model", label: "By model" },
  { id: "channel", label: "Where you chatted" },
  { id: "session", label: "Top conversations" },
];
const tabList = h("div", { class: "tabs", role: "tablist", "aria-label": "Breakdown" });
const tabPanel = h("div", { class: "tab-panel", role: "tabpanel", id: "usage-tabpanel", tabindex: "0" });
const tabButtons = TABS.map((t, i) =>
  h("button", {
    type: "button",
    role: "tab",
    class: "tab",
    id: `usage-tab-${t.id}`,
    "data-testid": `usage-tab-${t.id}`,
    "aria-controls": "usage-tabpanel",
    text: t.label,
    on: {
      click: () => selectTab(t.id),
      keydown: (e: KeyboardEvent) => {
        const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
        const jump = e.key === "Home" ? 0 : e.key === "End" ? TABS.length - 1 : -1;
        if (!step && jump < 0) return;
        e.preventDefault();
        const next = TABS[jump >= 0 ? jump : (i + step + TABS.length) % TABS.length]!;
        selectTab(next.id);
        byId(`usage-tab-${next.id}`).focus();
      },
    },
  }),
);
tabList.append(...tabButtons);

function selectTab(id: Tab) {
  tab = id;
  if (view) renderBreakdown(view);
}

function rowName(r: UsageRow): { name: string; sub?: string; title?: string } {
  switch (tab) {
    case "model":
      return { name: modelName(r.key), title: r.key, ...(r.calls ? { sub: `${WHOLE.format(r.calls)} requests` } : {}) };
    case "channel":
      return { name: channelName(r.key) };
    case "session": {
      const ch = r.key.split(":").find((bit) => Object.hasOwn(CHANNELS, bit));
      return { name: r.label ?? "A conversation without a name", title: r.key, ...(ch ? { sub: channelName(ch) } : {}) };
    }
  }
}

function renderBreakdown(v: UsageView) {
  for (const b of tabButtons) {
    const on = b.id === `usage-tab-${tab}`;
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1;
  }
  tabPanel.setAttribute("aria-labelledby", `usage-tab-${tab}`);
  parts.breakdown.hidden = !v.daily.length;
  const rows = tab === "model" ? v.models : tab === "channel" ? v.channels : v.sessions;
  const total = v.rangeTotals.cost || 1;
  if (!rows.length) {
    tabPanel.replaceChildren(h("p", { class: "empty", text: "Nothing here for this range." }));
    return;
  }
  tabPanel.replaceChildren(
    h(
      "table",
      { class: "usage-table breakdown", "data-testid": `usage-breakdown-${tab}` },
      h("caption", { class: "visually-hidden", text: `${TABS.find((t) => t.id === tab)!.label}, last ${rangeName(days)}` }),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col", text: tab === "model" ? "Model" : tab === "channel" ? "Where" : "Conversation" }),
          h("th", { scope: "col", class: "num", text: "Cost" }),
          h("th", { scope: "col", class: "num", text: "Tokens" }),
        ),
      ),
      h(
        "tbody",
        {},
        ...rows.map((r) => {
          const n = rowName(r);
          const share = Math.round((100 * r.cost) / total);
          return h(
            "tr",
            {},
            h(
              "th",
              { scope: "row", title: n.title },
              h("span", { class: "row-name", text: n.name }),
              n.sub ? h("span", { class: "row-sub", text: n.sub }) : null,
              h("progress", { class: "share", max: "100", value: String(share), "aria-label": `${share}% of the cost` }),
            ),
            h("td", { class: "num", text: money(r.cost) }),
            h("td", { class: "num", title: `${WHOLE.format(r.tokens.total)} tokens`, text: tokens(r.tokens.total) }),
          );
        }),
      ),
    ),
  );
}

// ---------- what the provider says ----------

function renderProvider(v: UsageView) {
  const p = v.provider;
  parts.provider.hidden = !p;
  if (!p) return;
  const rows: [string, string][] = [];
  if (p.today !== undefined) rows.push(["Today", money(p.today)]);
  if (p.month !== undefined) rows.push(["This month", money(p.month)]);
  if (p.limit !== undefined && p.limit !== null)
    rows.push([
      "Limit on your key",
      `${p.limitRemaining !== undefined ? `${money(p.limitRemaining)} left of ` : ""}${money(p.limit)}${
        p.limitReset ? `, resets ${Object.hasOwn(PERIOD, p.limitReset) ? PERIOD[p.limitReset].name : p.limitReset}` : ""
      }`,
    ]);
  else rows.push(["Limit on your key", "No limit"]);
  if (p.creditsLeft !== undefined) rows.push(["Credits left", money(p.creditsLeft)]);
  const differs = p.differs.map(
    (d) =>
      `Clawkeeper counted ${money(d.app)}, ${p.name} says ${money(d.provider)} for ${d.period === "today" ? "today" : d.period === "month" ? "this month" : dayWords(d.period)}.`,
  );
  const children: (Node | null)[] = [
    h(
      "div",
      { class: "section-title usage-subtitle" },
      h("h3", { text: `What ${p.name} says` }),
      h("span", {
        class: "muted",
        title: new Date(p.checkedAt).toLocaleString(),
        text: timeAgo(p.checkedAt) ? `checked ${timeAgo(p.checkedAt)}` : "",
      }),
    ),
    p.error
      ? h("p", { class: "usage-fresh is-stale" }, icon("warn"), h("span", { text: `Couldn't ask ${p.name}: ${p.error}` }))
      : null,
    h("dl", { class: "kv provider-kv", "data-testid": "provider-usage" }, ...rows.flatMap(([k, val]) => [h("dt", { text: k }), h("dd", { text: val })])),
    differs.length
      ? h(
          "div",
          { class: "notice mt-3q", "data-testid": "provider-differs" },
          icon("pending"),
          h(
            "div",
            { class: "notice-body" },
            ...differs.map((t) => h("p", { text: t })),
            h("p", {
              class: "muted",
              text: `${p.name} also counts use of your key outside this assistant, and its numbers arrive with a delay, so the two can differ a little.`,
            }),
          ),
        )
      : null,
  ];
  parts.provider.replaceChildren(...children.filter((c): c is Node => !!c));
}

// ---------- export ----------

const exportBy = h(
  "select",
  { class: "input", id: "export-by", "data-testid": "export-by" },
  h("option", { value: "day", text: "By day" }),
  h("option", { value: "model", text: "By model" }),
  h("option", { value: "channel", text: "By where you chatted" }),
  h("option", { value: "session", text: "By conversation" }),
  h("option", { value: "day-model", text: "By day and model" }),
);
const exportRange = h("p", { class: "muted small" });
const exportResult = h("div", { class: "usage-slot", role: "status" });
const exportButtons = (["csv", "json"] as ExportFormat[]).map((f) => {
  const b = h("button", {
    type: "button",
    class: "btn btn-secondary btn-small",
    id: `export-${f}`,
    "data-testid": `export-${f}`,
    text: `Export ${f.toUpperCase()}`,
  });
  b.addEventListener("click", () => {
    if (!view) return;
    const { from, to } = view;
    void act(b, "Saving…", exportResult, async () => {
      const { path } = await usageExport(f, exportBy.value as ExportBy, from, to);
      exportResult.replaceChildren(
        h("p", { class: "saved small", "data-testid": "export-saved" }, icon("ok"), h("span", {}, "Saved to ", h("code", { text: path }))),
      );
    });
  });
  return b;
});

function renderExport(v: UsageView) {
  parts.export.hidden = !v.daily.length;
  exportRange.textContent = `The last ${rangeName(days)} (${dayWords(v.from)} to ${dayWords(v.to)}), saved as a file in your Downloads folder.`;
}

// ---------- built once ----------

function buildStatic() {
  parts.charts.replaceChildren(
    h("div", { class: "usage-range-row" }, h("h3", { text: "Day by day" }), rangeGroup),
    rangeTotal,
    chartsBody,
  );
  parts.breakdown.replaceChildren(h("h3", { class: "visually-hidden", text: "Breakdown" }), tabList, tabPanel);
  parts.export.replaceChildren(
    h("h3", { text: "Export" }),
    exportRange,
    h(
      "div",
      { class: "row export-row" },
      h("label", { class: "visually-hidden", for: "export-by", text: "Group the export" }),
      exportBy,
      ...exportButtons,
    ),
    exportResult,
  );
}

// ---------- wiring ----------

/** The backend's usage events: the numbers moved (or an update failed), or a spend alert. */
export function onUsageEvent(e: BackendEvent) {
  if (e.type === "spend_alert") {
    // A higher level replaces a lower one: one threshold notice at a time (and one spike).
    const level = e.alert.kind === "threshold" ? e.alert.level : 0;
    alerts = [
      { summary: e.summary, body: e.body, kind: e.alert.kind, level },
      ...alerts.filter((a) => a.kind !== e.alert.kind),
    ];
    renderAlerts();
    void load();
  } else if (e.type === "usage") {
    void load();
  }
}

/** Fill the section. `pausedChanged`: the hero offers "Resume" while paused at the cap. */
export function initUsage(pausedChanged: (paused: boolean) => void): Promise<void> {
  onPausedChange = pausedChanged;
  root = byId("usage-body");
  // Keep "Updated 3 minutes ago" honest without asking the backend.
  window.setInterval(() => view && renderHead(view), 60_000);
  return load();
}
