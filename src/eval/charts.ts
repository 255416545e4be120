/**
 * The report's charts: Vega-Lite specs compiled to Vega and rendered to SVG strings on the server
 * (vega-lite 5 + vega 5: vega-lite 6 needs Node 22). All data is inline; the loader refuses every
 * URL, so rendering can never fetch anything, and the SVG only names fonts (no @font-face).
 * Vega escapes the text it writes into the SVG (student names are user-controlled).
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import type { EvalReport } from '../schema/eval-report.js';

export type ChartKey = 'loss' | 'quality' | 'size' | 'reliability' | 'latency';
export type Charts = Record<ChartKey, string | null>;

const W = 460, H = 240;
const CONFIG = {
  font: 'system-ui, -apple-system, "Segoe UI", sans-serif',
  view: { stroke: '#ddd' },
  axis: { labelColor: '#333', titleColor: '#333', gridColor: '#eee' },
  legend: { labelLimit: 220 },
  range: { category: ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#ff9da6', '#9d755d'] },
};

type Spec = Omit<TopLevelSpec, 'config'> & Record<string, unknown>;

/** One colour per student, the same in every chart (the domain fixes the order). */
const studentColor = (r: EvalReport) => ({ field: 'student', type: 'nominal', title: 'student', scale: { domain: r.students.map((s) => s.name) } });

/** Training and validation loss per step, one colour per student, dashed for validation. */
export function lossSpec(r: EvalReport): Spec | null {
  const values = r.students.flatMap((s) => s.trainLog.flatMap((p) => [
    { student: s.name, series: 'train', step: p.step, loss: p.loss },
    ...(p.valLoss !== undefined ? [{ student: s.name, series: 'validation', step: p.step, loss: p.valLoss }] : []),
  ]));
  if (!values.length) return null;
  return {
    width: W, height: H, data: { values }, mark: { type: 'line', point: { size: 20 } },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } },
      color: studentColor(r),
      strokeDash: { field: 'series', type: 'nominal', title: 'split', sort: ['train', 'validation'] },
      detail: { field: 'series' },
    },
  };
}

/** KL and agreement per student, side by side. */
export function qualitySpec(r: EvalReport): Spec | null {
  const values = r.students.map((s) => ({ student: s.name, kind: s.kind, kl: s.metrics.kl, agreement: s.metrics.agreement }));
  if (!values.some((v) => v.kl !== null || v.agreement !== null)) return null;
  const bar = (field: string, title: string, domain?: number[]) => ({
    width: W / 2 - 30, height: H, mark: 'bar',
    encoding: {
      x: { field: 'student', type: 'nominal', title: null, sort: null, axis: { labelAngle: -30 } },
      y: { field, type: 'quantitative', title, ...(domain ? { scale: { domain } } : {}) },
      color: studentColor(r),
      tooltip: [{ field: 'student' }, { field: 'kind' }, { field, format: '.4f' }],
    },
  });
  return { data: { values }, hconcat: [bar('kl', 'KL(teacher‖student), nats/token'), bar('agreement', 'top-1 agreement', [0, 1])] };
}

/** Stored weight bytes vs agreement: what each byte of student buys. */
export function sizeSpec(r: EvalReport): Spec | null {
  const values = r.students.filter((s) => s.metrics.agreement !== null).map((s) => ({ student: s.name, kind: s.kind, kb: s.size.weightBytes / 1024, agreement: s.metrics.agreement }));
  if (!values.length) return null;
  const kbs = values.map((v) => v.kb);
  const logScale = Math.max(...kbs) / Math.max(Math.min(...kbs), 1e-9) > 10;
  const x = { field: 'kb', type: 'quantitative', title: 'stored weights (KiB)', scale: { type: logScale ? 'log' : 'linear', zero: false, nice: true } };
  const y = { field: 'agreement', type: 'quantitative', title: 'top-1 agreement', scale: { domain: [0, 1] } };
  return {
    width: W, height: H, data: { values },
    layer: [
      { mark: { type: 'point', filled: true, size: 90 }, encoding: { x, y, color: studentColor(r), tooltip: [{ field: 'student' }, { field: 'kind' }, { field: 'kb', format: '.1f' }] } },
      { mark: { type: 'text', dy: -10, fontSize: 11 }, encoding: { x, y, text: { field: 'student' } } },
    ],
  };
}

/** Reliability diagram: accuracy vs confidence per bin; the diagonal is perfect calibration. */
export function reliabilitySpec(r: EvalReport): Spec | null {
  const values = r.students.flatMap((s) => s.metrics.reliability.filter((b) => b.count > 0).map((b) => ({ student: s.name, confidence: b.confidence, accuracy: b.accuracy, count: b.count })));
  if (!values.length) return null;
  const unit = { type: 'quantitative', scale: { domain: [0, 1] } };
  return {
    width: H + 40, height: H + 40,
    layer: [
      { data: { values: [{ a: 0, b: 0 }, { a: 1, b: 1 }] }, mark: { type: 'line', color: '#999', strokeDash: [4, 4] },
        encoding: { x: { field: 'a', ...unit, title: 'confidence (student top-1 probability)' }, y: { field: 'b', ...unit, title: 'accuracy (top-1 = actual token)' } } },
      { data: { values }, mark: { type: 'line', point: true },
        encoding: { x: { field: 'confidence', ...unit }, y: { field: 'accuracy', ...unit }, color: studentColor(r),
          tooltip: [{ field: 'student' }, { field: 'count' }, { field: 'confidence', format: '.3f' }, { field: 'accuracy', format: '.3f' }] } },
    ],
  };
}

/** Distribution of the timed next-token steps per student. */
export function latencySpec(r: EvalReport): Spec | null {
  const values = r.students.flatMap((s) => s.latency.samplesMs.map((ms) => ({ student: s.name, ms })));
  if (!values.length) return null;
  return {
    width: W, height: Math.max(60, 36 * r.students.length), data: { values },
    mark: { type: 'boxplot', extent: 'min-max' },
    encoding: {
      y: { field: 'student', type: 'nominal', title: null, sort: null },
      x: { field: 'ms', type: 'quantitative', title: 'next-token latency (ms)', scale: { zero: true } },
      color: { ...studentColor(r), legend: null },
    },
  };
}

/** A loader that loads nothing: every figure is inline, and a report must never reach the network. */
function noNetworkLoader(): ReturnType<typeof vega.loader> {
  const l = vega.loader();
  const refuse = async (uri: string) => { throw new Error(`kd eval charts load no external resources (asked for ${uri})`); };
  l.load = refuse as typeof l.load;
  l.sanitize = refuse as typeof l.sanitize;
  return l;
}

/** One Vega-Lite spec to an SVG string; clip-path ids are prefixed so several SVGs can share a page. */
export async function renderSvg(spec: Spec, idPrefix: string): Promise<string> {
  const full = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', ...spec, config: CONFIG } as TopLevelSpec;
  const view = new vega.View(vega.parse(vl.compile(full).spec), { renderer: 'none', loader: noNetworkLoader() });
  try {
    const svg = await view.toSVG();
    return svg.replace(/(id="|url\(#)(clip\d+)/g, `$1${idPrefix}-$2`);
  } finally {
    view.finalize();
  }
}

export async function renderCharts(r: EvalReport): Promise<Charts> {
  const specs: Record<ChartKey, Spec | null> = {
    loss: lossSpec(r), quality: qualitySpec(r), size: sizeSpec(r), reliability: reliabilitySpec(r), latency: latencySpec(r),
  };
  const out = {} as Charts;
  for (const [k, spec] of Object.entries(specs) as [ChartKey, Spec | null][]) out[k] = spec ? await renderSvg(spec, `kd-${k}`) : null;
  return out;
}
