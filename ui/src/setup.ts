// First run: where the assistant lives → model provider & key → progress → ready.
// On a server (new at Hetzner, or one the person has): where → key → the status window's
// server form, which creates or connects the server and sets it up.

import "./styles.css";
import {
  type ApiError,
  type BackendEvent,
  type Overview,
  type ProviderKind,
  cancelInstall,
  getOverview,
  installRuntime,
  onEvent,
  openWindow,
  saveProvider,
  startInstance,
  startOpenrouterSignIn,
  stopInstance,
  toApiError,
} from "./api";
import {
  byId,
  errorPanel,
  etaWords,
  fixFor,
  focusFirst,
  formatDate,
  h,
  icon,
  type IconName,
  renderStatusLine,
} from "./ui";

const OPENROUTER_DEFAULT_MODEL = "openrouter/auto";

type View = "place" | "provider" | "progress" | "ready" | "server";
const sections: Record<View, HTMLElement> = {
  place: byId("step-place"),
  provider: byId("step-provider"),
  progress: byId("progress"),
  ready: byId("step-ready"),
  server: byId("step-server"),
};

/** Where the assistant lives, as chosen in step 1. */
type Place = "local" | "cloud" | "ssh";

const statusLine = byId("status-line");
const el = {
  placeNext: byId<HTMLButtonElement>("place-next"),
  kindOpenrouter: byId<HTMLInputElement>("provider-kind-openrouter"),
  kindCustom: byId<HTMLInputElement>("provider-kind-custom"),
  signinPanel: byId("signin-panel"),
  signin: byId<HTMLButtonElement>("signin-openrouter"),
  signinWait: byId("signin-wait"),
  pasteKey: byId<HTMLButtonElement>("paste-key-link"),
  form: byId<HTMLFormElement>("key-form"),
  baseUrlField: byId("base-url-field"),
  baseUrl: byId<HTMLInputElement>("base-url"),
  model: byId<HTMLInputElement>("model"),
  modelField: byId("model-field"),
  modelOptions: byId<HTMLDetailsElement>("model-options"),
  apiKeyField: byId("api-key").parentElement as HTMLElement,
  modelHelp: byId("model-help"),
  apiKey: byId<HTMLInputElement>("api-key"),
  save: byId<HTMLButtonElement>("save-provider"),
  signinInstead: byId<HTMLButtonElement>("signin-instead"),
  providerError: byId("provider-error"),
  providerSaved: byId("provider-saved"),
  providerBack: byId<HTMLButtonElement>("provider-back"),
  progressTitle: byId("progress-title"),
  progressNow: byId("progress-now"),
  progressBar: byId<HTMLProgressElement>("progress-bar"),
  progressCount: byId("progress-count"),
  progressEta: byId("progress-eta"),
  progressSteps: byId("progress-steps"),
  progressError: byId("progress-error"),
  progressRetry: byId<HTMLButtonElement>("progress-retry"),
  progressCancel: byId<HTMLButtonElement>("progress-cancel"),
  cancelNote: byId("cancel-note"),
  readyWarning: byId("ready-warning"),
  openChat: byId<HTMLButtonElement>("open-chat"),
  openStatus: byId<HTMLButtonElement>("open-status"),
};

for (const slot of document.querySelectorAll<HTMLElement>("[data-icon]")) {
  slot.append(icon(slot.dataset.icon as IconName));
}

let ov: Overview | undefined;
let view: View = "place";
let place: Place = "local";
let kind: ProviderKind = "openrouter";
let pasteMode = false;
let waitingForSignIn = false;

/** Where the progress flow is. "idle" = not running. */
type Phase = "idle" | "installing" | "starting" | "checks" | "cancelled" | "failed" | "done";
let phase: Phase = "idle";
let checksTimer: number | undefined;
/** The phase that was running when setup failed, to mark the right step. */
let failedAt: Phase = "idle";

function show(next: View, focus = true) {
  view = next;
  for (const [name, section] of Object.entries(sections)) section.hidden = name !== next;
  if (focus) focusFirst(sections[next]);
}

// ---------- step 1 ----------

el.placeNext.addEventListener("click", () => {
  const chosen = document.querySelector<HTMLInputElement>("input[name=place]:checked")?.value;
  place = chosen === "cloud" || chosen === "ssh" ? chosen : "local";
  byId("provider-step-label").textContent = place === "local" ? "Step 2 of 2" : "Step 2 of 3";
  el.save.textContent = saveLabel();
  renderKeychainAndSaved();
  show("provider");
});

// ---------- a server: the status window takes over ----------

const saveLabel = () => (place === "local" ? "Save and start" : "Save and continue");

/** The key is saved: on this computer, install and start; for a server, its form. */
function afterProviderSaved() {
  if (place === "local") void runSetup();
  else void goServer();
}

async function goServer() {
  const cloud = place === "cloud";
  byId("server-next-text").textContent = cloud
    ? "Your API key is saved. The Status window now asks for your Hetzner token, shows the sizes with today's prices, and creates your server. You can close this window."
    : "Your API key is saved. The Status window now asks for your server's address and checks it's really yours before Clawkeeper logs in. You can close this window.";
  show("server");
  await openServerForm();
}

async function openServerForm() {
  const slot = byId("server-next-error");
  slot.replaceChildren();
  try {
    await openWindow("status", place === "cloud" ? "server-cloud" : "server-connect");
  } catch (e) {
    slot.replaceChildren(errorPanel(toApiError(e), [{ label: "Try again", run: openServerForm, primary: true }]));
  }
}
byId("open-server-form").addEventListener("click", () => void openServerForm());

// ---------- step 2 ----------

function renderProviderForm() {
  const openrouter = kind === "openrouter";
  el.kindOpenrouter.checked = openrouter;
  el.kindCustom.checked = !openrouter;
  el.signinPanel.hidden = !openrouter || pasteMode;
  el.form.hidden = openrouter && !pasteMode;
  el.baseUrlField.hidden = openrouter;
  el.signinInstead.hidden = !openrouter;
  // OpenRouter has a good default model, so the choice sits behind "Choose a model";
  // other providers need it spelled out, next to the address.
  el.modelOptions.hidden = !openrouter;
  if (openrouter) el.modelOptions.append(el.modelField);
  else el.apiKeyField.before(el.modelField);
  if (openrouter) {
    if (!el.model.value || el.model.dataset.auto === "custom") el.model.value = OPENROUTER_DEFAULT_MODEL;
    el.model.dataset.auto = "openrouter";
    el.model.placeholder = OPENROUTER_DEFAULT_MODEL;
    el.modelHelp.textContent = "Leave this as it is to let OpenRouter pick a good model for each message.";
  } else {
    if (el.model.dataset.auto === "openrouter" && el.model.value === OPENROUTER_DEFAULT_MODEL) el.model.value = "";
    el.model.dataset.auto = "custom";
    el.model.placeholder = "for example gpt-4o-mini";
    el.modelHelp.textContent = "The model name exactly as your provider writes it.";
  }
}

function renderKeychainAndSaved() {
  el.providerError.replaceChildren();
  if (ov && ov.keychain.status !== "ok") {
    const locked = ov.keychain.status === "locked";
    const err: ApiError = {
      code: locked ? "keychain_locked" : "keychain_unavailable",
      message: locked
        ? "Your keychain is locked, so Clawkeeper can't save your key yet."
        : "Clawkeeper can't find a keychain on this computer to keep your key safe.",
      hint:
        ov.keychain.hint ??
        (locked ? "Unlock your keychain, then try again." : "Set up your system's keychain, then try again."),
    };
    el.providerError.append(errorPanel(err, [fixFor(err, refreshOverview)]));
  }
  const p = ov?.provider;
  el.providerSaved.hidden = !p?.configured;
  if (p?.configured) {
    const canContinue = ov && ov.instance.state !== "healthy" && ov.instance.state !== "degraded";
    el.providerSaved.replaceChildren(
      h(
        "div",
        { class: "notice ok" },
        icon("ok"),
        h(
          "div",
          { class: "stack" },
          h("p", {
            text: `Your API key is saved in your keychain ✓${p.keySavedAt ? ` on ${formatDate(p.keySavedAt)}` : ""}. Connecting again replaces it.`,
          }),
          canContinue
            ? h("button", {
                type: "button",
                class: "btn btn-secondary btn-small",
                text: place === "local" ? "Keep the saved key and start" : "Keep the saved key and continue",
                on: { click: afterProviderSaved },
              })
            : null,
        ),
      ),
    );
  }
}

function setKind(next: ProviderKind) {
  kind = next;
  pasteMode = next !== "openrouter" ? true : pasteMode;
  if (next === "openrouter") pasteMode = false;
  clearFieldErrors();
  renderProviderForm();
}
el.kindOpenrouter.addEventListener("change", () => setKind("openrouter"));
el.kindCustom.addEventListener("change", () => setKind("openai_compatible"));

el.pasteKey.addEventListener("click", () => {
  pasteMode = true;
  renderProviderForm();
  el.apiKey.focus();
});
el.signinInstead.addEventListener("click", () => {
  pasteMode = false;
  el.apiKey.value = "";
  renderProviderForm();
  el.signin.focus();
});
el.providerBack.addEventListener("click", () => show("place"));

el.signin.addEventListener("click", async () => {
  el.providerError.replaceChildren();
  el.signin.disabled = true;
  try {
    await startOpenrouterSignIn();
    waitingForSignIn = true;
    el.signinWait.hidden = false;
    el.signinWait.replaceChildren(
      icon("busy"),
      h("span", { text: "Finish signing in in your browser. This window carries on by itself when you're done." }),
    );
  } catch (e) {
    showProviderError(toApiError(e));
  } finally {
    el.signin.disabled = false;
  }
});

function showProviderError(err: ApiError) {
  const retryFocus = () => {
    el.providerError.replaceChildren();
    if (!el.form.hidden) el.apiKey.focus();
    else el.signin.focus();
  };
  const action =
    err.code === "provider_auth"
      ? { label: "Check the key", run: () => ((pasteMode = true), renderProviderForm(), retryFocus()), primary: true }
      : err.code.startsWith("keychain")
        ? { label: "Try again", run: () => void refreshOverview().then(retryFocus), primary: true }
        : fixFor(err, retryFocus);
  el.providerError.replaceChildren(errorPanel(err, [action]));
  el.providerError.querySelector<HTMLElement>("button")?.focus();
}

function fieldError(input: HTMLInputElement, message: string | null) {
  const out = byId(`${input.id}-error`);
  out.hidden = !message;
  out.textContent = message ?? "";
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}
function clearFieldErrors() {
  for (const i of [el.baseUrl, el.model, el.apiKey]) fieldError(i, null);
}

function validUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === "https:" || u.protocol === "http:";
  } catch {
    return false;
  }
}

el.form.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFieldErrors();
  const baseUrl = el.baseUrl.value.trim();
  const model = el.model.value.trim() || (kind === "openrouter" ? OPENROUTER_DEFAULT_MODEL : "");
  let firstBad: HTMLInputElement | undefined;
  if (kind === "openai_compatible" && !validUrl(baseUrl)) {
    fieldError(el.baseUrl, baseUrl ? "That address doesn't look right. It should start with https://" : "Enter your provider's address.");
    firstBad ??= el.baseUrl;
  }
  if (!model) {
    el.modelOptions.open = true;
    fieldError(el.model, "Enter the name of the model to use.");
    firstBad ??= el.model;
  }
  if (!el.apiKey.value.trim()) {
    fieldError(el.apiKey, "Paste your API key here.");
    firstBad ??= el.apiKey;
  }
  if (firstBad) {
    firstBad.focus();
    return;
  }

  // The key leaves the field exactly once, and the field is cleared right away.
  const apiKey = el.apiKey.value.trim();
  el.apiKey.value = "";
  el.providerError.replaceChildren();
  el.save.disabled = true;
  el.save.textContent = "Saving…";
  try {
    await saveProvider({ kind, model, apiKey, ...(kind === "openai_compatible" ? { baseUrl } : {}) });
  } catch (err) {
    showProviderError(toApiError(err));
    return;
  } finally {
    el.save.disabled = false;
    el.save.textContent = saveLabel();
  }
  afterProviderSaved();
});

// ---------- progress ----------

interface StepRow {
  label: string;
  status: "done" | "active" | "todo" | "failed";
  now?: string;
}

function renderProgress() {
  if (!ov) return;
  const ins = ov.install;
  const inst = ov.instance;
  const checks = ov.checks;
  const passed = checks.filter((c) => c.status === "pass").length;
  const stage = phase === "failed" ? failedAt : phase;

  const rows: StepRow[] = [
    {
      label: "Get your assistant ready on this computer",
      status: stage === "installing" ? "active" : ins.state === "ready" ? "done" : "todo",
      ...(stage === "installing" && ins.step ? { now: ins.step } : {}),
    },
    {
      label: "Start your assistant",
      status: stage === "starting" ? "active" : stage === "checks" || stage === "done" ? "done" : "todo",
    },
    {
      label: "Run safety checks",
      status: stage === "checks" ? "active" : stage === "done" ? "done" : "todo",
      ...(stage === "checks" && checks.length ? { now: `${passed} of ${checks.length} passed` } : {}),
    },
  ];
  for (const r of rows) if (r.status === "active" && phase === "failed") r.status = "failed";

  // One bar for the whole job: installing 0–80 %, starting 80–90 %, checks 90–100 %.
  let pct = 0;
  let now = "";
  let count = "";
  let eta = "";
  switch (phase) {
    case "installing": {
      const frac = ins.total ? Math.min(1, (ins.done ?? 0) / ins.total) : 0;
      pct = 5 + frac * 75;
      now = ins.step ? `${ins.step}…` : "Getting ready…";
      count = ins.total ? `Step ${Math.min((ins.done ?? 0) + 1, ins.total)} of ${ins.total}` : "";
      eta = etaWords(ins.etaSeconds);
      break;
    }
    case "starting":
      pct = 85;
      now = inst.detail && inst.state === "starting" ? inst.detail : "Starting your assistant…";
      eta = "Less than a minute left";
      break;
    case "checks":
      pct = 90 + (checks.length ? (passed / checks.length) * 10 : 0);
      now = "Checking that only you can reach your assistant…";
      eta = "Almost done";
      break;
    case "done":
      pct = 100;
      now = "Done.";
      break;
    case "cancelled":
      now = "Nothing was left half-done. You can start again whenever you like.";
      break;
    case "failed":
      now = "Setup stopped before it finished.";
      break;
    case "idle":
      now = "Getting ready…";
  }

  el.progressTitle.textContent =
    phase === "cancelled" ? "Setup is paused" : phase === "failed" ? "Setup needs your help" : "Setting up your assistant";
  el.progressNow.textContent = now;
  byId("progress-label").textContent = phase === "cancelled" ? "Paused" : phase === "failed" ? "Stopped" : "Almost done";
  el.progressBar.value = Math.round(pct);
  el.progressBar.hidden = phase === "cancelled";
  el.progressCount.textContent = phase === "cancelled" || phase === "failed" ? "" : count;
  el.progressEta.textContent = phase === "cancelled" || phase === "failed" ? "" : eta;
  el.progressRetry.hidden = !(phase === "cancelled" || phase === "failed");
  el.progressCancel.hidden = phase === "cancelled" || phase === "failed" || phase === "done";
  el.cancelNote.hidden = el.progressCancel.hidden;
  if (phase !== "failed") el.progressError.replaceChildren();

  const iconFor: Record<StepRow["status"], IconName> = { done: "ok", active: "busy", todo: "pending", failed: "bad" };
  const words: Record<StepRow["status"], string> = { done: "Done", active: "In progress", todo: "Not started", failed: "Stopped" };
  el.progressSteps.replaceChildren(
    ...rows.map((r) =>
      h(
        "li",
        { "data-status": r.status, ...(r.status === "active" ? { "aria-current": "step" } : {}) },
        icon(iconFor[r.status]),
        h(
          "span",
          { class: "step-text" },
          h("span", {}, r.label, h("span", { class: "visually-hidden", text: ` — ${words[r.status]}` })),
          r.now ? h("span", { class: "step-now", text: r.now }) : null,
        ),
      ),
    ),
  );
}

function failSetup(err: ApiError) {
  if (phase !== "failed") failedAt = phase;
  phase = "failed";
  clearTimeout(checksTimer);
  renderProgress();
  const action =
    err.code === "provider_auth" || err.code === "provider_missing"
      ? { label: "Check the key", run: () => show("provider"), primary: true }
      : fixFor(err, () => void runSetup());
  el.progressError.replaceChildren(errorPanel(err, [action]));
  el.progressError.querySelector<HTMLElement>("button")?.focus();
}

/** Install (if needed) → start → wait for checks → ready. Driven by events. */
async function runSetup() {
  phase = "idle";
  show("progress");
  try {
    ov = await getOverview();
  } catch (e) {
    failSetup(toApiError(e));
    return;
  }
  if (ov.instance.state === "healthy" || ov.instance.state === "degraded") {
    enterChecks();
    return;
  }
  if (ov.install.state === "ready") {
    await beginStart();
    return;
  }
  phase = "installing";
  renderProgress();
  if (ov.install.state === "installing") return; // already under way: follow its events
  try {
    await installRuntime();
  } catch (e) {
    failSetup(toApiError(e));
  }
}

async function beginStart() {
  phase = "starting";
  renderProgress();
  try {
    await startInstance();
  } catch (e) {
    failSetup(toApiError(e));
    return;
  }
  void followStart();
}

/** While starting, also ask now and then how the assistant is: events say it first, but a
 * start that was already under way (Start is ignored then) or an event missed while the
 * window was busy must not leave the person looking at "Starting…" for ever. */
async function followStart() {
  while (phase === "starting") {
    try {
      const now = await getOverview();
      if (phase !== "starting") return;
      ov = now;
      if (now.instance.state === "healthy" || now.instance.state === "degraded") {
        enterChecks();
        return;
      }
      if (now.instance.state === "error") {
        failSetup({
          code: "instance_error",
          message: now.instance.detail ?? "Your assistant couldn't start.",
          hint: "Try again. If it keeps happening, open Status to see what went wrong.",
        });
        return;
      }
    } catch {
      // The events still come; ask again on the next round.
    }
    await new Promise((resolve) => window.setTimeout(resolve, 3_000));
  }
}

function enterChecks() {
  if (!ov) return;
  phase = "checks";
  renderProgress();
  clearTimeout(checksTimer);
  // Don't keep the user waiting if the backend never reports checks.
  checksTimer = window.setTimeout(finish, 15_000);
  if (ov.checks.length && ov.checks.every((c) => c.status !== "pending")) finish();
}

function finish() {
  if (!ov || phase === "done") return;
  clearTimeout(checksTimer);
  phase = "done";
  renderProgress();
  const failed = ov.checks.filter((c) => c.status === "fail");
  el.readyWarning.replaceChildren();
  if (failed.length || ov.instance.state === "degraded") {
    el.readyWarning.append(
      h(
        "div",
        { class: "notice" },
        icon("warn"),
        h("p", {
          text:
            failed.length === 1
              ? `One safety check needs attention: ${failed[0]!.label}. See Status for what to do.`
              : failed.length > 1
                ? `${failed.length} safety checks need attention. See Status for what to do.`
                : "Your assistant is running, but something isn't quite right. See Status for what to do.",
        }),
      ),
    );
  }
  show("ready");
  el.openChat.focus();
}

el.progressCancel.addEventListener("click", async () => {
  const was = phase;
  el.progressCancel.disabled = true;
  try {
    if (was === "installing") await cancelInstall();
    else if (was === "starting" || was === "checks") await stopInstance();
    phase = "cancelled";
    clearTimeout(checksTimer);
    renderProgress();
    el.progressRetry.focus();
  } catch (e) {
    failSetup(toApiError(e));
  } finally {
    el.progressCancel.disabled = false;
  }
});
el.progressRetry.addEventListener("click", () => void runSetup());
el.openChat.addEventListener("click", () => void openWindow("chat").catch((e) => failSetup(toApiError(e))));
el.openStatus.addEventListener("click", () => void openWindow("status").catch((e) => failSetup(toApiError(e))));

// ---------- events ----------

async function refreshOverview() {
  try {
    ov = await getOverview();
    renderStatusLine(statusLine, ov.instance);
    renderKeychainAndSaved();
  } catch (e) {
    showProviderError(toApiError(e));
  }
}

function onBackendEvent(e: BackendEvent) {
  if (!ov) return;
  switch (e.type) {
    case "instance": {
      ov.instance.state = e.state;
      if (e.detail) ov.instance.detail = e.detail;
      else delete ov.instance.detail;
      renderStatusLine(statusLine, ov.instance);
      if (phase === "starting" || phase === "checks") {
        if (e.state === "healthy" || e.state === "degraded") {
          if (phase === "starting") enterChecks();
        } else if (e.state === "error") {
          failSetup({
            code: "instance_error",
            message: e.detail ?? "Your assistant couldn't start.",
            hint: "Try again. If it keeps happening, open Status to see what went wrong.",
          });
        } else if (e.state === "stopped" && phase === "checks") {
          failSetup({ code: "instance_stopped", message: "Your assistant stopped while starting.", hint: "Try again." });
        }
      }
      if (phase === "starting" || phase === "installing") renderProgress();
      break;
    }
    case "install": {
      const { type: _t, ...info } = e;
      ov.install = info;
      if (phase === "installing") {
        if (e.state === "ready") void beginStart();
        else if (e.state === "missing")
          failSetup({
            code: "install_stopped",
            message: "Getting your assistant ready stopped before it finished.",
            hint: "Check your internet connection, then try again.",
          });
        else renderProgress();
      } else if (view !== "progress" && e.state === "installing") {
        phase = "installing";
        show("progress", false);
        renderProgress();
      }
      break;
    }
    case "checks":
      ov.checks = e.checks;
      if (phase === "checks") {
        renderProgress();
        if (e.checks.length && e.checks.every((c) => c.status !== "pending")) finish();
      }
      break;
    case "provider":
      ov.provider.configured = e.configured;
      if (waitingForSignIn) {
        waitingForSignIn = false;
        el.signinWait.hidden = true;
        if (e.error) showProviderError(e.error);
        else if (e.configured) afterProviderSaved();
      }
      break;
    case "chat":
      break;
  }
}

// ---------- start ----------

async function init() {
  await onEvent(onBackendEvent);
  try {
    ov = await getOverview();
  } catch (e) {
    show("place", false);
    showProviderError(toApiError(e));
    return;
  }
  renderStatusLine(statusLine, ov.instance);
  if (ov.provider.kind) kind = ov.provider.kind;
  if (ov.provider.kind === "openai_compatible") {
    el.baseUrl.value = ov.provider.baseUrl ?? "";
    el.model.value = ov.provider.model ?? "";
    el.model.dataset.auto = "custom";
  } else if (ov.provider.model) {
    el.model.value = ov.provider.model;
  }
  renderProviderForm();
  renderKeychainAndSaved();

  if (ov.install.state === "installing") {
    phase = "installing";
    show("progress", false);
    renderProgress();
  } else if (ov.install.state === "ready" || location.hash === "#provider") {
    // Already lives on this computer: only the provider step is left (e.g. "Change key").
    byId("provider-step-label").textContent = ov.provider.configured ? "Your model provider" : "Last step";
    if (ov.provider.configured) byId("provider-title").textContent = "Change your API key";
    el.providerBack.hidden = ov.install.state === "ready";
    show("provider", false);
  } else {
    show("place", false);
  }
}

void init();
