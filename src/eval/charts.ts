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
const PALETTE = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#ff9da6', '#9d755d'];
const CONFIG = {
  font: 'system-ui, -apple-system, "Segoe UI", sans-serif',
  view: { stroke: '#ddd' },
  axis: { labelColor: '#333', titleColor: '#333', gridColor: '#eee' },
  legend: { labelLimit: 220 },
  range: { category: PALETTE },
};

type Spec = Omit<TopLevelSpec, 'config'> & Record<string, unknown>;

/** One colour per student, the same in every chart (the domain fixes the order). */
const studentColor = (r: EvalReport) => ({ field: 'student', type: 'nominal', title: 'student', scale: { domain: r.students.map((s) => s.name) } });

/**
 * Training and validation loss per step, one colour per student that has a training log (compressed
 * copies have none and are not listed); train a thin solid line, validation dashed with points.
 */
export function lossSpec(r: EvalReport): Spec | null {
  const logged = r.students.filter((s) => s.trainLog.length);
  const values = logged.flatMap((s) => s.trainLog.flatMap((p) => [
    { student: s.name, series: 'train', step: p.step, loss: p.loss },
    ...(p.valLoss !== undefined ? [{ student: s.name, series: 'validation', step: p.step, loss: p.valLoss }] : []),
  ]));
  if (!values.length) return null;
  const color = { field: 'student', type: 'nominal', title: 'student', scale: { domain: logged.map((s) => s.name), range: logged.map((s) => PALETTE[r.students.indexOf(s) % PALETTE.length]) } };
  const x = { field: 'step', type: 'quantitative', title: 'step' };
  const y = { field: 'loss', type: 'quantitative', title: 'loss (nats per token)', scale: { zero: false } };
  return {
    width: W, height: H,
    layer: [
      { data: { values: values.filter((v) => v.series === 'train') }, mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y, color, strokeDash: { datum: 'train', type: 'nominal', title: 'split', scale: { domain: ['train', 'validation'], range: [[1, 0], [6, 4]] } } } },
      { data: { values: values.filter((v) => v.series === 'validation') }, mark: { type: 'line', strokeWidth: 2.5, point: { size: 40 } }, encoding: { x, y, color, strokeDash: { datum: 'validation', type: 'nominal' } } },
    ],
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

/** Deployable weight bytes vs agreement: what each byte of student buys. Colour names the model (no text labels: they overlap). */
export function sizeSpec(r: EvalReport): Spec | null {
  const values = r.students.filter((s) => s.metrics.agreement !== null).map((s) => ({ student: s.name, kind: s.kind, kb: s.size.deployableBytes / 1024, agreement: s.metrics.agreement }));
  if (!values.length) return null;
  const kbs = values.map((v) => v.kb);
  const logScale = Math.max(...kbs) / Math.max(Math.min(...kbs), 1e-9) > 10;
  const x = { field: 'kb', type: 'quantitative', title: 'deployable weights (KiB)', scale: { type: logScale ? 'log' : 'linear', zero: false, nice: true } };
  const y = { field: 'agreement', type: 'quantitative', title: 'top-1 agreement', scale: { domain: [0, 1] } };
  return {
    width: W, height: H, data: { values },
    mark: { type: 'point', filled: true, size: 110, opacity: 0.85 },
    encoding: { x, y, color: studentColor(r), shape: { field: 'kind', type: 'nominal', title: 'kind' }, tooltip: [{ field: 'student' }, { field: 'kind' }, { field: 'kb', format: '.1f' }, { field: 'agreement', format: '.3f' }] },
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

/** Distribution of the timed next-token steps per model (the teacher checkpoint too), at the short and the long context. */
export function latencySpec(r: EvalReport): Spec | null {
  const models = [...(r.teacher.checkpoint ? [{ name: 'teacher', a: r.teacher.checkpoint.latency, b: r.teacher.checkpoint.latencyLong }] : []),
    ...r.students.map((s) => ({ name: s.name, a: s.latency, b: s.latencyLong }))];
  const values = models.flatMap((m) => [m.a, m.b].flatMap((l) => l.samplesMs.map((ms) => ({ student: m.name, context: `${l.context} tokens`, ms }))));
  if (!values.length) return null;
  return {
    width: W, height: Math.max(60, 28 * models.length), data: { values },
    mark: { type: 'boxplot', extent: 1.5 },
    encoding: {
      row: { field: 'context', type: 'nominal', title: 'context', sort: null },
      y: { field: 'student', type: 'nominal', title: null, sort: null },
      x: { field: 'ms', type: 'quantitative', title: 'next-token latency (ms)', scale: { zero: true } },
      color: { field: 'student', type: 'nominal', legend: null, scale: { domain: models.map((m) => m.name), range: models.map((m, i) => (m.name === 'teacher' && r.teacher.checkpoint ? '#333' : PALETTE[(r.teacher.checkpoint ? i - 1 : i) % PALETTE.length])) } },
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
