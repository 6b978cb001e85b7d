// Chat window: history, streaming replies, stop, and a clear way back when the
// assistant isn't running.

import "./styles.css";
import {
  type ApiError,
  type BackendEvent,
  type ChatMessage,
  type Overview,
  chatAbort,
  chatHistory,
  chatSend,
  getOverview,
  onEvent,
  openWindow,
  startInstance,
  toApiError,
} from "./api";
import { type Action, byId, errorPanel, fixFor, formatTime, h, icon, renderServerLine, renderStatusLine } from "./ui";

type ChatEvent = Extract<BackendEvent, { type: "chat" }>;

const el = {
  statusLine: byId("status-line"),
  main: byId("chat-main"),
  log: byId("chat-log"),
  offline: byId("chat-offline"),
  offlineText: byId("chat-offline-text"),
  offlineError: byId("chat-offline-error"),
  primary: byId<HTMLButtonElement>("primary-action"),
  form: byId<HTMLFormElement>("chat-form"),
  input: byId<HTMLTextAreaElement>("chat-input"),
  send: byId<HTMLButtonElement>("chat-send"),
  stop: byId<HTMLButtonElement>("chat-stop"),
};

const empty = h(
  "div",
  { class: "chat-empty", id: "chat-empty" },
  h("span", { class: "empty-icon" }, icon("chat")),
  h("h2", { text: "Say hello to your assistant" }),
  h("p", { id: "chat-empty-text", text: "" }),
);
el.main.insertBefore(empty, el.log);

let ov: Overview | undefined;

interface Run {
  runId?: string;
  message: string;
  user: HTMLElement;
  bubble: HTMLElement;
  abortWhenKnown?: boolean;
}
let current: Run | undefined;
/** Events that arrived before chat_send told us their runId (latest per run is enough: deltas carry the full text). */
const early = new Map<string, ChatEvent>();

// ---------- state of the assistant ----------

/** Sending waits for the history: a message sent before it loads would be replaced by it. */
let historyLoaded = false;
const onServer = () => ov?.assistant.place === "server";
/** The server's assistant is reached on demand (its errors say what's wrong); this computer's must be running. */
const canChat = () =>
  historyLoaded && !!ov && (onServer() || ov.instance.state === "healthy" || ov.instance.state === "degraded");

function renderState() {
  if (!ov) return;
  if (onServer()) renderServerLine(el.statusLine, ov.assistant);
  else renderStatusLine(el.statusLine, ov.instance);
  byId("chat-empty-text").textContent = onServer()
    ? `Ask anything. Your messages go ${ov.assistant.path === "tailnet" ? "over your private tailnet" : "through a private SSH tunnel"} to your server (${ov.assistant.name}), and from there to your model provider — no one else.`
    : "Ask anything. Your messages go from this computer straight to your model provider — no one else.";
  const s = ov.instance.state;
  el.offline.hidden = canChat();
  el.send.disabled = !canChat();
  if (canChat()) {
    el.offlineError.replaceChildren();
    return;
  }
  let text = "Your assistant isn't running, so it can't answer right now.";
  let label = "Start";
  let run: (() => Promise<void>) | undefined = startInstance;
  if (s === "not_installed" || s === "installing" || ov.install.state !== "ready" || !ov.provider.configured) {
    text = s === "installing" ? "Your assistant is still being set up." : "Your assistant isn't set up yet.";
    label = s === "installing" ? "Show progress" : "Finish setup";
    run = () => openWindow("setup");
  } else if (s === "starting") {
    text = "Your assistant is starting. You can write your message meanwhile.";
    label = "Starting…";
    run = undefined;
  } else if (s === "stopping") {
    text = "Your assistant is shutting down.";
    label = "Stopping…";
    run = undefined;
  } else if (s === "error") {
    text = ov.instance.detail ?? "Your assistant stopped because of a problem.";
    label = "Start again";
  }
  el.offlineText.textContent = text;
  if (el.primary.getAttribute("aria-busy") !== "true") el.primary.textContent = label;
  el.primary.disabled = !run;
  primaryRun = run;
}

let primaryRun: (() => Promise<void>) | undefined;
el.primary.addEventListener("click", async () => {
  if (!primaryRun) return;
  const run = primaryRun;
  el.offlineError.replaceChildren();
  el.primary.disabled = true;
  el.primary.setAttribute("aria-busy", "true");
  try {
    await run();
  } catch (e) {
    const err = toApiError(e);
    el.offlineError.replaceChildren(errorPanel(err, [fixFor(err, () => el.primary.click())]));
  } finally {
    el.primary.removeAttribute("aria-busy");
    renderState();
  }
});

// ---------- messages ----------

function nearBottom(): boolean {
  const m = el.main;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 96;
}
function toBottom() {
  el.main.scrollTop = el.main.scrollHeight;
}

function bubble(role: ChatMessage["role"], text: string, at?: string): HTMLElement {
  const b = h("div", {
    class: `msg ${role}`,
    role: "article",
    "aria-label": role === "user" ? "You" : "Assistant",
    ...(at ? { title: formatTime(at) } : {}),
  });
  b.textContent = text;
  return b;
}

function append(node: HTMLElement) {
  empty.hidden = true;
  el.log.append(node);
}

function note(b: HTMLElement, text: string) {
  b.append(h("span", { class: "msg-note", text }));
}

function showErrorIn(b: HTMLElement, err: ApiError, partial: string, run: Run) {
  b.classList.add("error");
  b.classList.remove("thinking");
  b.removeAttribute("aria-busy");
  b.replaceChildren();
  if (partial) b.append(h("div", { class: "msg-partial", text: partial }));
  const retry = () => {
    run.user.remove();
    b.remove();
    if (!el.log.childElementCount) empty.hidden = false;
    void send(run.message);
  };
  let action: Action = fixFor(err, retry);
  if (err.code === "instance_not_running") action = { label: "Start", run: () => el.primary.click(), primary: true };
  b.append(errorPanel(err, [action], { compact: true }));
}

function setStreaming(on: boolean) {
  const stopHadFocus = document.activeElement === el.stop;
  el.stop.hidden = !on;
  el.send.hidden = on;
  if (on) el.stop.disabled = false;
  if (!on && stopHadFocus) el.input.focus();
}

function finish() {
  current = undefined;
  early.clear();
  setStreaming(false);
}

function apply(run: Run, e: ChatEvent) {
  const b = run.bubble;
  const stick = nearBottom();
  switch (e.state) {
    case "delta":
      b.classList.remove("thinking");
      b.textContent = e.text ?? "";
      break;
    case "final":
      b.classList.remove("thinking");
      b.textContent = e.text ?? b.textContent ?? "";
      b.title = formatTime(new Date().toISOString());
      b.removeAttribute("aria-busy");
      finish();
      break;
    case "aborted": {
      const partial = b.classList.contains("thinking") ? "" : (e.text ?? b.textContent ?? "");
      b.classList.remove("thinking");
      b.removeAttribute("aria-busy");
      b.textContent = partial;
      note(b, partial ? "You stopped this answer." : "You stopped this before it answered.");
      finish();
      break;
    }
    case "error": {
      const partial = b.classList.contains("thinking") ? "" : (e.text ?? b.textContent ?? "");
      showErrorIn(
        b,
        e.error ?? { code: "chat_error", message: "Your assistant couldn't answer.", hint: "Try again in a moment." },
        partial,
        run,
      );
      finish();
      break;
    }
  }
  if (stick) toBottom();
}

async function send(message: string) {
  if (current || !message.trim()) return;
  const user = bubble("user", message, new Date().toISOString());
  const reply = bubble("assistant", "Thinking…");
  reply.classList.add("thinking");
  reply.setAttribute("aria-busy", "true");
  append(user);
  append(reply);
  toBottom();
  const run: Run = { message, user, bubble: reply };
  current = run;
  setStreaming(true);
  try {
    const { runId } = await chatSend(message);
    run.runId = runId;
    if (run.abortWhenKnown) void chatAbort(runId).catch(() => undefined);
    const pending = early.get(runId);
    early.clear();
    if (pending) apply(run, pending);
  } catch (e) {
    showErrorIn(reply, toApiError(e), "", run);
    finish();
  }
}

// ---------- composer ----------

function autosize() {
  el.input.style.height = "auto";
  el.input.style.height = `${Math.min(el.input.scrollHeight, 192)}px`;
}
el.input.addEventListener("input", autosize);

function submit() {
  if (current) return;
  if (!canChat()) {
    el.primary.focus();
    return;
  }
  const text = el.input.value;
  if (!text.trim()) return;
  el.input.value = "";
  autosize();
  void send(text);
}

el.form.addEventListener("submit", (e) => {
  e.preventDefault();
  submit();
});
el.input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
    e.preventDefault();
    submit();
  } else if (e.key === "Escape" && current) {
    e.preventDefault();
    stop();
  }
});

function stop() {
  const run = current;
  if (!run) return;
  el.stop.disabled = true;
  if (!run.runId) {
    run.abortWhenKnown = true;
    return;
  }
  chatAbort(run.runId).catch((e) => {
    el.stop.disabled = false;
    const err = toApiError(e);
    run.bubble.after(h("div", { class: "msg assistant error" }, errorPanel(err, [], { compact: true })));
  });
}
el.stop.addEventListener("click", stop);

// ---------- events & start ----------

function onBackendEvent(e: BackendEvent) {
  switch (e.type) {
    case "chat":
      if (current?.runId === e.runId) apply(current, e);
      else if (current && !current.runId) early.set(e.runId, e);
      break;
    case "instance":
      if (!ov) return;
      ov.instance.state = e.state;
      if (e.detail) ov.instance.detail = e.detail;
      else delete ov.instance.detail;
      renderState();
      break;
    case "install":
      if (!ov) return;
      ov.install.state = e.state;
      renderState();
      break;
    case "provider":
      if (!ov) return;
      ov.provider.configured = e.configured;
      renderState();
      break;
    case "assistant": {
      if (!ov) return;
      const { type: _t, ...where } = e;
      // Only the way changed (tailnet ⇄ SSH): same assistant, same conversation.
      const same = ov.assistant.place === where.place && ov.assistant.serverId === where.serverId;
      ov.assistant = where;
      if (!same) historyLoaded = false;
      renderState();
      if (!same) void loadHistory(); // another assistant, another conversation
      break;
    }
    case "checks":
      break;
  }
}

async function loadHistory() {
  try {
    const history = await chatHistory();
    el.log.replaceChildren(...history.map((m) => bubble(m.role, m.text, m.at)));
    empty.hidden = history.length > 0;
    toBottom();
  } catch (e) {
    const err = toApiError(e);
    el.offline.hidden = false;
    el.offlineError.replaceChildren(errorPanel(err, [fixFor(err, loadHistory)]));
  } finally {
    historyLoaded = true;
    renderState();
  }
}

async function init() {
  await onEvent(onBackendEvent);
  try {
    ov = await getOverview();
    renderState();
  } catch (e) {
    const err = toApiError(e);
    el.offline.hidden = false;
    el.offlineText.textContent = "Clawkeeper couldn't check on your assistant.";
    el.offlineError.replaceChildren(errorPanel(err, [fixFor(err, () => location.reload())]));
  }
  await loadHistory();
  el.input.focus();
}

void init();
