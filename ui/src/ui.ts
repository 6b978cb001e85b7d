// Small DOM helpers shared by the three pages. No framework: build elements,
// swap them in. Text always goes in through textContent, never innerHTML.

import type { ApiError, AssistantInfo, InstanceInfo, InstanceState } from "./api";
import { openWindow } from "./api";

type Child = Node | string | null | undefined | false;
type Props = {
  class?: string;
  id?: string;
  text?: string;
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (e: HTMLElementEventMap[K]) => void }>;
} & Record<string, unknown>;

/** Create an element: h("button", { class: "btn", on: { click } }, "Save"). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = String(v);
    else if (k === "text") el.textContent = String(v);
    else if (k === "on") {
      for (const [ev, fn] of Object.entries(v as Record<string, EventListener>)) el.addEventListener(ev, fn);
    } else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

// ---------- icons (decorative; every icon sits next to words) ----------

const svg = (body: string) =>
  `<svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">${body}</svg>`;

export const ICONS = {
  ok: svg('<circle cx="12" cy="12" r="9"/><path d="m8 12.5 2.7 2.7L16 9.8"/>'),
  warn: svg('<path d="M10.3 4.2 2.8 17.5A2 2 0 0 0 4.5 20.5h15a2 2 0 0 0 1.7-3L13.7 4.2a2 2 0 0 0-3.4 0Z"/><path d="M12 9.5v4"/><path d="M12 17h.01"/>'),
  bad: svg('<circle cx="12" cy="12" r="9"/><path d="m15 9-6 6M9 9l6 6"/>'),
  idle: svg('<circle cx="12" cy="12" r="9"/><rect x="9" y="9" width="6" height="6" rx="1" fill="currentColor" stroke="none"/>'),
  busy: svg('<circle cx="12" cy="12" r="9" opacity=".25"/><path class="spin" d="M21 12a9 9 0 0 0-9-9"/>'),
  pending: svg('<circle cx="12" cy="12" r="9"/><path d="M12 7.5V12l3 2"/>'),
  key: svg('<circle cx="8" cy="15" r="4"/><path d="m10.8 12.2 8.7-8.7M16 6l3 3M14 8l2 2"/>'),
  lock: svg('<rect x="5" y="11" width="14" height="9" rx="2"/><path d="M8 11V8a4 4 0 0 1 8 0v3"/>'),
  computer: svg('<rect x="3" y="4" width="18" height="12" rx="2"/><path d="M8 20h8M12 16v4"/>'),
  cloud: svg('<path d="M7 18a4.5 4.5 0 0 1-.4-9A6 6 0 0 1 18 9.5a4 4 0 0 1-.5 8.5Z"/>'),
  server: svg('<rect x="4" y="4" width="16" height="7" rx="1.5"/><rect x="4" y="13" width="16" height="7" rx="1.5"/><path d="M8 7.5h.01M8 16.5h.01"/>'),
  chat: svg('<path d="M20 12a8 8 0 0 1-11.6 7.1L4 20l1-4.1A8 8 0 1 1 20 12Z"/>'),
  send: svg('<path d="M5 12h13M13 6l6 6-6 6"/>'),
  stop: svg('<rect x="7" y="7" width="10" height="10" rx="1.5" fill="currentColor" stroke="none"/>'),
} as const;

export type IconName = keyof typeof ICONS;

export function icon(name: IconName, cls = "icon"): HTMLSpanElement {
  const s = h("span", { class: cls, "aria-hidden": "true" });
  s.innerHTML = ICONS[name]; // constant markup only
  return s;
}

// ---------- status line ----------

export type Tone = "ok" | "busy" | "warn" | "bad" | "idle";

export interface StatusView {
  tone: Tone;
  label: string;
  detail: string;
}

/** The four words the user sees, as a pure function of the instance state. */
export function statusView(i: Pick<InstanceInfo, "state" | "detail">): StatusView {
  const d = i.detail;
  const map: Record<InstanceState, StatusView> = {
    healthy: { tone: "ok", label: "Working", detail: d ?? "Your assistant is running on this computer." },
    starting: { tone: "busy", label: "Starting…", detail: d ?? "Your assistant is starting up." },
    installing: { tone: "busy", label: "Starting…", detail: d ?? "Getting your assistant ready on this computer." },
    stopping: { tone: "busy", label: "Stopping…", detail: d ?? "Your assistant is shutting down." },
    degraded: { tone: "warn", label: "Needs attention", detail: d ?? "Your assistant is running, but something isn't right." },
    error: { tone: "bad", label: "Needs attention", detail: d ?? "Your assistant stopped because of a problem." },
    stopped: { tone: "idle", label: "Stopped", detail: d ?? "Your assistant is not running." },
    not_installed: { tone: "idle", label: "Not set up yet", detail: d ?? "Finish setup to start your assistant." },
  };
  return map[i.state];
}

const TONE_ICON: Record<Tone, IconName> = { ok: "ok", busy: "busy", warn: "warn", bad: "bad", idle: "idle" };

/** Fill the `#status-line` element. It is a polite live region (role=status). */
export function renderStatusLine(el: HTMLElement, i: Pick<InstanceInfo, "state" | "detail">): void {
  renderLine(el, i.state, statusView(i));
}

/** The status line when chat goes to the person's server rather than this computer. */
export function renderServerLine(el: HTMLElement, a: AssistantInfo): void {
  // Falling back from the tailnet to SSH is worth a look, not an alarm: chat still works.
  const fallback = a.path === "ssh" && a.pathNote.includes("instead");
  renderLine(el, "server", {
    tone: fallback ? "warn" : "ok",
    label: "On your server",
    detail: `${a.name}. ${a.pathNote} Nothing of it is public.`,
  });
  el.dataset.path = a.path;
}

function renderLine(el: HTMLElement, state: string, v: StatusView): void {
  el.dataset.state = state;
  el.dataset.tone = v.tone;
  el.replaceChildren(
    icon(TONE_ICON[v.tone], "icon status-icon"),
    h(
      "span",
      { class: "status-text" },
      h("strong", { class: "status-label", text: v.label }),
      " ",
      h("span", { class: "status-detail", text: v.detail }),
    ),
  );
}

// ---------- errors ----------

export interface Action {
  label: string;
  run: () => void | Promise<void>;
  primary?: boolean;
}

/** The likely fix for an error code, as a button. */
export function fixFor(err: ApiError, retry: () => void | Promise<void>): Action {
  switch (err.code) {
    case "provider_auth":
    case "provider_missing":
      return { label: "Check the key", run: () => openWindow("setup"), primary: true };
    case "not_installed":
      return { label: "Open setup", run: () => openWindow("setup"), primary: true };
    default: // keychain_locked, keychain_unavailable, and everything else
      return { label: "Try again", run: retry, primary: true };
  }
}

/**
 * What happened, what to do, a button for the likely fix, and "Show details"
 * with the error code for anyone who needs it. Never raw JSON or a stack.
 */
export function errorPanel(err: ApiError, actions: Action[], opts: { compact?: boolean } = {}): HTMLElement {
  const details = h(
    "details",
    { class: "error-details" },
    h("summary", { text: "Show details" }),
    h("p", {}, "Error code: ", h("code", { class: "error-code", text: err.code })),
  );
  return h(
    "div",
    { class: `error-panel${opts.compact ? " compact" : ""}`, role: "alert", "data-code": err.code },
    icon("warn", "icon error-icon"),
    h(
      "div",
      { class: "error-body" },
      h("p", { class: "error-message", text: err.message }),
      err.hint ? h("p", { class: "error-hint", text: err.hint }) : null,
      actions.length
        ? h(
            "div",
            { class: "row" },
            ...actions.map((a) =>
              h("button", {
                type: "button",
                class: `btn ${a.primary ? "btn-primary" : "btn-secondary"} btn-small`,
                text: a.label,
                on: { click: () => void a.run() },
              }),
            ),
          )
        : null,
      details,
    ),
  );
}

// ---------- words for times ----------

export function formatDate(iso?: string): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleDateString(undefined, { day: "numeric", month: "long", year: "numeric" });
}

export function formatTime(iso?: string): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
}

export function timeAgo(iso?: string): string {
  if (!iso) return "";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return "";
  const s = Math.round((Date.now() - t) / 1000);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  if (s < 45) return "just now";
  if (s < 3600) return rtf.format(-Math.round(s / 60), "minute");
  if (s < 86400) return rtf.format(-Math.round(s / 3600), "hour");
  if (s < 86400 * 7) return rtf.format(-Math.round(s / 86400), "day");
  return formatDate(iso);
}

export function etaWords(seconds?: number): string {
  if (seconds === undefined || seconds < 0) return "Working out how long this takes…";
  if (seconds < 60) return "Less than a minute left";
  const m = Math.round(seconds / 60);
  return m === 1 ? "About a minute left" : `About ${m} minutes left`;
}

/** Move keyboard focus to a heading/region after the view changes. */
export function focusFirst(root: HTMLElement): void {
  const target = root.querySelector<HTMLElement>("[data-autofocus]") ?? root.querySelector<HTMLElement>("h1, h2");
  if (!target) return;
  if (!target.matches("button, input, textarea, select, a[href]")) target.tabIndex = -1;
  target.focus({ preventScroll: false });
}

/**
 * The locale for Intl formatters: the system's, unless the engine refuses it (WebKit throws
 * "invalid language tag: C" for some formatters when the process runs with LANG=C), then
 * US English rather than no charts at all.
 */
export const LOCALE: string | undefined = (() => {
  try {
    new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" }).format(0);
    new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 }).format(1);
    return undefined;
  } catch {
    return "en-US";
  }
})();
