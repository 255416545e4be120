/**
 * `kd eval`: score students against the teacher on the validation split and write reports/RUN —
 * report.json (every figure) and index.html (self-contained) — into a temp directory renamed into
 * place when complete, then apply the CI gates. Bad input (tokenizer mismatch, empty validation
 * split, unknown gate metric, …) is a KdError before anything is written.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { KD_VERSION } from '../core/version.js';
import { replaceDir, tempDirBeside } from '../core/atomic.js';
import { KdError } from '../core/errors.js';
import { gitCommit } from '../core/provenance.js';
import { disposeModel } from '../model/gpt.js';
import { flopsPerToken } from '../model/config.js';
import { EVAL_REPORT_FORMAT, EVAL_REPORT_VERSION, type EvalReport, type SampleText, type StudentReport, type TrainLogPoint } from '../schema/eval-report.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Batch } from '../data/batch.js';
import { openData } from '../data/open.js';
import { isDatasetDir, openDataset } from '../data/dataset.js';
import { renderCharts } from './charts.js';
import { EVAL_DEFAULTS } from './options.js';
import { type Condition, parseBaselineMetrics, parseFailIf, parseRegression, readBaseline, runGate } from './gate.js';
import { type LoadedStudent, loadStudent, studentName } from './load.js';
import { renderHtml } from './report.js';
import { type LatencyFigures, type SequenceSums, generate, measureLatency, scoreStudent } from './student.js';
import { bootstrap, resampleCounts } from './bootstrap.js';
import { blockBpb, headline, sequenceIntervals, summarize } from './verdict.js';
import { type BitsPerByte, type TextBlocks, bitsPerByte, cutText } from './bpb.js';
import { readText } from '../data/corpus.js';
import type { Continuation, Headline, TeacherCheckpoint, TextScore } from '../schema/eval-report.js';
import { probeTeacher, readCollection, teacherBitsPerByte, teacherPrice } from './teacher.js';

export interface EvalOptions {
  data: string;
  /** `[NAME=]PATH` of each checkpoint (file or run directory) */
  students: string[];
  out: string;
  /** replace an existing report directory (swapped in by rename once the new one is complete) */
  force?: boolean;
  teacherUrl?: string;
  /** the teacher model at --teacher-url (also its price) */
  model?: string;
  teacherTimeoutMs?: number;
  apiKeyEnv?: string;
  /** validation batches to score: synthetic data (default 8), or a cap on a dataset's split */
  batches?: number;
  /** score a dataset's whole validation split up to this many tokens (default 262,144) */
  maxTokens?: number;
  /** the hard-label baseline: the name of a --student, or [NAME=]PATH of one more checkpoint */
  baselineStudent?: string;
  batchSize?: number;
  /** default: the smallest seqLen of the students */
  seqLen?: number;
  /** synthetic data: default from the first student's training data record */
  seed?: number;
  topK?: number;
  /** sample prompts (default 3), their length (default 16) and new tokens (default 32) */
  samples?: number;
  promptTokens?: number;
  genTokens?: number;
  /** temperature of the sampled continuations (default 0.8; greedy ones are always shown) */
  temperature?: number;
  /** a text file, one prompt per line (needs a tokenizer) */
  prompts?: string;
  latencySteps?: number;
  latencyWarmup?: number;
  /** the short context of the timed steps (default 16) */
  latencyContext?: number;
  /** the long one (default: the smallest seqLen of the models − 1) */
  latencyLongContext?: number;
  /** calibration bins (default 10) */
  bins?: number;
  cpuUsdPerHour?: number;
  failIf?: string;
  gateOn?: 'each' | 'best';
  baseline?: string;
  maxRegression?: string | number;
  baselineMetrics?: string[];
  /** plain texts to score as bits per byte (`--text`: a file, corpus:sotu or corpus:brown) */
  texts?: string[];
  /** the teacher as a kd checkpoint, scored on the texts too */
  teacherCheckpoint?: string;
  /** score at most this many bytes of each text (default 1,000,000) */
  textBytes?: number;
  log?: (line: string) => void;
}

export interface EvalResult {
  outDir: string;
  report: EvalReport;
  /** one line per failed gate condition; empty when the gates passed or none were asked for */
  failures: string[];
}

const posInt = (v: number | undefined, dflt: number, flag: string, min = 1): number => {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < min) throw new KdError('bad-option', `${flag} must be an integer ≥ ${min}, got ${v}`);
  return x;
};

function readTrainLog(checkpointFile: string): TrainLogPoint[] {
  const file = path.join(path.dirname(checkpointFile), 'train-log.jsonl');
  if (!fs.existsSync(file)) return [];
  const out: TrainLogPoint[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    try {
      const r = JSON.parse(line) as { step?: unknown; loss?: unknown; valLoss?: unknown };
      if (typeof r.step === 'number' && typeof r.loss === 'number') out.push({ step: r.step, loss: r.loss, ...(typeof r.valLoss === 'number' ? { valLoss: r.valLoss } : {}) });
    } catch {
      // a torn last line of a run that was killed: skip it, the rest of the curve is still good
    }
  }
  return out;
}

/** Checks that every student can be scored on this data; throws KdError naming the student. */
function checkCompatible(students: { name: string; s: LoadedStudent }[], dataTok: Tokenizer | undefined, spec: string): void {
  const V = students[0].s.config.vocabSize;
  for (const { name, s } of students) {
    if (s.config.vocabSize !== V) throw new KdError('vocab-mismatch', `student "${name}" (${s.file}) has vocabulary ${s.config.vocabSize}, "${students[0].name}" has ${V}: students must share a vocabulary`);
    if (dataTok && s.tokenizer && s.tokenizer.hash() !== dataTok.hash()) {
      throw new KdError('tokenizer-mismatch', `student "${name}" (${s.file}): its tokenizer (sha256 ${s.tokenizer.hash().slice(0, 12)}…) differs from the dataset's ${spec} (sha256 ${dataTok.hash().slice(0, 12)}…); evaluate it on the dataset it was trained on`);
    }
    if (dataTok && dataTok.vocabSize !== s.config.vocabSize) {
      throw new KdError('tokenizer-mismatch', `student "${name}" (${s.file}) has vocabulary ${s.config.vocabSize}, the dataset ${spec} has ${dataTok.vocabSize} tokens`);
    }
  }
  const hashes = new Set(students.filter((x) => x.s.tokenizer).map((x) => x.s.tokenizer!.hash()));
  if (hashes.size > 1) throw new KdError('tokenizer-mismatch', `the students' tokenizers differ (${[...hashes].map((h) => h.slice(0, 12)).join(', ')}): they cannot be compared on one dataset`);
}

/** The validation batches to score, and what they cover. */
interface Validation {
  batches: Batch[];
  sequences: number;
  tokens: number;
  splitTokens: number | null;
  whole: boolean;
  warnings: string[];
}

/**
 * A dataset's validation split is read once, whole, up to `capTokens` (the loader packs documents
 * into rows of T tokens and would cycle forever: rows past the split's end are dropped and the
 * positions of the last row past it are unlabelled). Synthetic data has no end: `batches` of it
 * (default 8). `batches`, when given, also caps a dataset's split.
 */
function readValidation(data: ReturnType<typeof openData>, spec: string, V: number, o: { batches?: number; capTokens: number; seqLen: number }): Validation {
  if (!data.val) throw new KdError('empty-val', `--data ${spec}: the validation split is empty (rebuild the dataset with a validation share > 0)`);
  const warnings: string[] = [];
  const splitTokens = isDatasetDir(spec) ? openDataset(spec).manifest.splits.val.tokens : null;
  const src = data.val.open();
  const out: Batch[] = [];
  const first = src.next();
  const per = first.B * first.T;
  let want: number; // positions to score
  if (splitTokens === null) want = posInt(o.batches, EVAL_DEFAULTS.batches, '--batches') * per;
  else {
    want = Math.min(splitTokens, o.capTokens, o.batches !== undefined ? posInt(o.batches, EVAL_DEFAULTS.batches, '--batches') * per : Infinity);
    if (o.batches !== undefined && o.batches * per > splitTokens) warnings.push(`--batches ${o.batches} asks for ${o.batches * per} positions, the validation split holds ${splitTokens}: it is scored once, not repeated`);
    if (want < splitTokens) warnings.push(`scored ${want} of the validation split's ${splitTokens} tokens (${o.batches !== undefined ? '--batches' : `--max-tokens ${o.capTokens}`})`);
  }
  for (let b: Batch | null = first, done = 0; b && done < want; b = done < want ? src.next() : null) {
    if (b.B * b.T === 0) break;
    const rows = Math.min(b.B, Math.ceil((want - done) / b.T));
    const keep = want - done; // positions of this batch that are real data
    const n = rows * b.T;
    const cut: Batch = {
      B: rows, T: b.T, K: b.K, inputIds: b.inputIds.slice(0, n), topIds: b.topIds.slice(0, n * b.K), topLogprobs: b.topLogprobs.slice(0, n * b.K),
      mask: b.mask.slice(0, n), targets: b.targets.slice(0, n),
    };
    for (let i = keep; i < n; i++) { cut.mask[i] = 0; cut.targets[i] = -1; } // wrapped around to the split's start
    out.push(cut);
    done += Math.min(n, keep);
  }
  const positions = out.reduce((s, b) => s + b.B * b.T, 0);
  if (!positions || !out.some((b) => b.mask.some((m) => m > 0) || b.targets.some((t) => t >= 0))) {
    throw new KdError('empty-val', `--data ${spec}: the validation split has no labelled positions`);
  }
  for (const b of out) {
    for (const arr of [b.inputIds, b.targets, b.topIds]) {
      for (let i = 0; i < arr.length; i++) {
        if (arr[i] >= V) throw new KdError('vocab-mismatch', `--data ${spec}: token id ${arr[i]} is outside the students' vocabulary (${V})`);
      }
    }
  }
  const sequences = out.reduce((s, b) => s + b.B, 0);
  const tokens = Math.min(want, positions);
  if (sequences < 30 || tokens < 8192) warnings.push(`the validation set is small (${tokens} tokens in ${sequences} sequences of ${o.seqLen}): intervals are wide, and small differences are noise`);
  return { batches: out, sequences, tokens, splitTokens, whole: splitTokens !== null && tokens >= splitTokens, warnings };
}

/** Writes the report directory via a temp directory + rename; an existing one needs `force`. */
function writeReportDir(out: string, files: Record<string, string>, force: boolean): void {
  const tmp = tempDirBeside(out);
  try {
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(tmp, name), text);
    if (fs.existsSync(out) && !force) throw new KdError('would-overwrite', `${out} exists: pass --force to replace it`);
    replaceDir(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** A model measured in an eval: the students, and the teacher checkpoint when given. */
interface Measured {
  name: string;
  s: LoadedStudent;
}

/** The recipe a checkpoint was trained with: alpha (1 = hard labels only), steps and tokens. */
function trainingOf(s: LoadedStudent): StudentReport['training'] {
  const t = (s.header.train ?? {}) as { loss?: { alpha?: unknown }; batchSize?: unknown; seqLen?: unknown; accumSteps?: unknown };
  const st = (s.header.state ?? {}) as { step?: unknown };
  const num = (x: unknown) => (typeof x === 'number' ? x : null);
  const steps = num(st.step), B = num(t.batchSize), T = num(t.seqLen);
  return { alpha: num(t.loss?.alpha), steps, tokens: steps !== null && B !== null && T !== null ? steps * B * T * (num(t.accumSteps) ?? 1) : null };
}

/** Share of word 3-grams of `text` that already occurred earlier in it: 0 = no repetition. */
export function repetition(text: string): number {
  const w = text.split(/\s+/).filter(Boolean);
  if (w.length < 4) return 0;
  const seen = new Set<string>();
  let rep = 0;
  for (let i = 0; i + 3 <= w.length; i++) {
    const g = w.slice(i, i + 3).join(' ');
    if (seen.has(g)) rep++;
    seen.add(g);
  }
  return rep / (w.length - 2);
}

export async function evalStudents(o: EvalOptions): Promise<EvalResult> {
  const log = o.log ?? (() => {});
  if (!o.students.length) throw new KdError('bad-option', 'give at least one --student checkpoint');
  if (fs.existsSync(o.out) && !o.force) throw new KdError('would-overwrite', `${o.out} exists: pass --force to replace it`);
  if (o.teacherUrl && !o.model) throw new KdError('bad-option', '--teacher-url needs --model NAME (the teacher model to ask)');
  // Gates are parsed before any work: a typo in a CI config should fail in a second, not after the eval.
  const failIf: Condition[] | undefined = o.failIf ? parseFailIf(o.failIf) : undefined;
  const baseline = o.baseline ? { file: o.baseline, report: readBaseline(o.baseline), metrics: parseBaselineMetrics(o.baselineMetrics), maxRegression: parseRegression(o.maxRegression ?? EVAL_DEFAULTS.maxRegression) } : undefined;
  const batchSize = posInt(o.batchSize, EVAL_DEFAULTS.batchSize, '--batch-size');
  const bins = posInt(o.bins, EVAL_DEFAULTS.bins, '--bins');
  const capTokens = posInt(o.maxTokens, EVAL_DEFAULTS.maxTokens, '--max-tokens');
  const nSamples = posInt(o.samples, EVAL_DEFAULTS.samples, '--samples', 0);
  const promptTokens = posInt(o.promptTokens, EVAL_DEFAULTS.promptTokens, '--prompt-tokens');
  const genTokens = posInt(o.genTokens, EVAL_DEFAULTS.genTokens, '--gen-tokens');
  const temperature = o.temperature ?? EVAL_DEFAULTS.temperature;
  if (!(temperature > 0)) throw new KdError('bad-option', `--temperature (of the sampled continuations; greedy ones are always shown) must be > 0, got ${o.temperature}`);
  const latencySteps = posInt(o.latencySteps, EVAL_DEFAULTS.latencySteps, '--latency-steps');
  const latencyWarmup = posInt(o.latencyWarmup, EVAL_DEFAULTS.latencyWarmup, '--latency-warmup', 0);
  const shortCtx = posInt(o.latencyContext, EVAL_DEFAULTS.latencyContext, '--latency-context');
  if (o.latencyLongContext !== undefined) posInt(o.latencyLongContext, 1, '--latency-long-context');

  const students: { name: string; path: string; s: LoadedStudent }[] = [];
  let teacherCk: LoadedStudent | undefined;
  try {
    const seen = new Set<string>();
    const add = (spec: string) => {
      const { name: base, path: p } = studentName(spec);
      let name = base;
      for (let i = 2; seen.has(name); i++) name = `${base}-${i}`;
      seen.add(name);
      log(`loading ${name} (${p})`);
      students.push({ name, path: p, s: loadStudent(p) });
      return name;
    };
    for (const spec of o.students) add(spec);
    // --baseline-student: the name of a --student, or [NAME=]PATH of one more checkpoint
    const baselineName = o.baselineStudent === undefined ? null : students.some((x) => x.name === o.baselineStudent) ? o.baselineStudent : add(o.baselineStudent);
    if (baselineName !== null && students.length < 2) throw new KdError('bad-option', '--baseline-student needs at least one other --student to compare with it');
    if (o.teacherCheckpoint) {
      log(`loading the teacher (${o.teacherCheckpoint})`);
      teacherCk = loadStudent(o.teacherCheckpoint);
    }
    const first = students[0].s;
    const V = first.config.vocabSize;
    const trainedOn = (first.header.meta?.data ?? {}) as { kind?: string; seed?: number; topK?: number };
    const synthetic = o.data === 'synthetic' && trainedOn.kind === 'synthetic' ? trainedOn : {};
    const seqLen = posInt(o.seqLen, Math.min(...students.map((x) => x.s.config.seqLen)), '--seq-len');
    if (students.some((x) => x.s.config.seqLen < seqLen)) throw new KdError('bad-option', `--seq-len ${seqLen} exceeds a student's seqLen (${Math.min(...students.map((x) => x.s.config.seqLen))})`);
    const data = openData(o.data, { batchSize, seqLen, seed: o.seed ?? synthetic.seed ?? 0, vocabSize: V, topK: o.topK ?? synthetic.topK });
    checkCompatible(students, data.tokenizer, o.data);
    const val = readValidation(data, o.data, V, { batches: o.batches, capTokens, seqLen });
    for (const w of val.warnings) log(`warning: ${w}`);
    const batches = val.batches;
    const tok = data.tokenizer ?? students.find((x) => x.s.tokenizer)?.s.tokenizer;
    const text = (ids: number[]) => (tok ? tok.decode(ids) : `⟨${ids.join(' ')}⟩`); // synthetic data has no text: show ids
    const all: Measured[] = [...students, ...(teacherCk ? [{ name: 'teacher', s: teacherCk }] : [])];
    const longCtx = posInt(o.latencyLongContext, Math.min(...all.map((x) => x.s.config.seqLen)) - 1, '--latency-long-context');
    if (all.some((x) => x.s.config.seqLen <= longCtx)) throw new KdError('bad-option', `--latency-long-context ${longCtx} must be below every model's seqLen (${Math.min(...all.map((x) => x.s.config.seqLen))})`);

    // prompts: --prompts FILE, or the first tokens of validation sequences
    const prompts: { ids: number[]; dataset: number[] | null }[] = [];
    if (o.prompts) {
      if (!tok) throw new KdError('bad-option', `--prompts ${o.prompts}: neither the data nor the students have a tokenizer to encode them`);
      let lines: string[];
      try { lines = fs.readFileSync(o.prompts, 'utf8').split('\n').filter((l) => l.trim()); } catch { throw new KdError('missing-file', `--prompts ${o.prompts}: cannot read it`); }
      for (const l of lines.slice(0, nSamples || lines.length)) prompts.push({ ids: tok.encode(l), dataset: null });
    } else {
      const rows = batches.flatMap((b) => Array.from({ length: b.B }, (_, r) => Array.from(b.inputIds.subarray(r * b.T, (r + 1) * b.T))));
      const P = Math.min(promptTokens, seqLen - 1);
      const step = Math.max(1, Math.floor(rows.length / Math.max(nSamples, 1))); // spread over the split
      for (let i = 0; i < Math.min(nSamples, rows.length); i++) {
        const seq = rows[i * step];
        prompts.push({ ids: seq.slice(0, P), dataset: seq.slice(P, P + genTokens) });
      }
    }
    const cont = (t: string): Continuation => ({ text: t, repeated: repetition(t) });
    const continueWith = (model: LoadedStudent['model'], ids: number[], i: number, decode: (ids: number[]) => string) => ({
      greedy: cont(decode(generate(model, ids, { maxNew: genTokens, temperature: 0, seed: i + 1 }))),
      sampled: cont(decode(generate(model, ids, { maxNew: genTokens, temperature, seed: i + 1 }))),
    });
    const latencyOf = (m: Measured, seedTokens: ArrayLike<number>) => {
      const l = (context: number) => measureLatency(m.s.model, seedTokens, { steps: latencySteps, warmup: latencyWarmup, context });
      return { latency: l(shortCtx), latencyLong: l(longCtx) };
    };
    const costOf = (s: LoadedStudent, lat: LatencyFigures): StudentReport['cost'] => {
      const cpuSec = lat.tokensPerSec > 0 ? 1e6 / lat.tokensPerSec : null;
      return {
        flopsPerToken: flopsPerToken(s.config, lat.context), cpuSecondsPer1MTokens: cpuSec,
        usdPer1MTokens: cpuSec !== null && o.cpuUsdPerHour !== undefined ? (cpuSec / 3600) * o.cpuUsdPerHour : null,
      };
    };

    const counts = resampleCounts(val.sequences);
    const reports: StudentReport[] = [];
    const sums: SequenceSums[] = [];
    const generations: SampleText['students'][] = prompts.map(() => []);
    const seedTokens = batches[0].inputIds.subarray(0, Math.min(batches[0].inputIds.length, longCtx));
    for (const m of students) {
      const { name, path: p, s } = m;
      log(`scoring ${name} on ${val.sequences} sequences (${val.tokens} tokens)`);
      const scored = scoreStudent(s.model, batches, bins);
      sums.push(scored.sequences);
      log(`timing ${name} at ${shortCtx} and ${longCtx} tokens of context`);
      const lat = latencyOf(m, seedTokens);
      prompts.forEach((pr, i) => generations[i].push(continueWith(s.model, pr.ids, i, text)));
      reports.push({
        name, path: p, kind: s.kind, tokenizerHash: s.tokenizer?.hash() ?? null, model: s.header.model, metrics: scored.metrics,
        intervals: sequenceIntervals(scored.sequences, counts), baseline: name === baselineName, training: trainingOf(s),
        ...lat, size: s.size, cost: costOf(s, lat.latency), trainLog: readTrainLog(s.file),
      });
    }

    // the teacher checkpoint: timed like the students; validation metrics only on the same tokenizer
    let teacherReport: TeacherCheckpoint | null = null;
    const teacherText = new Map<number, { greedy: Continuation; sampled: Continuation }>();
    if (teacherCk) {
      const tt = teacherCk.tokenizer;
      const same = Boolean(tt && data.tokenizer && tt.hash() === data.tokenizer.hash());
      log(`timing the teacher at ${shortCtx} and ${longCtx} tokens of context`);
      const tSeed = tt && tok ? tt.encode(text(Array.from(batches[0].inputIds))).slice(0, longCtx) : seedTokens;
      const lat = latencyOf({ name: 'teacher', s: teacherCk }, tSeed);
      teacherReport = {
        path: o.teacherCheckpoint!, tokenizerHash: tt?.hash() ?? null, vocabSize: teacherCk.config.vocabSize, sameTokenizer: same,
        metrics: same ? scoreStudent(teacherCk.model, batches, bins).metrics : null, ...lat, size: teacherCk.size, cost: costOf(teacherCk, lat.latency),
      };
      if (tt && tok) prompts.forEach((pr, i) => teacherText.set(i, continueWith(teacherCk!.model, tt.encode(text(pr.ids)), i, (ids) => tt.decode(ids))));
    }

    const texts = await scoreTexts(o, students, teacherCk, log);
    const headlines: Headline[] = baselineName === null ? [] : texts.map((t) => headlineOf(t, baselineName, reports));
    const collection = readCollection(o.data);
    let live = null;
    if (o.teacherUrl) {
      log(`asking the teacher at ${o.teacherUrl}`);
      live = await probeTeacher({ url: o.teacherUrl, model: o.model!, prompts: prompts.map((p) => text(p.ids)), maxTokens: genTokens, temperature, timeoutMs: o.teacherTimeoutMs ?? EVAL_DEFAULTS.teacherTimeoutMs, apiKeyEnv: o.apiKeyEnv });
      if (live.status !== 'ok') log(`teacher ${live.status}: ${live.error}; its live figures are marked missing`);
    }
    const samples: SampleText[] = prompts.map((p, i) => {
      const ck = teacherText.get(i);
      const l = live?.texts[i];
      const teacher = ck ?? (l && (l.greedy !== null || l.sampled !== null) ? { greedy: l.greedy === null ? null : cont(l.greedy), sampled: l.sampled === null ? null : cont(l.sampled) } : null);
      return {
        prompt: text(p.ids), reference: p.dataset && p.dataset.length ? text(p.dataset) : null,
        teacher, teacherSource: ck ? 'checkpoint' : teacher ? 'live' : null, students: generations[i],
      };
    });
    const warnings = [...val.warnings];
    for (const h of headlines) warnings.push(...h.notes);
    if (baselineName === null && texts.length) warnings.push('no hard-label baseline (--baseline-student): bits per byte cannot say whether distillation paid');
    if (baselineName !== null && !texts.length) warnings.push('--baseline-student without --text: the headline needs held-out text (e.g. --text corpus:sotu)');
    const report: EvalReport = {
      format: EVAL_REPORT_FORMAT, version: EVAL_REPORT_VERSION, kdVersion: KD_VERSION, createdAt: new Date().toISOString(), backend: tf.getBackend(),
      data: {
        spec: o.data, describe: data.val!.describe(), batches: batches.length, batchSize, seqLen, tokenizerHash: data.tokenizer?.hash() ?? null,
        sequences: val.sequences, tokens: val.tokens, splitTokens: val.splitTokens, capTokens, whole: val.whole,
      },
      warnings,
      teacher: {
        model: o.model ?? collection?.model ?? null, collection, live, price: teacherPrice(collection, o.model),
        ppl: reports[0].metrics.teacherPpl, coverage: reports[0].metrics.teacherCoverage, checkpoint: teacherReport,
      },
      students: reports, texts: texts.map(({ blocks: _b, ...t }) => t), headline: headlines, samples,
      summary: summarize(reports, sums, counts, texts, headlines), gate: null,
      provenance: {
        gitCommit: gitCommit(), systemFingerprints: collection?.systemFingerprints ?? [],
        students: students.map(({ name, s }) => ({
          name,
          seed: typeof (s.header.train as { seed?: unknown } | undefined)?.seed === 'number' ? (s.header.train as { seed: number }).seed : null,
          steps: typeof (s.header.state as { step?: unknown } | undefined)?.step === 'number' ? (s.header.state as { step: number }).step : null,
        })),
      },
    };
    report.gate = runGate(reports, { failIf, gateOn: o.gateOn, baseline });
    const charts = await renderCharts(report);
    writeReportDir(o.out, {
      'report.json': JSON.stringify(report, null, 2) + '\n',
      'index.html': renderHtml(report, charts, path.basename(path.resolve(o.out))),
    }, Boolean(o.force));
    return { outDir: o.out, report, failures: report.gate?.failures ?? [] };
  } finally {
    for (const x of students) disposeModel(x.s.model);
    if (teacherCk) disposeModel(teacherCk.model);
  }
}

type ScoredText = TextScore & { blocks: { students: (TextBlocks | undefined)[]; teacher?: TextBlocks } };

/** The headline of one text: the baseline against each other student and the teacher; notes where it is not like for like. */
function headlineOf(t: ScoredText, baseline: string, reports: StudentReport[]): Headline {
  const b = reports.find((r) => r.name === baseline)!;
  const notes: string[] = [];
  if (b.training.alpha !== null && b.training.alpha !== 1) notes.push(`the baseline "${baseline}" was trained with alpha ${b.training.alpha}, not 1 (hard labels only)`);
  for (const r of reports) {
    if (r === b) continue;
    if (r.size.params !== b.size.params && r.kind === 'fp32') notes.push(`"${r.name}" has ${r.size.params} parameters, the baseline ${b.size.params}: not the same size`);
    if (r.training.tokens !== null && b.training.tokens !== null && r.training.tokens !== b.training.tokens && r.kind === 'fp32') notes.push(`"${r.name}" trained on ${r.training.tokens} tokens, the baseline on ${b.training.tokens}`);
  }
  return headline({
    text: t.text, baseline, notes: [...new Set(notes)],
    students: t.students.map((x, i) => ({ name: x.name, bpb: x.bpb, blocks: t.blocks.students[i] })),
    teacher: t.teacher ? { bpb: t.teacher.bpb, blocks: t.blocks.teacher } : null,
  });
}

const BLOCK_BYTES = 4096;

/**
 * Bits per byte of every student (its own tokenizer) and of the teacher on each --text: the
 * --teacher-checkpoint, else a --teacher-url that scores given text (a teacher that cannot is a
 * note in the report, not a failed eval). Texts are read and checked before any scoring; a student
 * without a tokenizer cannot be scored. Every model's bits are also summed per 4 KiB block of the
 * text, the units of the bootstrap intervals (the same blocks for every model: paired).
 */
async function scoreTexts(o: EvalOptions, students: { name: string; s: LoadedStudent }[], teacher: LoadedStudent | undefined, log: (l: string) => void): Promise<ScoredText[]> {
  const specs = o.texts ?? [];
  if (!specs.length) return [];
  const maxBytes = posInt(o.textBytes, EVAL_DEFAULTS.textBytes, '--text-bytes');
  const texts = specs.map((spec) => {
    const t = readText(spec);
    if (!t.text.trim()) throw new KdError('bad-input', `--text ${spec}: the text is empty`);
    return t;
  });
  for (const { name, s } of students) {
    if (!s.tokenizer) throw new KdError('bad-option', `student "${name}" (${s.file}) has no tokenizer: bits per byte on --text needs one`);
  }
  if (teacher && !teacher.tokenizer) throw new KdError('bad-option', `--teacher-checkpoint ${o.teacherCheckpoint} has no tokenizer: it cannot score plain text`);
  const out: ScoredText[] = [];
  const withCi = (r: ReturnType<typeof bitsPerByte>) => {
    const { blocks, ...figures } = r;
    const n = blocks?.bits.length ?? 0;
    return { figures, blocks, ci: blocks ? bootstrap(resampleCounts(n, 1000, 7), n, (w) => blockBpb(blocks, w)) : null };
  };
  for (const t of texts) {
    log(`bits per byte on ${t.name}`);
    const cut = cutText(t.text, maxBytes);
    let teacherBpb: BitsPerByte | null = null, teacherNote: string | null = null, teacherBlocks: TextBlocks | undefined, teacherCi = null;
    if (teacher) {
      const r = withCi(bitsPerByte(teacher.model, teacher.tokenizer!, cut, { blockBytes: BLOCK_BYTES }));
      teacherBpb = r.figures; teacherBlocks = r.blocks; teacherCi = r.ci;
    } else if (o.teacherUrl && o.model) {
      try {
        teacherBpb = await teacherBitsPerByte({ url: o.teacherUrl, model: o.model, text: cut, timeoutMs: Math.max(o.teacherTimeoutMs ?? EVAL_DEFAULTS.teacherTimeoutMs, 60_000), apiKeyEnv: o.apiKeyEnv });
      } catch (e) {
        teacherNote = (e as Error).message;
        log(`the teacher at ${o.teacherUrl} did not score ${t.name}: ${teacherNote}`);
      }
    }
    const scored = students.map(({ name, s }) => ({ name, ...withCi(bitsPerByte(s.model, s.tokenizer!, cut, { blockBytes: BLOCK_BYTES })) }));
    out.push({
      text: t.name, bytes: Buffer.byteLength(cut, 'utf8'), blockBytes: BLOCK_BYTES,
      teacher: teacherBpb, teacherSource: teacher ? 'checkpoint' : teacherBpb ? 'api' : null, teacherNote, teacherCi,
      students: scored.map((x) => ({ name: x.name, ...x.figures, ci: x.ci })),
      blocks: { students: scored.map((x) => x.blocks), teacher: teacherBlocks },
    });
  }
  return out;
}
