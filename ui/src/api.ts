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

/** Which assistant chat goes to, and how the app reaches it. */
export interface AssistantInfo {
  place: "local" | "server";
  serverId?: string;
  /** "This computer" or the server's name. */
  name: string;
  /** local: on this computer; ssh: a private SSH tunnel to the server; tailnet: over the person's own tailnet. */
  path: "local" | "ssh" | "tailnet";
  /** The same in one sentence ("Chat goes over your private tailnet."), and why SSH when the tailnet should be used. */
  pathNote: string;
}

/** This computer on the tailnet. */
export type TailnetState =
  | { state: "connected"; node: string }
  | { state: "needs_login"; login_url?: string }
  | { state: "starting" }
  | { state: "stopped" }
  | { state: "unavailable"; reason: string };

/** The server's device on the tailnet, as Tailscale last said. */
export interface TailnetDevice {
  name: string;
  hostname: string;
  address?: string;
  dnsName?: string;
  /** RFC 3339 */
  lastSeen?: string;
  /** RFC 3339; absent: never expires. */
  keyExpiry?: string;
  online?: boolean;
  found: boolean;
  checkedAt?: string;
}

/** The "Private network (Tailscale)" section. Never carries the key itself. */
export interface TailnetInfo {
  keySaved: boolean;
  keyKind?: "api_token" | "oauth_client";
  keyFingerprint?: string;
  /** Whether the tailnet's policy lets the server carry tag:clawkeeper (absent: not checked). */
  tagOwnersOk?: boolean;
  snippet: string;
  explanation: string;
  error?: ApiError;
  thisComputer?: TailnetState;
  device?: TailnetDevice;
}

export interface Overview {
  instance: InstanceInfo;
  install: InstallInfo;
  provider: ProviderInfo;
  keychain: { status: KeychainStatus; hint?: string };
  checks: Check[];
  activity: Activity[];
  assistant: AssistantInfo;
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

// ---------- the person's own server ----------

export type ServerJobState = "running" | "succeeded" | "failed" | "cancelled";

/** Long work on a server: what the progress bar shows. */
export interface ServerJob {
  kind: "deploy" | "provision" | "tailnet";
  state: ServerJobState;
  /** The current step's name. */
  step: string;
  /** Steps finished (0 before the first). */
  index: number;
  total: number;
  detail?: string;
  error?: ApiError;
}

export interface ServerInfo {
  id: string;
  name: string;
  kind: "ssh" | "cloud";
  address?: string;
  port?: number;
  user?: string;
  hostFingerprint?: string;
  hostKeyAlgorithm?: string;
  /** RFC 3339 */
  pinnedAt?: string;
  appKeyFingerprint?: string;
  checks: Check[];
  /** RFC 3339: when the checks were read from the server. */
  checkedAt?: string;
  job?: ServerJob;
}

export interface ScannedHost {
  fingerprint: string;
  algorithm: string;
}

export interface SupportGrant {
  id: string;
  fingerprint: string;
  note: string;
  createdAt: string;
  expiresAt: string;
  revokedAt?: string | null;
  onServer?: boolean;
  state: "active" | "expired" | "revoked";
}

export interface IssuedSupportKey {
  grant: SupportGrant;
  /** Shown once, never stored. */
  privateKey: string;
}

export interface ConnectArgs {
  host: string;
  port: number;
  user: string;
  name: string;
  confirmedFingerprint: string;
  /** The private key file's text, read in memory from the file input. */
  keyText?: string;
  passphrase?: string;
  password?: string;
}

export interface HetznerPrice {
  location: string;
  price_hourly: { net: string; gross: string };
  price_monthly: { net: string; gross: string };
}

export interface HetznerServerType {
  name: string;
  description: string;
  cores: number;
  memory: number;
  disk: number;
  architecture: string;
  prices: HetznerPrice[];
}

export interface HetznerLocation {
  name: string;
  description: string;
  city: string;
  country: string;
}

export interface CloudOptions {
  locations: HetznerLocation[];
  serverTypes: HetznerServerType[];
}

// ---------- usage and spend ----------

/** Token counts. `total` may include reasoning tokens the other four don't. */
export interface Tokens {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  total: number;
}

export interface UsageTotals {
  tokens: Tokens;
  /** US dollars */
  cost: number;
}

/** A line of a breakdown. By model, only `tokens.total` is meaningful. */
export interface UsageRow {
  /** UTC day, "YYYY-MM-DD" (by day, by day and model). */
  day?: string;
  /** The model, channel ("app": chat in this app) or session. */
  key: string;
  /** A conversation's name, when it has one. */
  label?: string;
  tokens: Tokens;
  cost: number;
  /** Model calls (by model only). */
  calls?: number;
}

/** The tray's line: "$0.42 today · $6.10 this month". */
export interface UsageSummary {
  today: number;
  month: number;
  capPercent?: number;
  /** RFC 3339: when the numbers were last brought up to date. */
  syncedAt?: string;
  /** Why the last attempt to update failed, in words. */
  error?: string;
  /** The assistant was paused because the spend cap was reached. */
  paused: boolean;
}

export type CapPeriod = "daily" | "weekly" | "monthly";

export interface SpendCap {
  /** US dollars per period. */
  amount: number;
  period: CapPeriod;
  /** Percent of the cap to warn at, ascending. */
  levels: number[];
  pauseAtCap: boolean;
}

export interface CapView extends SpendCap {
  periodStart: string;
  periodEnd: string;
  spent: number;
  percent: number;
}

/** What the model provider itself says about the key and the account. */
export interface ProviderUsage {
  name: string;
  today?: number;
  week?: number;
  month?: number;
  limit?: number;
  limitRemaining?: number;
  limitReset?: CapPeriod | null;
  /** The cap is set on the key at the provider (it holds even if Clawkeeper is closed). */
  capEnforced: boolean;
  /** A management key is saved, so Clawkeeper can set the cap at the provider. */
  managementKey: boolean;
  creditsLeft?: number;
  /** RFC 3339 */
  checkedAt: string;
  error?: string;
  /** Where Clawkeeper's count and the provider's disagree. */
  /** period: "today" | "month" (the key's count) | a past UTC day "YYYY-MM-DD" (the account's activity). */
  differs: { period: string; app: number; provider: number }[];
}

/** The status window's "Usage and spend" section. Days are UTC days. */
export interface UsageView {
  daysAre: "utc";
  today: string;
  from: string;
  to: string;
  summary: UsageSummary;
  todayTotals: UsageTotals;
  monthTotals: UsageTotals;
  rangeTotals: UsageTotals;
  cap?: CapView;
  /** By day, oldest first (only days with use). */
  daily: UsageRow[];
  /** By day and model. */
  modelDaily: UsageRow[];
  models: UsageRow[];
  channels: UsageRow[];
  /** The top 20 conversations. */
  sessions: UsageRow[];
  provider?: ProviderUsage;
}

export type ExportFormat = "csv" | "json";
export type ExportBy = "day" | "model" | "channel" | "session" | "day-model";

export type SpendAlert =
  | { kind: "threshold"; level: number; period: CapPeriod; periodStart: string; spent: number; cap: number }
  | { kind: "spike"; day: string; spent: number; median: number };

// ---------- keys and their rotation ----------

/** Which key (`KeyId` in the core). */
export type KeyId =
  | "gateway-token"
  | "provider-key"
  | "ssh-key"
  | "tailscale-node"
  | "cloud-token"
  | "telegram-token"
  | "discord-token"
  | "tailscale-api";
/** A rotation's steps, in order (`Step` in the core). */
export type RotationStep = "mint" | "install" | "verify_new" | "revoke_old" | "verify_old" | "commit";
export const ROTATION_STEPS: readonly RotationStep[] = ["mint", "install", "verify_new", "revoke_old", "verify_old", "commit"];
/** What the progress view says for each step (`Step::label` in the core). */
export const ROTATION_STEP_LABELS: Record<RotationStep, string> = {
  mint: "Making a new key",
  install: "Putting the new key in place",
  verify_new: "Checking that the new key works",
  revoke_old: "Cancelling the old key",
  verify_old: "Checking that the old key no longer works",
  commit: "Saving the new key in your keychain",
};

/** One rotation as the journal has it. Fingerprints only, never a key. */
export interface Rotation {
  id: number;
  batch: string | null;
  instanceId: string;
  key: KeyId;
  /** The next step to run (the last one run, once finished). */
  step: RotationStep;
  /** rollback: undoing — the old key put back, the new one discarded. */
  direction: "forward" | "rollback";
  /** done: the new key is in use; rolled_back: nothing changed. null: not finished. */
  outcome: "done" | "rolled_back" | null;
  oldFingerprint: string | null;
  newFingerprint: string | null;
  error: string | null;
  attempts: number;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

/** one_click: "Rotate" does it all; guided: steps at the provider; not_yet: not from here (see `note`). */
export type HowToRotate = "one_click" | "guided" | "not_yet";

/** A key of the Keys section. */
export interface KeyInfo {
  instanceId: string;
  key: KeyId;
  label: string;
  /** Where it lives, in words. */
  lives: string;
  /** RFC 3339: first saved or last rotated. */
  setAt?: string;
  /** RFC 3339 */
  rotatedAt?: string;
  fingerprint?: string;
  how: HowToRotate;
  note?: string;
  /** A rotation of it is unfinished (finished by itself later; "Try again" now). */
  running?: Rotation;
  /** That rotation waits for the person to delete the old key at the provider. */
  waitingForYou?: boolean;
  /** RFC 3339: when it is due for a change by the reminder schedule (absent: never, or its age is unknown). */
  dueAt?: string;
  /** Due for a change now. */
  due: boolean;
  /** A new key can come from signing in at the provider (OpenRouter) instead of being pasted. */
  signIn?: boolean;
  /** An OpenAI Admin key would make it one click (the provider is OpenAI). */
  adminKey?: boolean;
  /** RFC 3339: when it stops working by itself (a Tailscale API access token). */
  expiresAt?: string;
}

/** A key due for a change. */
export interface DueKey {
  instanceId: string;
  key: KeyId;
  label: string;
  /** RFC 3339 */
  dueAt: string;
}

/** The reminder schedule ("remind me to change keys every 90 days") and where the keys stand. */
export interface KeyReminders {
  /** Every so many days; null: never. */
  everyDays: number | null;
  /** What to offer (30, 90, 180). */
  choices: number[];
  defaultDays: number;
  /** Keys due for a change now. */
  due: DueKey[];
  /** RFC 3339: the next reminder (now or earlier: within the hour); absent: none coming. */
  nextAt?: string;
  /** Labels of the keys the next reminder is about. */
  nextKeys: string[];
  /** A key still not changed after a reminder is reminded of again after this many days. */
  againAfterDays: number;
}

/** One key's result of "Rotate all". */
export interface RotateResult {
  instanceId: string;
  key: KeyId;
  label: string;
  /** unchanged: undone, the old key works; pending: finishing later; needs_you: not in one click. */
  result: "rotated" | "unchanged" | "pending" | "needs_you";
  rotation?: Rotation;
  problem?: ApiError;
}

/** One unfinished rotation carried on by "Try again": finished (`rotation.outcome`), or why not yet. */
export interface ResumeResult {
  rotation: Rotation;
  problem?: ApiError;
}

/** Payload of the single event channel, tagged on `type`. */
export type BackendEvent =
  | { type: "instance"; state: InstanceState; detail?: string }
  | ({ type: "install" } & InstallInfo)
  | { type: "checks"; checks: Check[] }
  | { type: "provider"; configured: boolean; error?: ApiError }
  | { type: "server"; id: string; job: ServerJob }
  | { type: "server_checks"; id: string; checks: Check[]; checkedAt: string }
  | { type: "server_removed"; id: string }
  | ({ type: "assistant" } & AssistantInfo)
  /** Usage was brought up to date (or an attempt failed). */
  | ({ type: "usage" } & UsageSummary)
  /** A level of the spend cap was reached, or a day cost far more than usual. */
  | { type: "spend_alert"; summary: string; body: string; alert: SpendAlert }
  /** A key rotation moved on a step (or ended): the progress view follows it. */
  | ({ type: "rotation" } & Rotation)
  /** Keys are due for a change (the tray daemon shows it as a notification). */
  | { type: "rotation_reminder"; summary: string; body: string; keys: KeyId[] }
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

/** A part of a window to open at: the status window's forms for adding a server, its Keys section. */
export type WindowSection = "server-connect" | "server-cloud" | "keys";
export const openWindow = (name: WindowName, section?: WindowSection) =>
  call<void>("open_window", { name, section: section ?? null });

export const servers = () => call<ServerInfo[]>("servers");
export const serverScan = (host: string, port: number, user: string) =>
  call<ScannedHost>("server_scan", { host, port, user });
/** Sends the key text or password once. Callers must drop their copies right away. */
export const serverConnect = (args: ConnectArgs) =>
  call<ServerInfo>("server_connect", {
    keyText: null,
    passphrase: null,
    password: null,
    ...args,
  } as Record<string, unknown>);
export const serverProvision = (id: string) => call<void>("server_provision", { id });
export const serverTailnetJoin = (id: string) => call<void>("server_tailnet_join", { id });
export const tailnetUseEmbedded = () => call<TailnetInfo>("tailnet_use_embedded", {});
export const cancelServerJob = () => call<void>("cancel_server_job");
export const serverPosture = (id: string, fix: boolean) => call<Check[]>("server_posture", { id, fix });
export const serverDelete = (id: string) => call<{ removed: string[] }>("server_delete", { id });
/** Chat with the assistant on this server (`null`: on this computer). */
export const assistantUse = (serverId: string | null) => call<AssistantInfo>("assistant_use", { serverId });
export const tailnetView = (serverId: string | null) => call<TailnetInfo>("tailnet_view", { serverId });
export const tailnetCheck = (serverId: string | null) => call<TailnetInfo>("tailnet_check", { serverId });
/** An API access token, or an OAuth client secret with its client id. */
export const tailnetKeySave = (secret: string, clientId: string | null, serverId: string | null) =>
  call<TailnetInfo>("tailnet_key_save", { secret, clientId, serverId });
export const tailnetKeyForget = () => call<void>("tailnet_key_forget");
export const supportIssue = (id: string, hours: number, note: string) =>
  call<IssuedSupportKey>("support_issue", { id, hours, note });
export const supportList = (id: string) => call<SupportGrant[]>("support_list", { id });
export const supportRevoke = (id: string, grant: string) => call<void>("support_revoke", { id, grant });
export const cloudTokenSave = (token: string) => call<void>("cloud_token_save", { token });
export const cloudOptions = () => call<CloudOptions>("cloud_options");
export const cloudDeploy = (name: string, serverType: string, location: string) =>
  call<{ id: string }>("cloud_deploy", { name, serverType, location });

/** Memory and disk of the machine the assistant runs on, in bytes. */
export interface HostFacts {
  memoryTotal: number;
  memoryAvailable: number;
  diskTotal: number;
  diskFree: number;
}

/** "At a glance" (`status_detail`). Parts that couldn't be read are absent, and said in `notes`. */
export interface StatusDetail {
  assistant: AssistantInfo;
  version?: string;
  update?: { latest: string; available: boolean; checkedAt: string };
  /** RFC 3339 */
  upSince?: string;
  host?: HostFacts;
  gatewayMemory?: number;
  sessions?: number;
  channels: string[];
  notes: string[];
}

export const statusDetail = () => call<StatusDetail>("status_detail");

/** The Usage section from what is already counted (fast: no call to the assistant). */
export const usageView = (days?: number) => call<UsageView>("usage_view", { days: days ?? null });
/** "Update now": ask the assistant what's new; the answer covers the last `days` days. */
export const usageSync = (days: number) => call<UsageView>("usage_sync", { days });
/** Save a breakdown as a file in the person's Downloads folder. */
export const usageExport = (format: ExportFormat, by: ExportBy, from: string, to: string) =>
  call<{ path: string }>("usage_export", { format, by, from, to, save: true });
/** Set the spend cap, or with `amount: null` remove it. */
export const spendCapSet = (
  cap: { amount: number | null; period: CapPeriod; levels: number[]; pauseAtCap: boolean },
  days: number,
) => call<UsageView>("spend_cap_set", { ...cap, days });
/** Resume after a pause at the spend cap. */
export const spendResume = (days: number) => call<UsageView>("spend_resume", { days });
/**
 * Sends an OpenRouter management key once (checked by the core with OpenRouter, then kept in
 * the keychain). Callers must clear the input right away.
 */
export const providerManagementSave = (secret: string, days: number) =>
  call<UsageView>("provider_management_save", { secret, days });
export const providerManagementForget = (days: number) => call<UsageView>("provider_management_forget", { days });

/** Every key the assistant depends on: where it lives, how old, how it rotates. */
export const keysInventory = () => call<KeyInfo[]>("keys_inventory");
/** "Rotate": the finished rotation, or an ApiError (rotation_rolled_back: nothing changed; rotation_pending: finishing later). */
/** `instanceId`: a server's id; this computer's assistant when absent. */
export const rotateKey = (key: KeyId, instanceId?: string) =>
  call<Rotation>("rotate_key", { key, instanceId });
/** A guided rotation: `key` (the model provider key, the Hetzner token) replaced by one the
 * person made at the provider (checked there first); the rotation then waits for them to
 * delete the old one (`rotation_needs_you`). */
export const rotateKeyWith = (key: KeyId, secret: string) => call<Rotation>("rotate_key_with", { key, secret });
/** "Get a new key from OpenRouter": opens the sign-in in the browser, waits for it (up to 10 minutes), then rotates to the key it gives, like rotateKeyWith. */
export const rotateKeySignIn = () => call<Rotation>("rotate_key_sign_in");
/** Stop waiting for that sign-in; the key is unchanged. */
export const rotateKeySignInCancel = () => call<void>("rotate_key_sign_in_cancel");
/** An OpenAI Admin key (checked at OpenAI first) and the project of the assistant's key (none: the organization's only one). */
export const openaiAdminSave = (secret: string, project?: string) =>
  call<{ projectId: string; serviceAccounts: number }>("openai_admin_save", { secret, project: project || null });
/** "Rotate all": every one-click key, one after the other; the others as `needs_you`. */
export const rotateAll = () => call<RotateResult[]>("rotate_all");
/** "Try again": carry on the unfinished rotations. */
export const rotationsResume = () => call<ResumeResult[]>("rotations_resume");
/** The reminder schedule and where the keys stand. */
export const keyReminders = () => call<KeyReminders>("key_reminders");
/** Remind every `everyDays` days, or never (null). */
export const setKeyReminders = (everyDays: number | null) => call<KeyReminders>("set_key_reminders", { everyDays });

// ---------- events ----------

/** Subscribe to the backend's event channel. Returns an unsubscribe function. */
export async function onEvent(handler: (event: BackendEvent) => void): Promise<Unlisten> {
  const t = await getTransport();
  return t.listen(handler);
}
