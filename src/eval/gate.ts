/**
 * CI gates over a report: `--fail-if "agreement<0.6,kl>0.5"` and `--baseline OLD/report.json
 * --max-regression 5%`. Both produce one line per failed condition; the CLI prints them and exits
 * with GATE_EXIT_CODE (distinct from 1 = bad input, 2 = usage), after the report has been written.
 *
 * --fail-if: comma-separated `metric OP value`, OP one of < <= > >=, read as "fail if". By default
 * (`gateOn: 'each'`) every student must pass every condition; with 'best' a condition is checked
 * on the best student for that metric (its direction decides which is best), i.e. "at least one
 * student is good enough". A metric that is missing (null) fails: a gate cannot vouch for it.
 *
 * --baseline: each student is matched by name with the old report's students and each of
 * `metrics` is compared in its direction; relative regression = how much worse / |old value|.
 * Failing beyond `maxRegression` (a fraction; "5%" = 0.05). Timing metrics are not in the default
 * set: they depend on the machine and its load more than on the model.
 */
import fs from 'node:fs';
import { KdError } from '../core/errors.js';
import { EVAL_REPORT_FORMAT, type EvalReport, type GateReport, type StudentReport } from '../schema/eval-report.js';
import { DEFAULT_BASELINE_METRICS } from './options.js';

export const GATE_EXIT_CODE = 3;

type Direction = 'higher' | 'lower';

/** Gate metric names → direction (which way is better) and how to read them off a student. */
export const GATE_METRICS: Record<string, { better: Direction; get: (s: StudentReport) => number | null; describe: string }> = {
  agreement: { better: 'higher', get: (s) => s.metrics.agreement, describe: 'student argmax = teacher top-1' },
  kl: { better: 'lower', get: (s) => s.metrics.kl, describe: 'forward KL(teacher‖student) on the top-k, nats/token' },
  recall: { better: 'higher', get: (s) => s.metrics.recall, describe: 'top-k recall of the teacher set' },
  ppl: { better: 'lower', get: (s) => s.metrics.ppl, describe: 'student perplexity on the actual tokens' },
  accuracy: { better: 'higher', get: (s) => s.metrics.accuracy, describe: 'student argmax = actual token' },
  ece: { better: 'lower', get: (s) => s.metrics.ece, describe: 'expected calibration error' },
  'p50-ms': { better: 'lower', get: (s) => s.latency.p50Ms, describe: 'next-token latency p50 (ms)' },
  'p95-ms': { better: 'lower', get: (s) => s.latency.p95Ms, describe: 'next-token latency p95 (ms)' },
  'tokens-per-sec': { better: 'higher', get: (s) => s.latency.tokensPerSec, describe: 'single-stream tokens/s' },
  params: { better: 'lower', get: (s) => s.size.params, describe: 'parameters' },
  bytes: { better: 'lower', get: (s) => s.size.weightBytes, describe: 'stored weight bytes' },
  'disk-bytes': { better: 'lower', get: (s) => s.size.bytesOnDisk, describe: 'checkpoint file bytes' },
  sparsity: { better: 'higher', get: (s) => s.size.sparsity, describe: 'fraction of zero weights' },
  bits: { better: 'lower', get: (s) => s.size.bits, describe: 'stored bits per weight' },
};

export { DEFAULT_BASELINE_METRICS };

export type Op = '<' | '<=' | '>' | '>=';
export interface Condition {
  metric: string;
  op: Op;
  value: number;
  text: string;
}

function checkMetric(name: string, where: string): void {
  if (!(name in GATE_METRICS)) throw new KdError('bad-gate', `${where}: unknown metric "${name}" (valid: ${Object.keys(GATE_METRICS).join(', ')})`);
}

/** Parses `--fail-if`; every mistake is a KdError naming the condition. */
export function parseFailIf(expr: string): Condition[] {
  const parts = expr.split(',').map((p) => p.trim()).filter(Boolean);
  if (!parts.length) throw new KdError('bad-gate', `--fail-if "${expr}": no condition (e.g. "agreement<0.6,kl>0.5")`);
  return parts.map((text) => {
    const m = /^([a-z][a-z0-9-]*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)$/i.exec(text);
    if (!m) throw new KdError('bad-gate', `--fail-if: cannot read "${text}" (expected metric<value, metric>value, <= or >=, e.g. "kl>0.5")`);
    checkMetric(m[1].toLowerCase(), '--fail-if');
    return { metric: m[1].toLowerCase(), op: m[2] as Op, value: Number(m[3]), text };
  });
}

/** "5%" → 0.05, "0.05" → 0.05. */
export function parseRegression(v: string | number): number {
  const s = String(v).trim();
  const pct = s.endsWith('%');
  const n = Number(pct ? s.slice(0, -1) : s);
  if (!s || !Number.isFinite(n) || n < 0) throw new KdError('bad-gate', `--max-regression: "${v}" is not a non-negative number or percentage (e.g. 5%)`);
  return pct ? n / 100 : n;
}

export function parseBaselineMetrics(list: string[] | undefined): string[] {
  const names = (list ?? DEFAULT_BASELINE_METRICS).flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);
  for (const n of names) checkMetric(n, '--baseline-metrics');
  return names;
}

export function readBaseline(file: string): EvalReport {
  let j: unknown;
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new KdError('bad-baseline', `--baseline ${file}: cannot read it as JSON (${(e as Error).message.split('\n')[0]})`);
  }
  const r = j as Partial<EvalReport>;
  if (!r || r.format !== EVAL_REPORT_FORMAT || !Array.isArray(r.students)) throw new KdError('bad-baseline', `--baseline ${file}: not a kd eval report.json (format ${JSON.stringify(r?.format ?? null)})`);
  return r as EvalReport;
}

const holds = (x: number, op: Op, v: number) => (op === '<' ? x < v : op === '<=' ? x <= v : op === '>' ? x > v : x >= v);
const fmt = (x: number) => (Number.isInteger(x) ? String(x) : Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(4));

export function checkConditions(students: StudentReport[], conds: Condition[], gateOn: 'each' | 'best'): string[] {
  const out: string[] = [];
  for (const c of conds) {
    const g = GATE_METRICS[c.metric];
    const rows = students.map((s) => ({ s, v: g.get(s) }));
    const pick = gateOn === 'each' ? rows : bestOf(rows, g.better);
    for (const { s, v } of pick) {
      const who = `${gateOn === 'best' ? 'best student' : 'student'} "${s.name}"`;
      if (v === null || !Number.isFinite(v)) out.push(`fail-if ${c.text}: ${who} has no ${c.metric} figure`);
      else if (holds(v, c.op, c.value)) out.push(`fail-if ${c.text}: ${who} has ${c.metric} = ${fmt(v)}`);
    }
  }
  return out;
}

function bestOf<T extends { v: number | null }>(rows: T[], better: Direction): T[] {
  const ok = rows.filter((r) => r.v !== null && Number.isFinite(r.v));
  if (!ok.length) return rows.slice(0, 1);
  return [ok.reduce((a, b) => ((better === 'higher' ? b.v! > a.v! : b.v! < a.v!) ? b : a))];
}

/** Relative regression of `now` against `old` in the metric's direction (≤ 0 = no worse). */
export function regression(old: number, now: number, better: Direction): number {
  const worse = better === 'lower' ? now - old : old - now;
  if (Math.abs(old) < 1e-12) return worse > 1e-12 ? Infinity : 0;
  return worse / Math.abs(old);
}

export function compareBaseline(students: StudentReport[], base: EvalReport, metrics: string[], maxRegression: number): { failures: string[]; notes: string[] } {
  const failures: string[] = [], notes: string[] = [];
  for (const s of students) {
    const old = base.students.find((b) => b.name === s.name);
    if (!old) { notes.push(`baseline: no student "${s.name}" in the baseline; not compared`); continue; }
    for (const m of metrics) {
      const g = GATE_METRICS[m];
      const a = g.get(old), b = g.get(s);
      if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b)) {
        if (a !== null && Number.isFinite(a)) failures.push(`baseline: student "${s.name}" ${m} is missing (was ${fmt(a)})`);
        continue;
      }
      const r = regression(a, b, g.better);
      if (r > maxRegression) {
        const pct = Number.isFinite(r) ? `${(r * 100).toFixed(1)}% worse` : 'worse than 0';
        failures.push(`baseline: student "${s.name}" ${m} ${fmt(a)} → ${fmt(b)} (${pct}, allowed ${(maxRegression * 100).toFixed(1)}%)`);
      }
    }
  }
  for (const b of base.students) if (!students.some((s) => s.name === b.name)) notes.push(`baseline: student "${b.name}" is not in this run`);
  return { failures, notes };
}

export interface GateOptions {
  failIf?: Condition[];
  gateOn?: 'each' | 'best';
  baseline?: { file: string; report: EvalReport; metrics: string[]; maxRegression: number };
}

/** The gate section of a report; null when no gate was asked for. */
export function runGate(students: StudentReport[], o: GateOptions): GateReport | null {
  if (!o.failIf && !o.baseline) return null;
  const failures = o.failIf ? checkConditions(students, o.failIf, o.gateOn ?? 'each') : [];
  const cmp = o.baseline ? compareBaseline(students, o.baseline.report, o.baseline.metrics, o.baseline.maxRegression) : { failures: [], notes: [] };
  failures.push(...cmp.failures);
  return {
    conditions: (o.failIf ?? []).map((c) => c.text), baseline: o.baseline?.file ?? null, maxRegression: o.baseline?.maxRegression ?? null,
    failures, notes: cmp.notes, passed: failures.length === 0,
  };
}
