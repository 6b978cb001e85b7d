// The Usage section's charts, drawn with uPlot (small, canvas, no dependencies). Loaded
// lazily by ./usage.ts so the status window opens before the charting code is parsed.
// Colours come from the stylesheet's --chart-* variables, so the charts follow the
// system's light/dark theme; they are redrawn when it changes and resized with the
// window. Each chart's host is role="img" with a summary; the numbers are in a table
// next to it (built by ./usage.ts).

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { LOCALE } from "./ui";

export interface ChartSpec {
  /** money: stacked bars of dollars; tokens: stacked bars of tokens; cap: spend so far against the cap. */
  kind: "money" | "tokens" | "cap";
  /** UTC days "YYYY-MM-DD", one per x position. */
  days: string[];
  names: string[];
  /** One array per name, one value per day (null: not known). */
  series: (number | null)[][];
  cap?: number;
  tone?: "ok" | "warn" | "bad";
  host: HTMLElement;
  readout: HTMLElement;
}

const HEIGHT = { money: 190, tokens: 150, cap: 170 } as const;

const DAY = new Intl.DateTimeFormat(LOCALE, { day: "numeric", month: "short", timeZone: "UTC" });
const DAY_LONG = new Intl.DateTimeFormat(LOCALE, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
const dayDate = (day: string) => new Date(`${day}T00:00:00Z`);
const COMPACT = new Intl.NumberFormat(LOCALE, { notation: "compact", maximumFractionDigits: 1 });

function money(d: number): string {
  if (!d) return "$0.00";
  return Math.abs(d) < 0.01 ? `$${d.toFixed(3)}` : `$${d.toFixed(2)}`;
}
/** Axis labels: "$0", "$0.25", "$1.5", "$20". */
function moneyTick(v: number): string {
  if (v === 0) return "$0";
  if (Math.abs(v) < 1) return `$${v.toFixed(2)}`;
  return `$${Number(v.toFixed(1))}`;
}

interface Palette {
  series: string[];
  grid: string;
  axis: string;
  accent: string;
  accentSoft: string;
  tone: Record<"ok" | "warn" | "bad", string>;
}

function palette(): Palette {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string) => css.getPropertyValue(name).trim();
  return {
    series: [1, 2, 3, 4, 5].map((i) => v(`--chart-${i}`)),
    grid: v("--chart-grid"),
    axis: v("--muted"),
    accent: v("--chart-1"),
    accentSoft: v("--chart-fill"),
    tone: { ok: v("--muted"), warn: v("--warn"), bad: v("--bad") },
  };
}

const FONT = `12px ${getComputedStyle(document.documentElement).getPropertyValue("--font").trim() || "system-ui, sans-serif"}`;

function axes(p: Palette, spec: ChartSpec): uPlot.Axis[] {
  const n = spec.days.length;
  const common = { stroke: p.axis, font: FONT, ticks: { show: false }, border: { show: false } };
  return [
    {
      ...common,
      grid: { show: false },
      size: 26,
      gap: 6,
      space: 56,
      incrs: [1, 2, 3, 7, 14, 28],
      values: (_u, splits) => splits.map((i) => (Number.isInteger(i) && i >= 0 && i < n ? DAY.format(dayDate(spec.days[i]!)) : "")),
    },
    {
      ...common,
      grid: { stroke: p.grid, width: 1 },
      space: 36,
      size: 52,
      values: (_u, splits) => splits.map((v) => (spec.kind === "tokens" ? COMPACT.format(v) : moneyTick(v))),
    },
  ];
}

/** Stacked bars: uPlot draws in order, so the tallest stack goes first and each lower one on top. */
function stacked(p: Palette, spec: ChartSpec): { series: uPlot.Series[]; data: uPlot.AlignedData } {
  const n = spec.days.length;
  const sums: number[][] = [];
  let run = new Array<number>(n).fill(0);
  for (const s of spec.series) {
    run = run.map((r, i) => r + (s[i] ?? 0));
    sums.push(run);
  }
  const bars = uPlot.paths.bars!({ size: [0.72, 26], gap: 1 });
  const order = spec.series.map((_, j) => j).reverse();
  return {
    series: [
      {},
      ...order.map((j) => {
        const c = p.series[j % p.series.length]!;
        return { label: spec.names[j]!, fill: c, stroke: c, width: 0, paths: bars, points: { show: false } };
      }),
    ],
    data: [spec.days.map((_, i) => i), ...order.map((j) => sums[j]!)],
  };
}

function capSeries(p: Palette, spec: ChartSpec): { series: uPlot.Series[]; data: uPlot.AlignedData } {
  const cap = spec.cap ?? 0;
  return {
    series: [
      {},
      {
        label: "Spent so far",
        stroke: p.accent,
        fill: p.accentSoft,
        width: 2,
        points: { show: spec.days.length <= 31, size: 5, fill: p.accent },
        spanGaps: false,
      },
      { label: "Your cap", stroke: p.tone[spec.tone ?? "ok"], width: 1.5, dash: [6, 5], points: { show: false } },
    ],
    data: [spec.days.map((_, i) => i), spec.series[0]!, spec.days.map(() => cap)],
  };
}

function readoutText(spec: ChartSpec, i: number | null | undefined): string {
  if (i === null || i === undefined || !spec.days[i]) return "";
  const day = DAY_LONG.format(dayDate(spec.days[i]!));
  const val = (j: number) => spec.series[j]?.[i] ?? 0;
  switch (spec.kind) {
    case "money": {
      const total = spec.series.reduce((s, _, j) => s + val(j), 0);
      const parts = spec.names.map((n, j) => [n, val(j)] as const).filter(([, c]) => c > 0);
      return `${day}: ${money(total)}${parts.length ? ` — ${parts.map(([n, c]) => `${n} ${money(c)}`).join(" · ")}` : ""}`;
    }
    case "tokens":
      return `${day}: ${COMPACT.format(val(0))} read, ${COMPACT.format(val(1))} written`;
    case "cap": {
      const v = spec.series[0]?.[i];
      return v === null || v === undefined ? `${day}: not yet` : `${day}: ${money(v)} spent so far of ${money(spec.cap ?? 0)}`;
    }
  }
}

interface Drawn {
  u: uPlot;
  spec: ChartSpec;
}
let drawn: Drawn[] = [];

const width = (host: HTMLElement) => Math.max(240, Math.floor(host.clientWidth));

const resize = new ResizeObserver((entries) => {
  for (const e of entries) {
    const d = drawn.find((x) => x.spec.host === e.target);
    if (!d) continue;
    const w = width(d.spec.host);
    if (w !== d.u.width) d.u.setSize({ width: w, height: HEIGHT[d.spec.kind] });
  }
});

function draw(spec: ChartSpec, p: Palette): Drawn {
  const n = spec.days.length;
  const { series, data } = spec.kind === "cap" ? capSeries(p, spec) : stacked(p, spec);
  const top =
    spec.kind === "cap"
      ? Math.max(spec.cap ?? 0, ...spec.series[0]!.map((v) => v ?? 0))
      : Math.max(0, ...(data[1] as number[]));
  const opts: uPlot.Options = {
    width: width(spec.host),
    height: HEIGHT[spec.kind],
    legend: { show: false },
    select: { show: false, left: 0, top: 0, width: 0, height: 0 },
    cursor: { y: false, points: { show: false }, drag: { x: false, y: false, setScale: false } },
    padding: [8, 8, 0, 0],
    scales: {
      x: { time: false, range: () => [-0.5, n - 0.5] },
      y: { range: () => [0, top > 0 ? top * (spec.kind === "cap" ? 1.15 : 1.08) : 1] },
    },
    axes: axes(p, spec),
    series,
    hooks: {
      setCursor: [(u) => (spec.readout.textContent = readoutText(spec, u.cursor.idx) || (spec.readout.dataset.hint ?? ""))],
    },
  };
  spec.host.replaceChildren();
  const u = new uPlot(opts, data, spec.host);
  resize.observe(spec.host);
  return { u, spec };
}

export function destroyCharts() {
  for (const d of drawn) {
    resize.unobserve(d.spec.host);
    d.u.destroy();
  }
  drawn = [];
}

/** Draw (or redraw) the section's charts into their hosts. */
export function drawCharts(specs: ChartSpec[]) {
  destroyCharts();
  const p = palette();
  drawn = specs.map((s) => draw(s, p));
}

// Follow the system's light/dark theme.
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  if (drawn.length) drawCharts(drawn.map((d) => d.spec));
});
