// The preview's keys: the assistant access token (rotates in one click) and the model
// provider key (guided: the person pastes a new key, then deletes the old one at the
// provider; "Check again" then finishes), with rotations that step through the same events the
// core sends. Only loaded with the mock (./mock.ts).
//
// Scenarios: `rotation-unfinished` has a rotation left half-way ("Finishing the last
// change…"; Try again finishes it); `rotation-fails` turns the next rotation back at
// "Checking that the new key works" (nothing changed); `keys-due` has a token older than
// the 90-day reminder ("Due for a change").

import type { ApiError, KeyId, KeyInfo, KeyReminders, ResumeResult, RotateResult, Rotation, RotationStep } from "./api";
import { ROTATION_STEPS } from "./api";

export interface MockKeys {
  /** RFC 3339 per key: first saved, last rotated. */
  gatewaySetAt?: string;
  gatewayRotatedAt?: string;
  providerSetAt?: string;
  fingerprint: string;
  /** An unfinished rotation of the token. */
  running?: Rotation;
  /** A rotation of the provider key waiting for the person to delete the old key. */
  providerRunning?: Rotation;
  providerFingerprint?: string;
  providerRotatedAt?: string;
  /** The next rotation turns back. */
  failNext?: boolean;
  nextId: number;
  /** The reminder schedule in days; null: never; absent: the default (90). */
  remindDays?: number | null;
}

const DEFAULT_REMIND_DAYS = 90;
const AGAIN_AFTER_DAYS = 7;
const DAY = 86_400_000;

const daysAgo = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();
const fp = () => `sha256:${Math.random().toString(16).slice(2, 6)}…${Math.random().toString(16).slice(2, 6)}`;

export function keysScenario(name: string): MockKeys {
  if (name === "fresh" || name === "installing" || name === "locked") return { fingerprint: fp(), nextId: 1 };
  const k: MockKeys = { gatewaySetAt: daysAgo(41), providerSetAt: daysAgo(1), fingerprint: "sha256:5d1e…a07c", nextId: 3 };
  if (name === "rotation-unfinished")
    k.running = {
      ...rotation(k, "gateway-token", 2),
      step: "verify_new",
      error: "Your assistant didn't answer",
      attempts: 4,
    };
  if (name === "rotation-fails") k.failNext = true;
  if (name === "keys-due") k.gatewaySetAt = daysAgo(120);
  return k;
}

function rotation(k: MockKeys, key: KeyId, id: number): Rotation {
  const now = new Date().toISOString();
  return {
    id,
    batch: null,
    instanceId: "local",
    key,
    step: "mint",
    direction: "forward",
    outcome: null,
    oldFingerprint: k.fingerprint,
    newFingerprint: null,
    error: null,
    attempts: 0,
    startedAt: now,
    updatedAt: now,
    finishedAt: null,
  };
}

const every = (k: MockKeys) => (k.remindDays === undefined ? DEFAULT_REMIND_DAYS : k.remindDays);

/** When a key set at `setAt` is due, as the core's `remind::due_of` has it. */
function dueOf(k: MockKeys, setAt: string | undefined): { dueAt?: string; due: boolean } {
  const days = every(k);
  if (days === null || !setAt) return { due: false };
  const at = new Date(setAt).getTime() + days * DAY;
  return { dueAt: new Date(at).toISOString(), due: at <= Date.now() };
}

export function inventory(k: MockKeys): KeyInfo[] {
  const out: KeyInfo[] = [];
  const gatewaySet = k.gatewayRotatedAt ?? k.gatewaySetAt;
  if (k.gatewaySetAt)
    out.push({
      instanceId: "local",
      key: "gateway-token",
      label: "Assistant access token",
      lives: "Your keychain; your assistant's settings name it, never hold it",
      setAt: k.gatewayRotatedAt ?? k.gatewaySetAt,
      ...(k.gatewayRotatedAt ? { rotatedAt: k.gatewayRotatedAt } : {}),
      fingerprint: k.fingerprint,
      how: "one_click",
      ...(k.running ? { running: k.running } : {}),
      ...dueOf(k, gatewaySet),
    });
  if (k.providerSetAt)
    out.push({
      instanceId: "local",
      key: "provider-key",
      label: "Model provider key",
      lives: "Your keychain, and your model provider's account",
      setAt: k.providerRotatedAt ?? k.providerSetAt,
      ...(k.providerRotatedAt ? { rotatedAt: k.providerRotatedAt } : {}),
      ...(k.providerFingerprint ? { fingerprint: k.providerFingerprint } : {}),
      how: "guided",
      note: "Make a new key in your provider's account and paste it here. Clawkeeper checks it, switches your assistant to it, then asks you to delete the old one.",
      // The mock's provider is OpenRouter: its sign-in gives a new key.
      signIn: true,
      ...(k.providerRunning ? { running: k.providerRunning, waitingForYou: true } : {}),
      ...dueOf(k, k.providerRotatedAt ?? k.providerSetAt),
    });
  return out;
}

/** The schedule and where the keys stand (the preview never reminds, so "due" keys are due now). */
export function reminders(k: MockKeys): KeyReminders {
  const keys = inventory(k).filter((i) => !i.running);
  const due = keys.filter((i) => i.due && i.dueAt).map((i) => ({ instanceId: i.instanceId, key: i.key, label: i.label, dueAt: i.dueAt as string }));
  const next = keys
    .filter((i) => i.dueAt)
    .map((i) => (i.due ? Date.now() : new Date(i.dueAt as string).getTime()))
    .sort((a, b) => a - b)[0];
  return {
    everyDays: every(k),
    choices: [30, 90, 180],
    defaultDays: DEFAULT_REMIND_DAYS,
    due,
    ...(next !== undefined ? { nextAt: new Date(next).toISOString() } : {}),
    nextKeys: next === undefined ? [] : keys.filter((i) => i.dueAt && new Date(i.dueAt).getTime() <= next + DAY).map((i) => i.label),
    againAfterDays: AGAIN_AFTER_DAYS,
  };
}

export function setReminders(k: MockKeys, everyDays: unknown): KeyReminders {
  if (everyDays !== null && (typeof everyDays !== "number" || everyDays < 1 || everyDays > 3650))
    throw problem("remind_input", "That isn't a reminder schedule.", "Choose never, or a number of days from 1 to 3650 (30, 90 or 180 in the app).");
  k.remindDays = everyDays as number | null;
  return reminders(k);
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const problem = (code: string, message: string, hint?: string): ApiError => ({ code, message, ...(hint ? { hint } : {}) });

/**
 * Step a rotation of the token through its steps, telling `emit` after each, as the
 * core's driver does. Resolves with the finished rotation or rejects with an ApiError.
 */
async function stepThrough(k: MockKeys, r: Rotation, emit: (r: Rotation) => void, save: () => void): Promise<Rotation> {
  const from = ROTATION_STEPS.indexOf(r.step);
  for (let i = Math.max(from, 0); i < ROTATION_STEPS.length; i++) {
    r.step = ROTATION_STEPS[i] as RotationStep;
    r.updatedAt = new Date().toISOString();
    k.running = r;
    save();
    emit({ ...r });
    await wait(650);
    if (r.step === "mint") r.newFingerprint = fp();
    if (r.step === "verify_new" && k.failNext) {
      k.failNext = false;
      r.direction = "rollback";
      r.error = "Your assistant didn't accept the new key";
      emit({ ...r });
      await wait(650);
      r.outcome = "rolled_back";
      r.finishedAt = new Date().toISOString();
      delete k.running;
      save();
      emit({ ...r });
      throw problem(
        "rotation_rolled_back",
        "The key was not changed: your assistant didn't accept the new key.",
        "Your old key still works. Fix what is said above, then rotate again.",
      );
    }
  }
  r.outcome = "done";
  r.error = null;
  r.finishedAt = new Date().toISOString();
  k.fingerprint = r.newFingerprint ?? fp();
  k.gatewayRotatedAt = r.finishedAt;
  delete k.running;
  save();
  emit({ ...r });
  return r;
}

export async function rotateKey(
  k: MockKeys,
  key: string,
  running: boolean,
  emit: (r: Rotation) => void,
  save: () => void,
): Promise<Rotation> {
  if (key === "provider-key")
    throw problem("rotation_unsupported", "Model provider key can't be rotated in one click yet.", "See the keys list for how to change it by hand.");
  if (key !== "gateway-token" || !k.gatewaySetAt)
    throw problem("rotation_input", "Clawkeeper doesn't know that key.", "Pick one from the keys list.");
  if (!running)
    throw problem(
      "assistant_not_running",
      "Your assistant isn't running, so the new key can't be checked.",
      "Start it, then rotate again. Your keys are unchanged.",
    );
  const r = k.running ?? rotation(k, "gateway-token", k.nextId++);
  return stepThrough(k, r, emit, save);
}

/** The person's new provider key: checked, installed, verified; then it waits for them. */
export async function rotateProviderKeyWith(
  k: MockKeys,
  secret: string,
  running: boolean,
  emit: (r: Rotation) => void,
  save: () => void,
): Promise<Rotation> {
  if (!running)
    throw problem(
      "assistant_not_running",
      "Your assistant isn't running, so the new key can't be checked.",
      "Start it, then rotate again. Your keys are unchanged.",
    );
  if (!secret.startsWith("sk-"))
    throw problem(
      "rotation_rolled_back",
      "The key was not changed: Making a new key: your provider refused the new key; check that you copied all of it.",
      "Your old key still works. Fix what is said above, then rotate again.",
    );
  const r = rotation(k, "provider-key", k.nextId++);
  r.oldFingerprint = k.providerFingerprint ?? "sha256:0b7e…41d2";
  for (const step of ["mint", "install", "verify_new", "revoke_old"] as RotationStep[]) {
    r.step = step;
    r.updatedAt = new Date().toISOString();
    if (step === "install") r.newFingerprint = fp();
    emit({ ...r });
    await wait(650);
  }
  r.error = "Cancelling the old key: The new key works. Now delete the old key at openrouter.ai/settings/keys — Clawkeeper then checks that it no longer works and finishes.";
  k.providerRunning = r;
  save();
  emit({ ...r });
  throw problem(
    "rotation_needs_you",
    "The new key works. Now delete the old key at openrouter.ai/settings/keys — Clawkeeper then checks that it no longer works and finishes.",
    "Both keys work until then. Clawkeeper checks again by itself every few minutes; or press Check again.",
  );
}

export async function rotateAll(k: MockKeys, running: boolean, emit: (r: Rotation) => void, save: () => void): Promise<RotateResult[]> {
  const out: RotateResult[] = [];
  for (const info of inventory(k)) {
    const base = { instanceId: info.instanceId, key: info.key, label: info.label };
    if (info.how !== "one_click") {
      out.push({ ...base, result: "needs_you", ...(info.note ? { problem: problem("rotation_guided", info.note) } : {}) });
      continue;
    }
    try {
      out.push({ ...base, result: "rotated", rotation: await rotateKey(k, info.key, running, emit, save) });
    } catch (e) {
      const p = e as ApiError;
      out.push({ ...base, result: p.code === "rotation_pending" ? "pending" : "unchanged", problem: p });
    }
  }
  return out;
}

export async function resume(k: MockKeys, running: boolean, emit: (r: Rotation) => void, save: () => void): Promise<ResumeResult[]> {
  const p = k.providerRunning;
  if (p) {
    // The preview's person has deleted the old key by now.
    for (const step of ["verify_old", "commit"] as RotationStep[]) {
      p.step = step;
      p.error = null;
      emit({ ...p });
      await wait(650);
    }
    p.outcome = "done";
    p.finishedAt = new Date().toISOString();
    k.providerFingerprint = p.newFingerprint ?? fp();
    k.providerRotatedAt = p.finishedAt;
    delete k.providerRunning;
    save();
    emit({ ...p });
    return [{ rotation: p }];
  }
  const r = k.running;
  if (!r) return [];
  if (!running)
    return [
      {
        rotation: r,
        problem: problem(
          "rotation_pending",
          "The key change isn't finished yet: your assistant isn't running.",
          "Your assistant keeps working meanwhile. Clawkeeper finishes the change by itself when it can; or press Try again.",
        ),
      },
    ];
  r.error = null;
  try {
    return [{ rotation: await stepThrough(k, r, emit, save) }];
  } catch (e) {
    return [{ rotation: r, problem: e as ApiError }];
  }
}
