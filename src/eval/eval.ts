/**
 * `kd eval`: score students against the teacher on the validation split and write reports/RUN —
 * report.json (every figure) and index.html (self-contained) — into a temp directory renamed into
 * place when complete, then apply the CI gates. Bad input (tokenizer mismatch, empty validation
 * split, unknown gate metric, …) is a KdError before anything is written.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { kdVersion } from '../collect/manifest.js';
import { KdError } from '../errors.js';
import { gitCommit } from '../provenance.js';
import { disposeModel } from '../model/gpt.js';
import { flopsPerToken } from '../model/config.js';
import { EVAL_REPORT_FORMAT, EVAL_REPORT_VERSION, type EvalReport, type SampleText, type StudentReport, type TrainLogPoint } from '../schema/eval-report.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Batch } from '../train/batch.js';
import { openData } from '../train/run.js';
import { renderCharts } from './charts.js';
import { type Condition, parseBaselineMetrics, parseFailIf, parseRegression, readBaseline, runGate } from './gate.js';
import { type LoadedStudent, loadStudent, studentName } from './load.js';
import { renderHtml, summarize } from './report.js';
import { generate, measureLatency, scoreStudent } from './student.js';
import { type BitsPerByte, bitsPerByte, cutText } from './bpb.js';
import { loadModel } from '../model/load.js';
import { readText } from '../train/corpus.js';
import type { TextScore } from '../schema/eval-report.js';
import { probeTeacher, readCollection, teacherBitsPerByte, teacherPrice } from './teacher.js';

export interface EvalOptions {
  data: string;
  /** `[NAME=]PATH` of each checkpoint (file or run directory) */
  students: string[];
  out: string;
  /** replace an existing report directory (swapped in by rename once the new one is complete) */
  force?: boolean;
  teacherUrl?: string;
  teacherModel?: string;
  teacherTimeoutMs?: number;
  apiKeyEnv?: string;
  /** validation batches to score (default 8) */
  batches?: number;
  batchSize?: number;
  /** default: the smallest seqLen of the students */
  seqLen?: number;
  /** synthetic data: default from the first student's training data record */
  seed?: number;
  topK?: number;
  /** sample generations (default 3), their prompt length and new tokens */
  samples?: number;
  promptTokens?: number;
  genTokens?: number;
  /** 0 = greedy (default); > 0 samples with a seeded RNG */
  temperature?: number;
  /** a text file, one prompt per line (needs a tokenizer) */
  prompts?: string;
  latencySteps?: number;
  latencyWarmup?: number;
  latencyContext?: number;
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

function readBatches(data: ReturnType<typeof openData>, n: number, spec: string, V: number): Batch[] {
  if (!data.val) throw new KdError('empty-val', `--data ${spec}: the validation split is empty (rebuild the dataset with a validation share > 0)`);
  const src = data.val.open();
  const out: Batch[] = [];
  for (let i = 0; i < n; i++) {
    const b = src.next();
    if (b.B * b.T === 0) break;
    out.push(b);
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
  return out;
}

/** Writes the report directory via a temp directory + rename; an existing one needs `force`. */
function writeReportDir(out: string, files: Record<string, string>, force: boolean): void {
  const parent = path.dirname(path.resolve(out));
  fs.mkdirSync(parent, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(out)}.tmp-`));
  try {
    fs.chmodSync(tmp, 0o755 & ~process.umask()); // mkdtemp makes it 0700; a report is meant to be read
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(tmp, name), text);
    if (fs.existsSync(out)) {
      if (!force) throw new KdError('would-overwrite', `${out} exists: pass --force to replace it`);
      const old = `${tmp}-old`;
      fs.renameSync(out, old); // two renames: a reader sees the old report or the new one, never a mix
      fs.renameSync(tmp, out);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, out);
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

export async function evalStudents(o: EvalOptions): Promise<EvalResult> {
  const log = o.log ?? (() => {});
  if (!o.students.length) throw new KdError('bad-option', 'give at least one --student checkpoint');
  if (fs.existsSync(o.out) && !o.force) throw new KdError('would-overwrite', `${o.out} exists: pass --force to replace it`);
  if (o.teacherUrl && !o.teacherModel) throw new KdError('bad-option', '--teacher-url needs --model NAME (the teacher model to ask)');
  // Gates are parsed before any work: a typo in a CI config should fail in a second, not after the eval.
  const failIf: Condition[] | undefined = o.failIf ? parseFailIf(o.failIf) : undefined;
  const baseline = o.baseline ? { file: o.baseline, report: readBaseline(o.baseline), metrics: parseBaselineMetrics(o.baselineMetrics), maxRegression: parseRegression(o.maxRegression ?? '5%') } : undefined;
  const batchesN = posInt(o.batches, 8, '--batches');
  const batchSize = posInt(o.batchSize, 8, '--batch-size');
  const bins = posInt(o.bins, 10, '--bins');
  const nSamples = posInt(o.samples, 3, '--samples', 0);
  const promptTokens = posInt(o.promptTokens, 8, '--prompt-tokens');
  const genTokens = posInt(o.genTokens, 24, '--gen-tokens');
  const temperature = o.temperature ?? 0;
  if (!(temperature >= 0)) throw new KdError('bad-option', `--temperature must be ≥ 0, got ${o.temperature}`);

  const students: { name: string; path: string; s: LoadedStudent }[] = [];
  try {
    const seen = new Set<string>();
    for (const spec of o.students) {
      const { name: base, path: p } = studentName(spec);
      let name = base;
      for (let i = 2; seen.has(name); i++) name = `${base}-${i}`;
      seen.add(name);
      log(`loading ${name} (${p})`);
      students.push({ name, path: p, s: loadStudent(p) });
    }
    const first = students[0].s;
    const V = first.config.vocabSize;
    const trainedOn = (first.header.meta?.data ?? {}) as { kind?: string; seed?: number; topK?: number };
    const synthetic = o.data === 'synthetic' && trainedOn.kind === 'synthetic' ? trainedOn : {};
    const seqLen = posInt(o.seqLen, Math.min(...students.map((x) => x.s.config.seqLen)), '--seq-len');
    if (students.some((x) => x.s.config.seqLen < seqLen)) throw new KdError('bad-option', `--seq-len ${seqLen} exceeds a student's seqLen (${Math.min(...students.map((x) => x.s.config.seqLen))})`);
    const data = openData(o.data, { batchSize, seqLen, seed: o.seed ?? synthetic.seed ?? 0, vocabSize: V, topK: o.topK ?? synthetic.topK });
    checkCompatible(students, data.tokenizer, o.data);
    const batches = readBatches(data, batchesN, o.data, V);
    const tok = data.tokenizer ?? students.find((x) => x.s.tokenizer)?.s.tokenizer;
    const text = (ids: number[]) => (tok ? tok.decode(ids) : `⟨${ids.join(' ')}⟩`); // synthetic data has no text: show ids

    // prompts: --prompts FILE, or the first tokens of the first validation sequences
    const prompts: { ids: number[]; dataset: number[] | null }[] = [];
    if (o.prompts) {
      if (!tok) throw new KdError('bad-option', `--prompts ${o.prompts}: neither the data nor the students have a tokenizer to encode them`);
      let lines: string[];
      try { lines = fs.readFileSync(o.prompts, 'utf8').split('\n').filter((l) => l.trim()); } catch { throw new KdError('missing-file', `--prompts ${o.prompts}: cannot read it`); }
      for (const l of lines.slice(0, nSamples || lines.length)) prompts.push({ ids: tok.encode(l), dataset: null });
    } else {
      const b = batches[0];
      const P = Math.min(promptTokens, b.T - 1);
      for (let s = 0; s < Math.min(nSamples, b.B); s++) {
        const seq = Array.from(b.inputIds.subarray(s * b.T, (s + 1) * b.T));
        prompts.push({ ids: seq.slice(0, P), dataset: seq.slice(P, P + genTokens) });
      }
    }

    const reports: StudentReport[] = [];
    const generations: string[][] = prompts.map(() => []);
    for (const { name, path: p, s } of students) {
      log(`scoring ${name} on ${batches.length} batches`);
      const metrics = scoreStudent(s.model, batches, bins);
      const latency = measureLatency(s.model, batches[0].inputIds.subarray(0, batches[0].T), {
        steps: posInt(o.latencySteps, 20, '--latency-steps'), warmup: posInt(o.latencyWarmup, 2, '--latency-warmup', 0), context: posInt(o.latencyContext, 32, '--latency-context'),
      });
      prompts.forEach((pr, i) => generations[i].push(text(generate(s.model, pr.ids, { maxNew: genTokens, temperature, seed: i + 1 }))));
      const cpuSec = latency.tokensPerSec > 0 ? 1e6 / latency.tokensPerSec : null;
      reports.push({
        name, path: p, kind: s.kind, tokenizerHash: s.tokenizer?.hash() ?? null, model: s.header.model, metrics, latency, size: s.size,
        cost: {
          flopsPerToken: flopsPerToken(s.config, latency.context), cpuSecondsPer1MTokens: cpuSec,
          usdPer1MTokens: cpuSec !== null && o.cpuUsdPerHour !== undefined ? (cpuSec / 3600) * o.cpuUsdPerHour : null,
        },
        trainLog: readTrainLog(s.file),
      });
    }

    const texts = await scoreTexts(o, students, log);
    const collection = readCollection(o.data);
    let live = null;
    if (o.teacherUrl) {
      log(`asking the teacher at ${o.teacherUrl}`);
      live = await probeTeacher({ url: o.teacherUrl, model: o.teacherModel!, prompts: prompts.map((p) => text(p.ids)), maxTokens: genTokens, timeoutMs: o.teacherTimeoutMs ?? 10_000, apiKeyEnv: o.apiKeyEnv });
      if (live.status !== 'ok') log(`teacher ${live.status}: ${live.error}; its live figures are marked missing`);
    }
    const samples: SampleText[] = prompts.map((p, i) => {
      const l = live?.texts[i] ?? null;
      const d = p.dataset && p.dataset.length ? text(p.dataset) : null;
      return { prompt: text(p.ids), teacher: l ?? d, teacherSource: l !== null ? 'live' : d !== null ? 'dataset' : null, students: generations[i] };
    });
    const report: EvalReport = {
      format: EVAL_REPORT_FORMAT, version: EVAL_REPORT_VERSION, kdVersion: kdVersion(), createdAt: new Date().toISOString(), backend: tf.getBackend(),
      data: { spec: o.data, describe: data.val!.describe(), batches: batches.length, batchSize, seqLen, tokenizerHash: data.tokenizer?.hash() ?? null },
      teacher: {
        model: o.teacherModel ?? collection?.model ?? null, collection, live, price: teacherPrice(collection, o.teacherModel),
        ppl: reports[0].metrics.teacherPpl, coverage: reports[0].metrics.teacherCoverage,
      },
      students: reports, texts, samples, summary: summarize(reports), gate: null,
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
  }
}

/**
 * Bits per byte of every student (its own tokenizer) and of the teacher on each --text: the
 * --teacher-checkpoint, else a --teacher-url that scores given text (a teacher that cannot is a
 * note in the report, not a failed eval). Texts are read and checked before any scoring; a student
 * without a tokenizer cannot be scored.
 */
async function scoreTexts(o: EvalOptions, students: { name: string; s: LoadedStudent }[], log: (l: string) => void): Promise<TextScore[]> {
  const specs = o.texts ?? [];
  if (!specs.length) {
    if (o.teacherCheckpoint) throw new KdError('bad-option', '--teacher-checkpoint is scored on --text: give at least one --text FILE');
    return [];
  }
  const maxBytes = posInt(o.textBytes, 1_000_000, '--text-bytes');
  const texts = specs.map((spec) => {
    const t = readText(spec);
    if (!t.text.trim()) throw new KdError('bad-input', `--text ${spec}: the text is empty`);
    return t;
  });
  for (const { name, s } of students) {
    if (!s.tokenizer) throw new KdError('bad-option', `student "${name}" (${s.file}) has no tokenizer: bits per byte on --text needs one`);
  }
  const teacher = o.teacherCheckpoint ? loadModel(o.teacherCheckpoint) : undefined;
  if (teacher && !teacher.tokenizer) {
    disposeModel(teacher.model);
    throw new KdError('bad-option', `--teacher-checkpoint ${o.teacherCheckpoint} has no tokenizer: it cannot score plain text`);
  }
  try {
    const out: TextScore[] = [];
    for (const t of texts) {
      log(`bits per byte on ${t.name}`);
      const cut = cutText(t.text, maxBytes);
      let teacherBpb: BitsPerByte | null = null, teacherNote: string | null = null;
      if (teacher) teacherBpb = bitsPerByte(teacher.model, teacher.tokenizer!, cut);
      else if (o.teacherUrl && o.teacherModel) {
        try {
          teacherBpb = await teacherBitsPerByte({ url: o.teacherUrl, model: o.teacherModel, text: cut, timeoutMs: Math.max(o.teacherTimeoutMs ?? 10_000, 60_000), apiKeyEnv: o.apiKeyEnv });
        } catch (e) {
          teacherNote = (e as Error).message;
          log(`the teacher at ${o.teacherUrl} did not score ${t.name}: ${teacherNote}`);
        }
      }
      out.push({
        text: t.name, bytes: Buffer.byteLength(cut, 'utf8'),
        teacher: teacherBpb, teacherSource: teacher ? 'checkpoint' : teacherBpb ? 'api' : null, teacherNote,
        students: students.map(({ name, s }) => ({ name, ...bitsPerByte(s.model, s.tokenizer!, cut) })),
      });
    }
    return out;
  } finally {
    if (teacher) disposeModel(teacher.model);
  }
}
