// The preview's usage ledger: a seeded 90-day history (3 models, 2 channels, a handful
// of conversations) so the status window's "Usage and spend" section can be seen and
// clicked in a plain browser. Same history on every load: the numbers come from the
// day's date, not from Math.random. Only loaded with the mock (./mock.ts).

import type { CapView, ProviderUsage, SpendCap, Tokens, UsageRow, UsageSummary, UsageView } from "./api";

export type UsageScenario = "healthy" | "capped" | "fresh";

/** What the preview keeps between pages (sessionStorage): the rest is recomputed. */
export interface MockUsage {
  scenario: UsageScenario;
  cap?: SpendCap;
  paused: boolean;
  /** RFC 3339 */
  syncedAt?: string;
  error?: string;
  /** The preview's "Update now" fails once after an error, then works. */
  retried?: boolean;
  /** Levels already announced this period ("2026-11-01:80"), as the core keeps them. */
  told: string[];
  /** An OpenRouter management key is saved (the cap is then set at OpenRouter). */
  managementKey?: boolean;
}

const DAY_MS = 86_400_000;
const HISTORY_DAYS = 90;

const MODELS = [
  // $ per token: input, output, cache read
  { key: "anthropic/claude-sonnet-4.5", price: [3e-6, 15e-6, 0.3e-6], calls: [3, 14], input: [3000, 9000], output: [250, 900], share: 1 },
  { key: "openai/gpt-4o-mini", price: [0.15e-6, 0.6e-6, 0.075e-6], calls: [4, 28], input: [1200, 3200], output: [120, 400], share: 0.9 },
  { key: "google/gemini-2.5-flash", price: [0.3e-6, 2.5e-6, 0.075e-6], calls: [2, 8], input: [5000, 12000], output: [300, 900], share: 0.4 },
] as const;

const SESSIONS = [
  { key: "agent:main:app:7f1c", label: "Meal plan for the week", channel: "app" },
  { key: "agent:main:app:2b90", label: "Trip to Lisbon", channel: "app" },
  { key: "agent:main:app:c4d2", label: "Letter to the tax office", channel: "app" },
  { key: "agent:main:app:91aa", label: "Garden questions", channel: "app" },
  { key: "agent:main:telegram:5e03", label: "Morning news summary", channel: "telegram" },
  { key: "agent:main:telegram:0d6b", label: "Family chat helper", channel: "telegram" },
  { key: "agent:main:app:e812", channel: "app" },
] as const;

interface Entry {
  day: string;
  model: string;
  session: number;
  tokens: Tokens;
  cost: number;
  calls: number;
}

const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const dayMs = (day: string) => Date.parse(`${day}T00:00:00Z`);
const plus = (day: string, n: number) => dayOf(dayMs(day) + n * DAY_MS);
export const todayUtc = () => dayOf(Date.now());

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const between = (r: () => number, [lo, hi]: readonly [number, number]) => lo + (hi - lo) * r();

/** One day's use, from the day itself (so it is the same on every load). */
function dayEntries(day: string, today: string): Entry[] {
  const n = Math.round(dayMs(day) / DAY_MS);
  const r = rng(n * 2654435761);
  const dow = new Date(dayMs(day)).getUTCDay();
  const isToday = day === today;
  if (!isToday && r() > (dow === 0 || dow === 6 ? 0.6 : 0.88)) return [];
  // Today is only partly over; one busy day ten days ago (a "spike").
  const daysAgo = Math.round((dayMs(today) - dayMs(day)) / DAY_MS);
  const scale = isToday ? Math.max(0.35, new Date().getUTCHours() / 24) * 1.6 : daysAgo === 10 ? 3.6 : 1;
  const out: Entry[] = [];
  for (const m of MODELS) {
    if (r() > m.share) continue;
    const calls = Math.max(1, Math.round(between(r, m.calls) * scale));
    const input = Math.round(calls * between(r, m.input));
    const output = Math.round(calls * between(r, m.output));
    const cacheRead = Math.round(input * between(r, [0.2, 0.7]));
    const cacheWrite = Math.round(input * between(r, [0, 0.08]));
    const cost = input * m.price[0] + output * m.price[1] + cacheRead * m.price[2] + cacheWrite * m.price[0] * 1.25;
    // Most of it goes to one conversation, some to a second.
    const first = Math.floor(r() * SESSIONS.length);
    const second = Math.floor(r() * SESSIONS.length);
    const split = between(r, [0.55, 0.9]);
    for (const [s, part] of [
      [first, split],
      [second, 1 - split],
    ] as const) {
      const tokens: Tokens = {
        input: Math.round(input * part),
        output: Math.round(output * part),
        cacheRead: Math.round(cacheRead * part),
        cacheWrite: Math.round(cacheWrite * part),
        total: 0,
      };
      tokens.total = tokens.input + tokens.output + tokens.cacheRead + tokens.cacheWrite;
      out.push({ day, model: m.key, session: s, tokens, cost: cost * part, calls: Math.max(1, Math.round(calls * part)) });
    }
  }
  return out;
}

function ledger(u: MockUsage): Entry[] {
  if (u.scenario === "fresh") return [];
  const today = todayUtc();
  const out: Entry[] = [];
  for (let i = HISTORY_DAYS - 1; i >= 0; i--) out.push(...dayEntries(plus(today, -i), today));
  return out;
}

const zero = (): Tokens => ({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0, total: 0 });
function addTokens(a: Tokens, b: Tokens) {
  a.input += b.input;
  a.output += b.output;
  a.cacheRead += b.cacheRead;
  a.cacheWrite += b.cacheWrite;
  a.total += b.total;
}

function group(entries: Entry[], keyOf: (e: Entry) => string, extra: (e: Entry, r: UsageRow) => void = () => {}) {
  const rows = new Map<string, UsageRow>();
  for (const e of entries) {
    const k = keyOf(e);
    let row = rows.get(k);
    if (!row) rows.set(k, (row = { key: k, tokens: zero(), cost: 0 }));
    addTokens(row.tokens, e.tokens);
    row.cost += e.cost;
    extra(e, row);
  }
  return [...rows.values()];
}

const totals = (entries: Entry[]) => {
  const t = { tokens: zero(), cost: 0 };
  for (const e of entries) {
    addTokens(t.tokens, e.tokens);
    t.cost += e.cost;
  }
  return t;
};

const inRange = (entries: Entry[], from: string, to: string) => entries.filter((e) => e.day >= from && e.day <= to);

/** The cap's current period: today, this week (Monday first) or this month (UTC). */
export function capBounds(period: SpendCap["period"], today: string): [string, string] {
  if (period === "daily") return [today, today];
  if (period === "weekly") {
    const dow = (new Date(dayMs(today)).getUTCDay() + 6) % 7;
    return [plus(today, -dow), plus(today, 6 - dow)];
  }
  const d = new Date(dayMs(today));
  const start = dayOf(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
  const end = dayOf(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0));
  return [start, end];
}

function capView(u: MockUsage, all: Entry[], today: string): CapView | undefined {
  if (!u.cap) return undefined;
  const [periodStart, periodEnd] = capBounds(u.cap.period, today);
  const spent = totals(inRange(all, periodStart, periodEnd)).cost;
  return { ...u.cap, periodStart, periodEnd, spent, percent: (100 * spent) / u.cap.amount };
}

export function summary(u: MockUsage): UsageSummary {
  return view(u, 1).summary;
}

function provider(u: MockUsage, todayCost: number, monthCost: number, cap?: CapView): ProviderUsage | undefined {
  if (u.scenario === "fresh") return undefined;
  const checkedAt = new Date(Date.now() - 4 * 60_000).toISOString();
  // OpenRouter also counts use of the key outside this assistant, and lags a little.
  const p: ProviderUsage = {
    name: "OpenRouter",
    today: todayCost * 0.93,
    week: monthCost * 0.3,
    month: monthCost * 1.07 + 0.38,
    capEnforced: Boolean(u.managementKey && cap),
    managementKey: Boolean(u.managementKey),
    creditsLeft: u.scenario === "capped" ? 12.9 : 18.42,
    checkedAt,
    differs: [],
  };
  if (u.managementKey && cap) {
    p.limit = cap.amount;
    p.limitRemaining = Math.max(0, cap.amount - (p.month ?? 0));
    p.limitReset = cap.period;
  }
  const differs = (app: number, prov: number) => Math.abs(app - prov) > 0.01 && Math.abs(app - prov) > 0.05 * Math.max(app, prov);
  if (differs(todayCost, p.today!)) p.differs.push({ period: "today", app: todayCost, provider: p.today! });
  if (differs(monthCost, p.month!)) p.differs.push({ period: "month", app: monthCost, provider: p.month! });
  return p;
}

/** The section for the last `days` days, as the core builds it. */
export function view(u: MockUsage, days = 30): UsageView {
  const today = todayUtc();
  const from = plus(today, -Math.min(Math.max(1, Math.round(days)), 3660) + 1);
  const all = ledger(u);
  const range = inRange(all, from, today);
  const [monthFrom, monthTo] = capBounds("monthly", today);
  const todayTotals = totals(inRange(all, today, today));
  const monthTotals = totals(inRange(all, monthFrom, monthTo));
  const cap = capView(u, all, today);
  const byCost = (a: UsageRow, b: UsageRow) => b.cost - a.cost;
  const modelRow = (e: Entry, r: UsageRow) => {
    r.calls = (r.calls ?? 0) + e.calls;
  };
  // By model, only the total of tokens is known (as in the core).
  const onlyTotal = (r: UsageRow): UsageRow => ({ ...r, tokens: { ...zero(), total: r.tokens.total } });
  const sessions = group(range, (e) => SESSIONS[e.session]!.key)
    .map((r) => {
      const s = SESSIONS.find((x) => x.key === r.key);
      return s && "label" in s ? { ...r, label: s.label } : r;
    })
    .sort(byCost)
    .slice(0, 20);
  const out: UsageView = {
    daysAre: "utc",
    today,
    from,
    to: today,
    summary: {
      today: todayTotals.cost,
      month: monthTotals.cost,
      ...(cap ? { capPercent: cap.percent } : {}),
      ...(u.syncedAt ? { syncedAt: u.syncedAt } : {}),
      ...(u.error ? { error: u.error } : {}),
      paused: u.paused,
    },
    todayTotals,
    monthTotals,
    rangeTotals: totals(range),
    daily: group(range, (e) => e.day).map((r) => ({ ...r, day: r.key, key: "" })),
    modelDaily: group(range, (e) => `${e.day} ${e.model}`, modelRow).map((r) => {
      const [day, key] = r.key.split(" ") as [string, string];
      return { ...onlyTotal(r), day, key };
    }),
    models: group(range, (e) => e.model, modelRow).map(onlyTotal).sort(byCost),
    channels: group(range, (e) => SESSIONS[e.session]!.channel).sort(byCost),
    sessions,
  };
  if (cap) out.cap = cap;
  const p = provider(u, todayTotals.cost, monthTotals.cost, cap);
  if (p) out.provider = p;
  return out;
}

/** The starting point for a `?mock=` scenario. */
export function usageScenario(name: string): MockUsage {
  const syncedAt = new Date(Date.now() - 3 * 60_000).toISOString();
  if (name === "fresh" || name === "installing" || name === "locked") return { scenario: "fresh", paused: false, told: [] };
  if (name === "usage-error")
    return {
      scenario: "healthy",
      paused: false,
      syncedAt: new Date(Date.now() - 2 * 3600_000).toISOString(),
      error: "Your assistant's usage couldn't be read: your assistant didn't answer.",
      cap: { amount: 10, period: "monthly", levels: [50, 80, 100], pauseAtCap: false },
      told: [],
    };
  if (name === "capped") {
    const u: MockUsage = { scenario: "capped", paused: true, syncedAt, told: [], managementKey: true };
    // A monthly cap just under what this month has already cost.
    const month = view(u, 1).summary.month;
    const amount = month >= 2 ? Math.floor(month) : Math.max(0.1, Math.floor(month * 10) / 10);
    u.cap = { amount, period: "monthly", levels: [50, 80, 100], pauseAtCap: true };
    const [start] = capBounds("monthly", todayUtc());
    u.told = [50, 80, 100].map((l) => `${start}:${l}`);
    return u;
  }
  return {
    scenario: "healthy",
    paused: false,
    syncedAt,
    cap: { amount: 10, period: "monthly", levels: [50, 80, 100], pauseAtCap: false },
    told: [],
  };
}
