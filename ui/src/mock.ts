// In-memory stand-in for the Rust backend, used only when the pages run in a
// plain browser (no Tauri). It follows the same contract as api.ts so every
// screen can be viewed and clicked through without the desktop app.
//
// Pick a starting point with `?mock=<scenario>` in the URL:
//   fresh | installing | stopped | healthy (default) | degraded | error | locked
//   capped (paused at the spend cap) | usage-error (the last usage update failed)
//   rotation-unfinished (a key rotation left half-way) | rotation-fails (the next one turns back)
//   | keys-due (the access token is older than the 90-day reminder)
// Usage: `fresh` has none yet; every other scenario has a seeded 90-day history.
// The state is kept in sessionStorage so it survives moving between pages.

import type { ApiError, BackendEvent, ChatMessage, Check, Overview, Rotation, SaveProviderArgs, SpendCap } from "./api";
import { capBounds, type MockUsage, summary, todayUtc, usageScenario, view } from "./mock-usage";
import * as mockKeys from "./mock-keys";

const STORE_KEY = "clawkeeper-mock";

const INSTALL_STEPS = [
  "Checking this computer",
  "Downloading the assistant",
  "Installing the assistant",
  "Writing a private configuration",
  "Connecting your API key",
];

const CHECKS: Omit<Check, "status">[] = [
  { id: "private_link", label: "Only this computer can reach your assistant" },
  { id: "token", label: "A password protects your assistant" },
  { id: "key_storage", label: "Your API key is kept in your keychain" },
  { id: "no_phone_home", label: "Your assistant doesn't report back to anyone" },
];

interface MockState {
  overview: Overview;
  history: ChatMessage[];
  usage: MockUsage;
  keys: mockKeys.MockKeys;
}

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

function checksWith(status: Check["status"]): Check[] {
  return CHECKS.map((c) => ({ ...c, status }));
}

function scenario(name: string): MockState {
  return { ...overviewScenario(name), usage: usageScenario(name), keys: mockKeys.keysScenario(name) };
}

function overviewScenario(name: string): Omit<MockState, "usage" | "keys"> {
  const provider = {
    configured: true,
    kind: "openrouter" as const,
    model: "openrouter/auto",
    keySavedAt: minutesAgo(60 * 26),
    keyFingerprint: "sha256:7f3a…c91e",
  };
  const base: Overview = {
    instance: { state: "healthy", version: "2026.1.14", since: minutesAgo(42), restarts: 0 },
    install: { state: "ready" },
    provider,
    keychain: { status: "ok" },
    checks: checksWith("pass"),
    assistant: { place: "local", name: "This computer", path: "local", pathNote: "Chat stays on this computer." },
    activity: [
      { at: minutesAgo(42), action: "Started your assistant", detail: "On this computer" },
      { at: minutesAgo(60 * 26), action: "Saved your API key", detail: "OpenRouter, in your keychain" },
      { at: minutesAgo(60 * 26 + 3), action: "Set up your assistant", detail: "Version 2026.1.14" },
    ],
  };
  const history: ChatMessage[] = [
    { role: "user", text: "Can you help me plan meals for this week?", at: minutesAgo(9) },
    {
      role: "assistant",
      text:
        "Of course! Tell me how many people you're cooking for and anything you'd like to avoid, " +
        "and I'll put together seven simple dinners with one shopping list.",
      at: minutesAgo(9),
    },
  ];
  switch (name) {
    case "fresh":
      return {
        overview: {
          instance: { state: "not_installed", restarts: 0 },
          install: { state: "missing" },
          provider: { configured: false },
          keychain: { status: "ok" },
          checks: checksWith("pending"),
          activity: [],
          assistant: { place: "local", name: "This computer", path: "local", pathNote: "Chat stays on this computer." },
        },
        history: [],
      };
    case "installing":
      return {
        overview: {
          ...overviewScenario("fresh").overview,
          instance: { state: "installing", restarts: 0 },
          install: { state: "installing", step: INSTALL_STEPS[1], done: 1, total: INSTALL_STEPS.length, etaSeconds: 95 },
          provider,
        },
        history: [],
      };
    case "stopped":
      return {
        overview: {
          ...base,
          instance: { state: "stopped", version: "2026.1.14", since: minutesAgo(5), restarts: 0 },
          checks: checksWith("pending"),
          activity: [{ at: minutesAgo(5), action: "Stopped your assistant", detail: "You asked it to stop" }, ...base.activity],
        },
        history,
      };
    case "degraded":
      return {
        overview: {
          ...base,
          instance: {
            ...base.instance,
            state: "degraded",
            detail: "Your assistant is running, but one safety check failed.",
            restarts: 1,
          },
          checks: checksWith("pass").map((c) =>
            c.id === "private_link"
              ? { ...c, status: "fail", detail: "Another program can reach your assistant from the network." }
              : c,
          ),
        },
        history,
      };
    case "error":
      return {
        overview: {
          ...base,
          instance: {
            state: "error",
            detail: "Your assistant stopped unexpectedly three times.",
            version: "2026.1.14",
            since: minutesAgo(2),
            restarts: 3,
          },
          checks: checksWith("pending"),
        },
        history,
      };
    case "capped":
      return {
        overview: {
          ...base,
          instance: {
            state: "stopped",
            detail: "Paused: the spend cap was reached.",
            version: "2026.1.14",
            since: minutesAgo(35),
            restarts: 0,
          },
          checks: checksWith("pending"),
          activity: [
            { at: minutesAgo(35), action: "Paused your assistant", detail: "The spend cap was reached" },
            ...base.activity,
          ],
        },
        history,
      };
    case "usage-error":
      return { overview: base, history };
    case "locked":
      return {
        overview: {
          ...overviewScenario("fresh").overview,
          keychain: { status: "locked", hint: "Unlock your keychain (log in again or open Keychain Access), then try again." },
        },
        history: [],
      };
    default:
      return { overview: base, history };
  }
}

function load(): MockState {
  const param = new URLSearchParams(location.search).get("mock");
  if (param) {
    const s = scenario(param);
    sessionStorage.setItem(STORE_KEY, JSON.stringify(s));
    return s;
  }
  try {
    const raw = sessionStorage.getItem(STORE_KEY);
    if (raw) {
      const s = JSON.parse(raw) as MockState;
      s.usage ??= usageScenario("healthy");
      s.keys ??= mockKeys.keysScenario("healthy");
      return s;
    }
  } catch {
    /* fall through to the default */
  }
  return scenario("healthy");
}

const state = load();
const ov = () => state.overview;
const save = () => sessionStorage.setItem(STORE_KEY, JSON.stringify(state));

// ---------- events ----------

const handlers = new Set<(e: BackendEvent) => void>();
function emit(e: BackendEvent) {
  save();
  for (const h of handlers) h(structuredClone(e));
}
function log(action: string, detail: string) {
  ov().activity.unshift({ at: new Date().toISOString(), action, detail });
  ov().activity.length = Math.min(ov().activity.length, 20);
}
const fail = (code: string, message: string, hint?: string): never => {
  throw { code, message, ...(hint ? { hint } : {}) } satisfies ApiError;
};

// ---------- simulated long work ----------

let installTimer: number | undefined;
let instanceTimer: number | undefined;

function setInstance(s: Overview["instance"]["state"], detail?: string) {
  const i = ov().instance;
  i.state = s;
  if (detail) i.detail = detail;
  else delete i.detail;
  i.since = new Date().toISOString();
  emit({ type: "instance", state: s, ...(detail ? { detail } : {}) });
}

function runInstall() {
  const total = INSTALL_STEPS.length;
  const tick = () => {
    const ins = ov().install;
    const done = ins.done ?? 0;
    if (done >= total) {
      ov().install = { state: "ready" };
      ov().instance.version = "2026.1.14";
      log("Set up your assistant", "Version 2026.1.14");
      emit({ type: "install", state: "ready", done: total, total });
      setInstance("stopped");
      return;
    }
    ov().install = {
      state: "installing",
      step: INSTALL_STEPS[done],
      done,
      total,
      etaSeconds: Math.max(5, (total - done) * 24),
    };
    emit({ type: "install", ...ov().install });
    ov().install.done = done + 1;
    installTimer = window.setTimeout(tick, 1100);
  };
  tick();
}

function runStart() {
  setInstance("starting", "Starting your assistant…");
  ov().checks = checksWith("pending");
  emit({ type: "checks", checks: ov().checks });
  instanceTimer = window.setTimeout(() => {
    ov().instance.version ??= "2026.1.14";
    log("Started your assistant", "On this computer");
    setInstance("healthy");
    let n = 0;
    const next = () => {
      if (n >= CHECKS.length) return;
      ov().checks[n]!.status = "pass";
      n++;
      emit({ type: "checks", checks: ov().checks });
      instanceTimer = window.setTimeout(next, 350);
    };
    next();
  }, 1400);
}

// Resume work that was under way when the page was left.
if (ov().install.state === "installing") {
  setTimeout(runInstall, 300);
} else if (ov().instance.state === "starting") {
  setTimeout(runStart, 300);
}

// ---------- chat ----------

interface Run {
  timer: number;
  text: string;
}
const runs = new Map<string, Run>();

function reply(message: string): string {
  const trimmed = message.trim().replace(/\s+/g, " ");
  const quote = trimmed.length > 120 ? `${trimmed.slice(0, 117)}…` : trimmed;
  return (
    `You said: “${quote}”.\n\n` +
    "This is the preview version of Clawkeeper running in a web browser, so I'm only repeating what you wrote. " +
    "In the app, your own assistant answers here."
  );
}

function streamReply(runId: string, message: string) {
  const full = reply(message);
  const words = full.split(/(?<=\s)/);
  let i = 0;
  const run: Run = { timer: 0, text: "" };
  runs.set(runId, run);
  const step = () => {
    if (/\bfail\b/i.test(message) && i === 0) {
      runs.delete(runId);
      emit({
        type: "chat",
        runId,
        state: "error",
        text: run.text,
        error: {
          code: "provider_auth",
          message: "OpenRouter didn't accept your API key.",
          hint: "Check the key in Setup, or sign in with OpenRouter again.",
        },
      });
      return;
    }
    if (i >= words.length) {
      runs.delete(runId);
      state.history.push({ role: "assistant", text: full, at: new Date().toISOString() });
      emit({ type: "chat", runId, state: "final", text: full });
      return;
    }
    run.text += words[i++];
    emit({ type: "chat", runId, state: "delta", text: run.text });
    run.timer = window.setTimeout(step, 45);
  };
  run.timer = window.setTimeout(step, 500);
}

// ---------- usage and spend ----------

const exported = new Map<string, number>();
const money = (d: number) => (d === 0 ? "$0.00" : Math.abs(d) < 0.01 ? `$${d.toFixed(3)}` : `$${d.toFixed(2)}`);
const PERIOD_WORDS = {
  daily: ["today", "daily"],
  weekly: ["this week", "weekly"],
  monthly: ["this month", "monthly"],
} as const;

function emitUsage() {
  emit({ type: "usage", ...summary(state.usage) });
}

/** The cap's levels reached this period, each told once; pause at 100 % if asked to. */
function checkSpend() {
  const u = state.usage;
  if (!u.cap) return;
  const c = u.cap;
  const [start] = capBounds(c.period, todayUtc());
  const spent = view(u, 1).cap?.spent ?? 0;
  for (const level of c.levels) {
    const key = `${start}:${level}`;
    if (spent + 1e-9 < (c.amount * level) / 100 || u.told.includes(key)) continue;
    u.told.push(key);
    const [when, name] = PERIOD_WORDS[c.period];
    const top = level >= 100;
    emit({
      type: "spend_alert",
      summary: top ? `Spend cap reached ${when}` : `${level}% of your spend cap used ${when}`,
      body: `Your assistant has used ${money(spent)} of your ${money(c.amount)} ${name} cap.${
        top ? " Open Status → Usage to raise the cap or resume." : ""
      }`,
      alert: { kind: "threshold", level, period: c.period, periodStart: start, spent, cap: c.amount },
    });
    if (top && c.pauseAtCap && !u.paused) {
      u.paused = true;
      log("Paused your assistant", "The spend cap was reached");
      if (["healthy", "degraded", "starting"].includes(ov().instance.state)) {
        clearTimeout(instanceTimer);
        setInstance("stopped", "Paused: the spend cap was reached.");
      }
    }
  }
}

// ---------- keys ----------

const assistantUp = () => ["healthy", "degraded"].includes(ov().instance.state);
const emitRotation = (r: Rotation) => emit({ type: "rotation", ...r });

// ---------- commands ----------

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fingerprint(key: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  const hex = h.toString(16).padStart(8, "0");
  return `sha256:${hex.slice(0, 4)}…${hex.slice(4)}`;
}

const commands: Record<string, (args: Record<string, unknown>) => unknown> = {
  get_overview: () => structuredClone(ov()),

  save_provider: (raw) => {
    const a = raw as unknown as SaveProviderArgs;
    if (ov().keychain.status !== "ok")
      fail(
        "keychain_locked",
        "Your keychain is locked, so the key can't be saved.",
        "Unlock your keychain, then try again.",
      );
    if (!a.apiKey || a.apiKey.trim().length < 8 || /bad/i.test(a.apiKey))
      fail(
        "provider_auth",
        a.kind === "openrouter" ? "OpenRouter didn't accept this API key." : "The provider didn't accept this API key.",
        "Check that you copied the whole key, then try again.",
      );
    if (a.kind === "openai_compatible" && !/^https?:\/\//.test(a.baseUrl ?? ""))
      fail("invalid_base_url", "That address doesn't look right.", "It should start with https://");
    ov().provider = {
      configured: true,
      kind: a.kind,
      model: a.model,
      keySavedAt: new Date().toISOString(),
      keyFingerprint: fingerprint(a.apiKey),
      ...(a.baseUrl ? { baseUrl: a.baseUrl } : {}),
    };
    log("Saved your API key", `${a.kind === "openrouter" ? "OpenRouter" : "Your provider"}, in your keychain`);
    emit({ type: "provider", configured: true });
  },

  start_openrouter_sign_in: () => {
    setTimeout(() => {
      ov().provider = {
        configured: true,
        kind: "openrouter",
        model: "openrouter/auto",
        keySavedAt: new Date().toISOString(),
        keyFingerprint: "sha256:a41b…0d7c",
      };
      log("Signed in with OpenRouter", "API key saved in your keychain");
      emit({ type: "provider", configured: true });
    }, 1800);
  },

  install_runtime: () => {
    if (ov().install.state !== "missing") return;
    ov().install = { state: "installing", done: 0, total: INSTALL_STEPS.length };
    setInstance("installing");
    runInstall();
  },

  cancel_install: () => {
    clearTimeout(installTimer);
    if (ov().install.state === "installing") {
      ov().install = { state: "missing" };
      log("Cancelled setup", "Nothing was left half-installed");
      emit({ type: "install", state: "missing" });
      setInstance("not_installed");
    }
  },

  start_instance: () => {
    if (ov().install.state !== "ready")
      fail("not_installed", "Your assistant isn't set up yet.", "Open Setup to finish setting it up.");
    if (!ov().provider.configured)
      fail("provider_missing", "There's no API key yet.", "Connect a model provider in Setup.");
    if (["healthy", "starting"].includes(ov().instance.state)) return;
    runStart();
  },

  stop_instance: () => {
    clearTimeout(instanceTimer);
    if (ov().instance.state === "installing") return commands.cancel_install!({});
    setInstance("stopping");
    instanceTimer = window.setTimeout(() => {
      ov().checks = checksWith("pending");
      log("Stopped your assistant", "You asked it to stop");
      setInstance("stopped");
      emit({ type: "checks", checks: ov().checks });
    }, 700);
    return undefined;
  },

  chat_send: (a) => {
    const message = String(a.message ?? "");
    if (!["healthy", "degraded"].includes(ov().instance.state))
      fail("instance_not_running", "Your assistant isn't running.", "Start it, then send your message again.");
    state.history.push({ role: "user", text: message, at: new Date().toISOString() });
    const runId = `run-${Date.now().toString(36)}`;
    streamReply(runId, message);
    return { runId };
  },

  chat_history: () => structuredClone(state.history),

  chat_abort: (a) => {
    const runId = String(a.runId ?? "");
    const run = runs.get(runId);
    if (!run) return;
    clearTimeout(run.timer);
    runs.delete(runId);
    if (run.text) state.history.push({ role: "assistant", text: run.text, at: new Date().toISOString() });
    emit({ type: "chat", runId, state: "aborted", text: run.text });
  },

  // The preview has no server of its own: the status window shows "Add a server".
  servers: () => [],
  cloud_options: () =>
    fail("cloud_token_missing", "No Hetzner API token saved yet.", "Paste a Read & Write token from your Hetzner project's Security page."),

  status_detail: () => ({
    assistant: { place: "local", name: "This computer", path: "local", pathNote: "Chat stays on this computer." },
    version: "2026.9.6",
    update: { latest: "2026.9.6", available: false, checkedAt: new Date().toISOString() },
    ...(["healthy", "degraded"].includes(ov().instance.state) ? { upSince: new Date(Date.now() - 3 * 3600_000).toISOString(), gatewayMemory: 1.2 * 1024 ** 3, sessions: 7 } : {}),
    host: { memoryTotal: 16 * 1024 ** 3, memoryAvailable: 9.4 * 1024 ** 3, diskTotal: 512 * 1024 ** 3, diskFree: 201 * 1024 ** 3 },
    channels: ["Telegram"],
    notes: [],
  }),

  usage_view: (a) => view(state.usage, typeof a.days === "number" ? a.days : 30),

  usage_sync: (a) => {
    const u = state.usage;
    if (!["healthy", "degraded"].includes(ov().instance.state))
      fail(
        "assistant_not_running",
        "Your assistant isn't running, so its usage can't be brought up to date.",
        "Start it; the numbers shown are from when it last ran.",
      );
    if (u.error && !u.retried) {
      // The first "Update now" after a failure fails too, so the error panel can be seen.
      u.retried = true;
      emitUsage();
      fail(
        "gateway_unreachable",
        "Your assistant's usage couldn't be read: your assistant didn't answer.",
        "The numbers shown are from the last time it answered. Clawkeeper tries again on its own.",
      );
    }
    delete u.error;
    u.syncedAt = new Date().toISOString();
    checkSpend();
    emitUsage();
    return view(u, typeof a.days === "number" ? a.days : 30);
  },

  usage_export: (a) => {
    const by = String(a.by);
    const names: Record<string, string> = {
      day: "by-day",
      model: "by-model",
      channel: "by-channel",
      session: "by-conversation",
      "day-model": "by-day-and-model",
    };
    const day = /^\d{4}-\d{2}-\d{2}$/;
    if (!["csv", "json"].includes(String(a.format)) || !names[by] || !day.test(String(a.from)) || !day.test(String(a.to)))
      fail("usage_input", "That choice isn't one Clawkeeper knows.", "Pick one of the choices.");
    if (!a.save) return { text: "" };
    const stem = `clawkeeper-usage-${names[by]}-${String(a.from)}-to-${String(a.to)}`;
    const n = (exported.get(stem) ?? 0) + 1;
    exported.set(stem, n);
    return { path: `/home/you/Downloads/${stem}${n > 1 ? `-${n}` : ""}.${String(a.format)}` };
  },

  spend_cap_set: (a) => {
    const u = state.usage;
    if (a.amount === null || a.amount === undefined) {
      delete u.cap;
      log("Removed the spend cap", "");
    } else {
      const amount = Number(a.amount);
      if (!Number.isFinite(amount) || amount <= 0)
        fail("spend_cap_invalid", "The cap must be an amount above zero.", "Enter an amount in US dollars, such as 20.");
      if (amount > 1_000_000) fail("spend_cap_invalid", "The cap is too large.", "Enter an amount in US dollars, such as 20.");
      const levels = Array.isArray(a.levels) ? (a.levels as number[]) : [50, 80, 100];
      if (levels.some((l) => !Number.isInteger(l) || l < 1 || l > 100))
        fail("spend_cap_invalid", "Alert levels are percentages from 1 to 100.", "Use whole percentages from 1 to 100, such as 50, 80 and 100.");
      const period = (["daily", "weekly", "monthly"].includes(String(a.period)) ? a.period : "monthly") as SpendCap["period"];
      u.cap = { amount, period, levels: [...new Set(levels)].sort((x, y) => x - y), pauseAtCap: Boolean(a.pauseAtCap) };
      log("Set a spend cap", `$${amount.toFixed(2)} ${period}`);
    }
    checkSpend();
    emitUsage();
    return view(u, typeof a.days === "number" ? a.days : 30);
  },

  provider_management_save: (a) => {
    const key = String(a.secret ?? "").trim();
    if (!key.startsWith("sk-or-"))
      fail(
        "openrouter_management_needed",
        "This needs an OpenRouter management key, and the key Clawkeeper has is not one.",
        "Create a management key on openrouter.ai (Settings → Management keys) and paste it here.",
      );
    state.usage.managementKey = true;
    log("Saved an OpenRouter management key", "In your keychain");
    emitUsage();
    return view(state.usage, typeof a.days === "number" ? a.days : 30);
  },

  provider_management_forget: (a) => {
    state.usage.managementKey = false;
    log("Forgot the OpenRouter management key", "");
    emitUsage();
    return view(state.usage, typeof a.days === "number" ? a.days : 30);
  },

  spend_resume: (a) => {
    state.usage.paused = false;
    log("Resumed your assistant", "After a pause at the spend cap");
    if (ov().install.state === "ready" && ov().provider.configured && !["healthy", "starting"].includes(ov().instance.state))
      runStart();
    emitUsage();
    return view(state.usage, typeof a.days === "number" ? a.days : 30);
  },

  keys_inventory: () => mockKeys.inventory(state.keys),
  rotate_key: (a) => {
    const label = a.key === "gateway-token" ? "Assistant access token" : String(a.key);
    return mockKeys.rotateKey(state.keys, String(a.key), assistantUp(), emitRotation, save).then((r) => {
      log("Rotated a key", `${label}: ${r.oldFingerprint ?? "?"} → ${r.newFingerprint ?? "?"}`);
      return r;
    });
  },
  rotate_key_with: (a) => mockKeys.rotateProviderKeyWith(state.keys, String(a.secret), assistantUp(), emitRotation, save),
  // The mock's "browser" approves after a moment with a key of its own making.
  rotate_key_sign_in: async () => {
    await delay(2000);
    return mockKeys.rotateProviderKeyWith(state.keys, `sk-or-v1-mock-signed-in-${Date.now()}`, assistantUp(), emitRotation, save);
  },
  rotate_key_sign_in_cancel: () => undefined,
  openai_admin_save: () => ({ projectId: "proj_mock", serviceAccounts: 1 }),
  rotate_all: () => mockKeys.rotateAll(state.keys, assistantUp(), emitRotation, save),
  rotations_resume: () => mockKeys.resume(state.keys, assistantUp(), emitRotation, save),
  key_reminders: () => mockKeys.reminders(state.keys),
  set_key_reminders: (a) => {
    const r = mockKeys.setReminders(state.keys, a.everyDays ?? null);
    log("Changed the key reminders", r.everyDays === null ? "Never" : `Every ${r.everyDays} days`);
    save();
    return r;
  },

  open_window: (a) => {
    location.href = `./${String(a.name)}.html${a.section ? `#${String(a.section)}` : ""}`;
  },
};

export const mockTransport = {
  async invoke(cmd: string, args: Record<string, unknown> = {}): Promise<unknown> {
    await delay(120);
    const fn = commands[cmd];
    if (!fn) fail("unknown_command", `The preview doesn't know “${cmd}”.`);
    const out = fn!(args);
    save();
    return out;
  },
  async listen(handler: (e: BackendEvent) => void): Promise<() => void> {
    handlers.add(handler);
    return () => handlers.delete(handler);
  },
};
