/**
 * The report's judgements, from the per-unit sums behind each figure: 95% bootstrap intervals of the
 * headline metrics over validation sequences, "best" badges that go to a student only when its lead
 * over every other student exceeds the interval of their (paired) difference — else a tie — and the
 * "did distillation pay" rows: bits per byte against the hard-label baseline and the teacher.
 */
import type { Headline, StudentReport } from '../schema/eval-report.js';
import { type Interval, bootstrap, excludesZero, percentileInterval, resampleCounts, weighted } from './bootstrap.js';
import type { TextBlocks } from './bpb.js';
import type { SequenceSums } from './student.js';

export type SeqMetric = 'kl' | 'agreement' | 'recall' | 'ppl' | 'accuracy' | 'ece';

/** A metric of one student from one replicate's counts over its validation sequences. */
export function seqStat(s: SequenceSums, metric: SeqMetric, w: Uint16Array): number {
  const r = (num: Float64Array, den: Float64Array) => weighted(w, num) / weighted(w, den);
  switch (metric) {
    case 'kl': return r(s.kl, s.labelled);
    case 'agreement': return r(s.agree, s.labelled);
    case 'recall': return r(s.recall, s.labelled);
    case 'ppl': return Math.exp(r(s.nll, s.targeted));
    case 'accuracy': return r(s.correct, s.targeted);
    case 'ece': {
      const bins = s.binCount.length / s.labelled.length;
      let e = 0;
      for (let b = 0; b < bins; b++) {
        let conf = 0, corr = 0;
        for (let i = 0; i < w.length; i++) if (w[i]) { conf += w[i] * s.binConf[i * bins + b]; corr += w[i] * s.binCorrect[i * bins + b]; }
        e += Math.abs(corr - conf);
      }
      return e / weighted(w, s.targeted);
    }
  }
}

export function sequenceIntervals(s: SequenceSums, counts: Uint16Array): StudentReport['intervals'] {
  const n = s.labelled.length;
  const ci = (m: SeqMetric) => bootstrap(counts, n, (w) => seqStat(s, m, w));
  return { kl: ci('kl'), agreement: ci('agreement'), recall: ci('recall'), ppl: ci('ppl'), accuracy: ci('accuracy'), ece: ci('ece') };
}

export interface Pick {
  best: string | null;
  /** the students the leader cannot be told apart from (with the leader), when more than one */
  tie: string[];
}

/**
 * The leader by `value` (better: higher or lower), and whether it leads every other candidate by
 * more than the 95% interval of `diff(leader, other)` (a function of paired resamples; null = a
 * deterministic figure, compared exactly).
 */
export function pickBest<T extends { name: string }>(xs: T[], value: (x: T) => number | null, better: 'higher' | 'lower', diff: ((a: T, b: T) => Interval | null) | null): Pick {
  const ok = xs.filter((x) => { const v = value(x); return v !== null && Number.isFinite(v); });
  if (!ok.length) return { best: null, tie: [] };
  const sign = better === 'higher' ? 1 : -1;
  const leader = ok.reduce((a, b) => (sign * (value(b)! - value(a)!) > 0 ? b : a));
  const tied = ok.filter((x) => x !== leader && (diff ? !excludesZero(diff(leader, x)) : value(x) === value(leader)));
  return tied.length ? { best: null, tie: [leader.name, ...tied.map((x) => x.name)] } : { best: leader.name, tie: [] };
}

/** Interval of mean(a) − mean(b) for two independent samples (timed steps of two models). */
export function meanDiffInterval(a: number[], b: number[], f: (mean: number) => number = (m) => m): Interval | null {
  if (a.length < 2 || b.length < 2) return null;
  const ca = resampleCounts(a.length, 1000, 11), cb = resampleCounts(b.length, 1000, 12);
  const ma = (r: number) => weighted(ca.subarray(r * a.length, (r + 1) * a.length), a) / a.length;
  const mb = (r: number) => weighted(cb.subarray(r * b.length, (r + 1) * b.length), b) / b.length;
  return percentileInterval(Array.from({ length: 1000 }, (_, r) => f(ma(r)) - f(mb(r))));
}

/** Bits per byte of a text's blocks for one replicate. */
export const blockBpb = (b: TextBlocks, w: Uint16Array) => weighted(w, b.bits) / weighted(w, b.bytes);

/**
 * One headline: each student but the baseline on one text. `blocks` are per model on the same
 * byte blocks (so resamples are paired); the teacher's may be missing (an API teacher: no blocks,
 * its figure is taken as fixed).
 */
export function headline(o: {
  text: string; baseline: string; students: { name: string; bpb: number; blocks?: TextBlocks }[];
  teacher: { bpb: number; blocks?: TextBlocks } | null; notes: string[];
}): Headline {
  const base = o.students.find((s) => s.name === o.baseline)!;
  const n = base.blocks?.bits.length ?? 0;
  const counts = resampleCounts(n, 1000, 7);
  const T = o.teacher;
  const tb = (w: Uint16Array) => (T?.blocks ? blockBpb(T.blocks, w) : T!.bpb);
  const rows = o.students.filter((s) => s !== base).map((s) => {
    const gain = (base.bpb - s.bpb) / base.bpb;
    const gapClosed = T && base.bpb > T.bpb ? (base.bpb - s.bpb) / (base.bpb - T.bpb) : null;
    const paired = Boolean(s.blocks && base.blocks && s.blocks.bits.length === n);
    const ci = s.blocks ? bootstrap(counts, s.blocks.bits.length === n ? n : 0, (w) => blockBpb(s.blocks!, w)) : null;
    const gainCi = paired ? bootstrap(counts, n, (w) => { const b = blockBpb(base.blocks!, w); return (b - blockBpb(s.blocks!, w)) / b; }) : null;
    const gapClosedCi = paired && gapClosed !== null
      ? bootstrap(counts, n, (w) => { const b = blockBpb(base.blocks!, w); return (b - blockBpb(s.blocks!, w)) / (b - tb(w)); })
      : null;
    const verdict: Headline['rows'][number]['verdict'] = gainCi && gainCi.lo > 0 ? 'paid' : gainCi && gainCi.hi < 0 ? 'worse' : 'no measurable difference';
    return { name: s.name, bpb: s.bpb, ci, gain, gainCi, gapClosed, gapClosedCi, verdict };
  });
  return { text: o.text, baseline: o.baseline, baselineBpb: base.bpb, teacherBpb: T?.bpb ?? null, rows, notes: o.notes };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/**
 * The one-line verdict and the "best" badges: quality (agreement with the teacher), size
 * (deployable bytes), speed (tokens/s at the short context), calibration (ECE) and, with --text,
 * bits per byte on the first text. A badge needs a lead beyond the 95% interval of the paired
 * difference over the validation sequences (or the text's blocks, or the timed steps); else a tie.
 */
export function summarize(students: StudentReport[], sums: SequenceSums[], counts: Uint16Array, texts: { text: string; students: { bpb: number }[]; blocks: { students: (TextBlocks | undefined)[] } }[], headlines: Headline[]): { line: string; best: Record<string, string | null>; ties: Record<string, string[]> } {
  const idx = new Map(students.map((s, i) => [s.name, i]));
  const n = sums[0]?.labelled.length ?? 0;
  const paired = (m: SeqMetric) => (a: StudentReport, b: StudentReport) =>
    bootstrap(counts, n, (w) => seqStat(sums[idx.get(a.name)!], m, w) - seqStat(sums[idx.get(b.name)!], m, w));
  const picks: Record<string, Pick> = {
    quality: pickBest(students, (s) => s.metrics.agreement, 'higher', paired('agreement')),
    size: pickBest(students, (s) => s.size.deployableBytes, 'lower', null),
    speed: pickBest(students, (s) => s.latency.tokensPerSec, 'higher', (a, b) => meanDiffInterval(a.latency.samplesMs, b.latency.samplesMs, (m) => 1000 / m)),
    calibration: pickBest(students, (s) => s.metrics.ece, 'lower', paired('ece')),
  };
  const t = texts[0];
  if (t) {
    const blocks = t.blocks.students;
    const m = blocks[0]?.bits.length ?? 0;
    const bc = resampleCounts(m, 1000, 7);
    picks.bpb = pickBest(students, (s) => t.students[idx.get(s.name)!]?.bpb ?? null, 'lower', (a, b) => {
      const ba = blocks[idx.get(a.name)!], bb = blocks[idx.get(b.name)!];
      return ba && bb ? bootstrap(bc, m, (w) => blockBpb(ba, w) - blockBpb(bb, w)) : null;
    });
  }
  const labels: Record<string, string> = { quality: 'quality (agreement)', size: 'size (deployable)', speed: 'speed', calibration: 'calibration (ECE)', bpb: `bits per byte on ${t?.text}` };
  const parts: string[] = [];
  for (const h of headlines) {
    for (const r of h.rows) {
      const gap = r.gapClosed === null ? '' : `, ${pct(r.gapClosed)} of the gap to the teacher closed`;
      parts.push(`${r.name} vs hard-label ${h.baseline} on ${h.text}: ${r.verdict === 'paid' ? 'distillation paid' : r.verdict === 'worse' ? 'worse than the baseline' : 'no measurable difference'} (${r.bpb.toFixed(3)} vs ${h.baselineBpb.toFixed(3)} bits/byte, ${r.gain >= 0 ? '−' : '+'}${pct(Math.abs(r.gain))}${gap})`);
    }
  }
  const best: Record<string, string | null> = {}, ties: Record<string, string[]> = {};
  for (const [k, p] of Object.entries(picks)) {
    best[k] = p.best;
    if (p.tie.length) ties[k] = p.tie;
    if (p.best) parts.push(`best ${labels[k]}: ${p.best}`);
    else if (p.tie.length) parts.push(`${labels[k]}: tie between ${p.tie.join(', ')}`);
  }
  return { line: parts.length ? parts.join(' · ') : 'no student could be scored', best, ties };
}
