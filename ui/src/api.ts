// The backend contract, typed. This is the only module that talks to Tauri
// (`invoke` / `listen`); every screen imports the functions below.
//
// Outside Tauri (a plain browser, `npm run dev`) it falls back to the
// in-memory mock in ./mock.ts, loaded lazily so it never ships in the
// code path the desktop app runs.

import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";

// ---------- types (mirror the Rust side) ----------

export type InstanceState =
  | "not_installed"
  | "installing"
  | "stopped"
  | "starting"
  | "healthy"
  | "degraded"
  | "stopping"
  | "error";

export type InstallState = "missing" | "installing" | "ready";
export type ProviderKind = "openrouter" | "openai_compatible";
export type KeychainStatus = "ok" | "locked" | "unavailable";
export type CheckStatus = "pass" | "fail" | "pending";
export type WindowName = "setup" | "status" | "chat";

/** Every command rejects with this. `message` = what happened, `hint` = what to do. */
export interface ApiError {
  code: string;
  message: string;
  hint?: string;
}

export interface Check {
  id: string;
  label: string;
  status: CheckStatus;
  detail?: string;
}

export interface InstanceInfo {
  state: InstanceState;
  detail?: string;
  version?: string;
  /** RFC 3339 */
  since?: string;
  restarts: number;
}

export interface InstallInfo {
  state: InstallState;
  step?: string;
  done?: number;
  total?: number;
  etaSeconds?: number;
}

export interface ProviderInfo {
  configured: boolean;
  kind?: ProviderKind;
  baseUrl?: string;
  model?: string;
  /** RFC 3339 */
  keySavedAt?: string;
  keyFingerprint?: string;
}

export interface Activity {
  /** RFC 3339 */
  at: string;
  action: string;
  detail: string;
}

export interface Overview {
  instance: InstanceInfo;
  install: InstallInfo;
  provider: ProviderInfo;
  keychain: { status: KeychainStatus; hint?: string };
  checks: Check[];
  activity: Activity[];
}

export interface SaveProviderArgs {
  kind: ProviderKind;
  baseUrl?: string;
  model: string;
  apiKey: string;
}

export interface ChatMessage {
  role: "user" | "assistant";
  text: string;
  /** RFC 3339 */
  at?: string;
}

export type ChatRunState = "delta" | "final" | "error" | "aborted";

/** Payload of the single event channel, tagged on `type`. */
export type BackendEvent =
  | { type: "instance"; state: InstanceState; detail?: string }
  | ({ type: "install" } & InstallInfo)
  | { type: "checks"; checks: Check[] }
  | { type: "provider"; configured: boolean; error?: ApiError }
  | {
      type: "chat";
      runId: string;
      state: ChatRunState;
      /** delta: full text so far; final: full final text */
      text?: string;
      error?: ApiError;
    };

export const EVENT_CHANNEL = "clawkeeper://event";

// ---------- transport ----------

type Unlisten = () => void;
interface Transport {
  invoke(cmd: string, args?: Record<string, unknown>): Promise<unknown>;
  listen(handler: (event: BackendEvent) => void): Promise<Unlisten>;
}

export const inTauri: boolean =
  typeof window !== "undefined" && ("__TAURI_INTERNALS__" in window || "__TAURI__" in window);

const tauriTransport: Transport = {
  invoke: (cmd, args) => invoke(cmd, args),
  listen: (handler) => listen<BackendEvent>(EVENT_CHANNEL, (e) => handler(e.payload)),
};

let transport: Promise<Transport> | undefined;
function getTransport(): Promise<Transport> {
  transport ??= inTauri ? Promise.resolve(tauriTransport) : import("./mock").then((m) => m.mockTransport);
  return transport;
}

/** Turn whatever a command rejected with into an ApiError (never a raw object or stack). */
export function toApiError(e: unknown): ApiError {
  if (e && typeof e === "object" && "message" in e && typeof (e as ApiError).message === "string") {
    const o = e as Partial<ApiError>;
    return {
      code: typeof o.code === "string" ? o.code : "unknown",
      message: o.message as string,
      ...(typeof o.hint === "string" ? { hint: o.hint } : {}),
    };
  }
  if (typeof e === "string" && e.trim()) return { code: "unknown", message: e };
  return {
    code: "unknown",
    message: "Something went wrong.",
    hint: "Try again. If it keeps happening, restart Clawkeeper.",
  };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  const t = await getTransport();
  try {
    return (await t.invoke(cmd, args)) as T;
  } catch (e) {
    throw toApiError(e);
  }
}

// ---------- commands ----------

export const getOverview = () => call<Overview>("get_overview");

/**
 * Sends the key once. Callers must clear the input right away.
 * Arguments are passed flat (`{ kind, baseUrl, model, apiKey }`), so the Rust
 * command takes them as parameters `kind, base_url, model, api_key`.
 */
export const saveProvider = (args: SaveProviderArgs) =>
  call<void>("save_provider", { ...args } as Record<string, unknown>);

export const startOpenrouterSignIn = () => call<void>("start_openrouter_sign_in");
export const installRuntime = () => call<void>("install_runtime");
export const cancelInstall = () => call<void>("cancel_install");
export const startInstance = () => call<void>("start_instance");
export const stopInstance = () => call<void>("stop_instance");

export const chatSend = (message: string) => call<{ runId: string }>("chat_send", { message });
export const chatHistory = () => call<ChatMessage[]>("chat_history");
export const chatAbort = (runId: string) => call<void>("chat_abort", { runId });

export const openWindow = (name: WindowName) => call<void>("open_window", { name });

// ---------- events ----------

/** Subscribe to the backend's event channel. Returns an unsubscribe function. */
export async function onEvent(handler: (event: BackendEvent) => void): Promise<Unlisten> {
  const t = await getTransport();
  return t.listen(handler);
}
