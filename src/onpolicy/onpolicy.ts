/**
 * `kd onpolicy`: on-policy distillation (GKD, arXiv 2306.13649) against an HTTP teacher that can
 * score given text. Each round:
 *   1. sample  the current student continues every prompt (temperature, seeded per round);
 *   2. score   the teacher scores prompt + continuation teacher-forced (`kd collect --mode score`
 *              into --out/raw-onpolicy: its exactly-once ledger, resume, --max-cost and $ progress),
 *              so the student learns the teacher's top-k on the student's own prefixes;
 *   3. mix     this round's on-policy sequences with off-policy ones (--offpolicy, a raw collection)
 *              so that on-policy rows are the share λ of the training rows (GKD's λ);
 *   4. train   the student continues from the previous round's weights on that mix, with its own
 *              tokenizer (the dataset is built with it, not derived anew) and its own loss.
 * Before anything is sampled or sent the teacher is probed (collect/probe.ts): a teacher that only
 * answers chat (OpenAI chat models, llama.cpp, Ollama) stops the run with one line, having spent
 * nothing but the probe's three tiny requests.
 *
 * Resume: every step leaves files that say it is done (samples.jsonl, the collection's ledger, the
 * round's dataset manifest, the run's checkpoint with its step, done.json); running the same
 * command again after a kill -9 continues where it stopped, sending no request twice.
 * The prompt's own positions are scored and trained too (they are off-policy context); only the
 * continuation is the student's.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../backend/index.js';
import { type CollectProgress, type CollectSummary, type ProbeVerdict, collect, probeTeacher, readInput } from '../collect/index.js';
import { buildDataset, mergeRaw, readRawRecords } from '../dataset/index.js';
import { datasetSource } from '../data/loader.js';
import { KdError } from '../core/errors.js';
import { disposeModel } from '../model/gpt.js';
import { loadModel } from '../model/load.js';
import { listRawShards } from '../schema/raw.js';
import { loadCheckpoint } from '../schema/checkpoint.js';
import { Engine, generate } from '../serve/index.js';
import { type KdLossOptions, type StepProgress, resolveTrainConfig, train } from '../train/index.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { ONPOLICY_DEFAULTS, ONPOLICY_DIVERGENCES } from './options.js';

export interface OnPolicyOptions {
  teacherUrl?: string;
  model: string;
  apiKeyEnv?: string;
  /** CSV/JSONL of prompts (column/field `column`, default "prompt") */
  prompts: string;
  column?: string;
  /** the student to start from (a kd checkpoint with its tokenizer) */
  student: string;
  /** off-policy raw collection(s) to mix in (kd collect output) */
  offpolicy?: string;
  out: string;
  rounds: number;
  /** share of on-policy sequences in each round's training rows, (0, 1] */
  lambda: number;
  maxNewTokens: number;
  temperature: number;
  stepsPerRound: number;
  /** the rounds' divergence (default: the student checkpoint's own loss) */
  divergence?: KdLossOptions['divergence'];
  lr: number;
  minLr: number;
  warmupSteps: number;
  seed: number;
  topK: number;
  maxCost?: number;
  /** USD per 1M input/output tokens (else kd's price table) */
  priceIn?: number;
  priceOut?: number;
  concurrency: number;
  workers?: number;
  timeoutMs?: number;
}

export { ONPOLICY_DEFAULTS };

export type OnPolicyInput = Pick<OnPolicyOptions, 'model' | 'prompts' | 'student' | 'out'> & Partial<OnPolicyOptions>;

export interface RoundSummary {
  round: number;
  sampled: number;
  /** student tokens generated */
  generatedTokens: number;
  /** teacher tokens billed in this round's collection (all runs of it) */
  teacherTokens: number;
  onRows: number;
  offRows: number;
  steps: number;
  loss: number;
  checkpoint: string;
  collectStop: CollectSummary['stopReason'];
}

export interface OnPolicySummary {
  out: string;
  probe: Pick<ProbeVerdict, 'scoresGivenText' | 'scoreApi' | 'summary'>;
  rounds: RoundSummary[];
  /** the final student */
  student: string;
  teacherTokens: number;
  totalCostUsd: number;
  stopReason: 'complete' | 'budget' | 'interrupted';
}

export interface OnPolicyRuntime {
  log?: (line: string) => void;
  onCollectProgress?: (p: CollectProgress) => void;
  onTrainStep?: (p: StepProgress) => void;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  backend?: string;
}

export function resolveOnPolicyOptions(i: OnPolicyInput): OnPolicyOptions {
  const o = { ...ONPOLICY_DEFAULTS, ...Object.fromEntries(Object.entries(i).filter(([, v]) => v !== undefined)) } as OnPolicyOptions;
  const bad = (flag: string, want: string) => new KdError('bad-option', `--${flag}: ${JSON.stringify((o as unknown as Record<string, unknown>)[flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())])} is not valid; want ${want}`);
  const int = (flag: keyof OnPolicyOptions, name: string, min: number) => { const v = o[flag] as number; if (!Number.isInteger(v) || v < min) throw bad(name, `an integer ≥ ${min}`); };
  if (!o.model) throw new KdError('bad-option', '--model: give the teacher model name');
  if (!o.prompts || !fs.existsSync(o.prompts)) throw new KdError('bad-option', `--prompts ${o.prompts ?? ''}: no such file`);
  if (!o.student || !fs.existsSync(o.student)) throw new KdError('bad-option', `--student ${o.student ?? ''}: no such checkpoint`);
  if (o.offpolicy && listRawShards(o.offpolicy).length === 0) throw new KdError('bad-option', `--offpolicy ${o.offpolicy}: no raw shards (a kd collect --out directory)`);
  if (!o.out) throw new KdError('bad-option', '--out: give the output directory');
  int('rounds', 'rounds', 1);
  int('maxNewTokens', 'max-new-tokens', 1);
  int('stepsPerRound', 'steps-per-round', 1);
  int('topK', 'top-k', 1);
  int('concurrency', 'concurrency', 1);
  if (!(o.lambda > 0 && o.lambda <= 1)) throw bad('lambda', 'a number in (0, 1] (1: on-policy only)');
  if (o.lambda < 1 && !o.offpolicy) throw new KdError('bad-option', `--lambda ${o.lambda}: mixing needs off-policy data (--offpolicy RAW), or use --lambda 1`);
  if (!(o.temperature >= 0 && o.temperature <= 2)) throw bad('temperature', 'a number in 0..2');
  if (o.divergence !== undefined && !(ONPOLICY_DIVERGENCES as readonly string[]).includes(o.divergence)) throw bad('divergence', ONPOLICY_DIVERGENCES.join(', '));
  if (!(o.lr > 0) || !(o.minLr >= 0)) throw bad('lr', 'a positive learning rate');
  if (o.maxCost !== undefined && !(o.maxCost >= 0)) throw bad('max-cost', 'a number ≥ 0');
  return o;
}

const hashOf = (s: string) => createHash('sha256').update(s).digest('hex');
const runDir = (out: string, r: number) => path.join(out, `round-${r}`, 'run');

function writeAtomic(file: string, text: string): void {
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

/** The student's sampled continuation of each prompt (deterministic: seeded per prompt and round). */
export async function sampleContinuations(
  checkpoint: string, prompts: { id: string; prompt: string }[], o: { maxNewTokens: number; temperature: number; seed: number },
): Promise<{ rows: { id: string; text: string; prompt_chars: number }[]; generated: number }> {
  const { model, tokenizer } = loadModel(checkpoint);
  try {
    if (!tokenizer) throw new KdError('student', `${checkpoint}: the checkpoint holds no tokenizer (train it on a kd dataset)`);
    const engine = new Engine(model);
    const keep = Math.max(1, model.config.seqLen - o.maxNewTokens);
    const rows: { id: string; text: string; prompt_chars: number }[] = [];
    let generated = 0;
    for (const [i, p] of prompts.entries()) {
      const ids = tokenizer.encode(p.prompt).slice(-keep);
      const prefix = tokenizer.decode(ids);
      const [ch] = await generate(engine, tokenizer.tokens, { prompt: ids, n: 1, maxTokens: o.maxNewTokens, temperature: o.temperature, topP: 1, seed: o.seed * 1_000_003 + i, stop: [], topLogprobs: 0 });
      generated += ch!.tokens.length;
      rows.push({ id: p.id, text: prefix + ch!.text, prompt_chars: prefix.length });
    }
    return { rows, generated };
  } finally {
    disposeModel(model);
  }
}

/** Input ids of a raw collection (each once). */
function rawIds(dir: string): string[] {
  const ids = new Set<string>();
  for (const f of listRawShards(dir)) for (const r of readRawRecords(f)) ids.add(r.input_id);
  return [...ids];
}

/** Off-policy ids for a round: `n` of them, in a seeded order (pure). */
export function offPolicyPick(ids: string[], n: number, round: number, seed: number): string[] {
  return ids.map((id) => ({ id, k: hashOf(`${seed}:${round}:${id}`) })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0)).slice(0, Math.max(0, n)).map((x) => x.id);
}

/** Off-policy rows to go with `onRows` on-policy ones at share λ. */
export const offRowsFor = (onRows: number, lambda: number) => (lambda >= 1 ? 0 : Math.round((onRows * (1 - lambda)) / lambda));

/** Continue training `from` (a checkpoint) on `data` for `steps`, into `outDir` (resuming a killed run there). */
export async function fineTune(from: string, data: string, outDir: string, o: { steps: number; lr: number; minLr: number; warmupSteps: number; seed: number; divergence?: KdLossOptions['divergence']; workers?: number; backend?: string; signal?: AbortSignal; onStep?: (p: StepProgress) => void }) {
  const file = path.join(outDir, 'checkpoint.kdc');
  if (fs.existsSync(file)) {
    const step = Number((loadCheckpoint(file).header.state as { step?: number } | undefined)?.step ?? 0);
    if (step >= o.steps) return { steps: step, loss: NaN, checkpoint: file, resumed: false, done: true };
  }
  const prev = loadModel(from);
  try {
    const base = (prev.header.train ?? {}) as Record<string, unknown>;
    const loss = { ...(base.loss as object | undefined), ...(o.divergence ? { divergence: o.divergence } : {}) };
    const config = resolveTrainConfig({ ...base, loss, steps: o.steps, lr: o.lr, minLr: o.minLr, warmupSteps: Math.min(o.warmupSteps, o.steps), seed: o.seed, evalEvery: 0, checkpointEvery: Math.max(1, Math.min(100, o.steps)) } as never);
    const src = datasetSource(data, { split: 'train', batchSize: config.batchSize, seqLen: config.seqLen, seed: config.seed });
    const be = await initBackend({ backend: o.backend });
    const workers = o.workers ?? Math.max(1, Math.min((await import('node:os')).availableParallelism(), 8, config.batchSize));
    const resume = fs.existsSync(file);
    const s = await train({
      model: prev.model.config, config, data: src, outDir, resume, initFrom: resume ? undefined : prev.model, tokenizer: prev.tokenizer?.toJSON(),
      workers: be.backend === 'wasm' || be.backend === 'cpu' ? workers : 1, backend: be.backend, signal: o.signal, onStep: o.onStep,
      meta: { onpolicy_from: from },
    });
    return { steps: s.steps, loss: s.loss, checkpoint: s.checkpoint, resumed: resume, done: s.steps >= o.steps };
  } finally {
    disposeModel(prev.model);
  }
}

/** Builds a dataset from raw dirs with the student's tokenizer, keeping only the given input ids. */
export function buildMix(raws: string[], keep: Set<string>, tokenizer: Tokenizer, dir: string): void {
  if (fs.existsSync(path.join(dir, 'data', 'manifest.json'))) return;
  const mixRaw = path.join(dir, 'mix-raw');
  fs.rmSync(mixRaw, { recursive: true, force: true });
  mergeRaw({ from: raws, out: mixRaw, force: true });
  try {
    buildDataset({ from: mixRaw, out: path.join(dir, 'data'), tokenizer, keep: (id) => keep.has(id), valFraction: 0, force: true });
  } finally {
    fs.rmSync(mixRaw, { recursive: true, force: true });
  }
}

export async function onPolicy(input: OnPolicyInput, rt: OnPolicyRuntime = {}): Promise<OnPolicySummary> {
  const o = resolveOnPolicyOptions(input);
  const log = rt.log ?? (() => {});
  const out = path.resolve(o.out);
  // 1. can this teacher score given text? Nothing is sampled, written or sent before the answer.
  const verdict = await probeTeacher({ teacherUrl: o.teacherUrl, model: o.model, apiKeyEnv: o.apiKeyEnv, timeoutMs: o.timeoutMs, env: rt.env, signal: rt.signal });
  if (!verdict.scoresGivenText) {
    throw new KdError('teacher-cannot-score', `${verdict.baseURL} (${o.model}) cannot score given text, so on-policy distillation cannot run; nothing was spent beyond the probe. ${verdict.summary}`);
  }
  log(`teacher: ${verdict.summary}`);
  fs.mkdirSync(out, { recursive: true });
  const prompts: { id: string; prompt: string }[] = [];
  for await (const row of readInput({ file: o.prompts, mode: 'chat', column: o.column })) {
    if (row.reject) { log(`prompt row ${row.row} (${row.id}) skipped: ${row.reject.detail}`); continue; }
    prompts.push({ id: row.id, prompt: row.messages!.filter((m) => m.role === 'user').map((m) => m.content).join('\n') });
  }
  if (prompts.length === 0) throw new KdError('input', `${o.prompts}: no prompts`);
  const rawOn = path.join(out, 'raw-onpolicy');
  const offIds = o.offpolicy ? rawIds(o.offpolicy) : [];
  const studentStart = loadModel(o.student);
  const tokenizer = studentStart.tokenizer;
  disposeModel(studentStart.model);
  if (!tokenizer) throw new KdError('student', `--student ${o.student}: the checkpoint holds no tokenizer (train it on a kd dataset)`);

  const summary: OnPolicySummary = {
    out, probe: { scoresGivenText: verdict.scoresGivenText, scoreApi: verdict.scoreApi, summary: verdict.summary }, rounds: [], student: o.student, teacherTokens: 0, totalCostUsd: 0, stopReason: 'complete',
  };
  let current = o.student;
  for (let r = 0; r < o.rounds; r++) {
    const dir = path.join(out, `round-${r}`);
    fs.mkdirSync(dir, { recursive: true });
    const doneFile = path.join(dir, 'done.json');
    if (fs.existsSync(doneFile)) {
      const d = JSON.parse(fs.readFileSync(doneFile, 'utf8')) as RoundSummary;
      summary.rounds.push(d);
      current = runDir(out, r);
      log(`round ${r + 1}/${o.rounds}: done before`);
      continue;
    }
    // 2. sample (reused when a killed run already wrote them)
    const samplesFile = path.join(dir, 'samples.jsonl');
    let generated = 0;
    if (!fs.existsSync(samplesFile)) {
      log(`round ${r + 1}/${o.rounds}: ${path.basename(current)} samples ${o.maxNewTokens} tokens after each of ${prompts.length} prompts`);
      const s = await sampleContinuations(current, prompts, { maxNewTokens: o.maxNewTokens, temperature: o.temperature, seed: o.seed + r });
      generated = s.generated;
      writeAtomic(samplesFile, s.rows.map((x) => JSON.stringify({ id: `${x.id}@r${r}`, text: x.text, prompt_chars: x.prompt_chars })).join('\n') + '\n');
    }
    if (rt.signal?.aborted) { summary.stopReason = 'interrupted'; break; }
    // 3. the teacher scores them (the collector's ledger: a rerun sends only what is missing)
    const c = await collect({
      teacherUrl: o.teacherUrl, model: o.model, apiKeyEnv: o.apiKeyEnv, input: samplesFile, out: rawOn, mode: 'score', scoreApi: verdict.scoreApi!,
      topK: o.topK, maxCost: o.maxCost, priceIn: o.priceIn, priceOut: o.priceOut, concurrency: o.concurrency, ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
    }, { signal: rt.signal, log: (l) => log(`collect: ${l}`), onProgress: rt.onCollectProgress, env: rt.env });
    summary.totalCostUsd = c.totalCostUsd;
    if (c.stopReason === 'interrupted') { summary.stopReason = 'interrupted'; break; }
    if (!['complete', 'budget'].includes(c.stopReason)) throw new KdError(`collect-${c.stopReason}`, c.stopDetail ?? c.stopReason);
    const onIds = rawIds(rawOn).filter((id) => id.endsWith(`@r${r}`));
    if (onIds.length === 0) { summary.stopReason = 'budget'; log(`round ${r + 1}: the budget allowed no on-policy sequence (${c.stopDetail ?? ''})`); break; }
    // 4. mix and build with the student's tokenizer
    const off = offPolicyPick(offIds, offRowsFor(onIds.length, o.lambda), r, o.seed);
    buildMix(o.offpolicy ? [rawOn, o.offpolicy] : [rawOn], new Set([...onIds, ...off]), tokenizer, dir);
    if (rt.signal?.aborted) { summary.stopReason = 'interrupted'; break; }
    // 5. train on from the current student
    log(`round ${r + 1}/${o.rounds}: training ${o.stepsPerRound} steps on ${onIds.length} on-policy + ${off.length} off-policy sequences (λ ${o.lambda})`);
    const t = await fineTune(current, path.join(dir, 'data'), runDir(out, r), { steps: o.stepsPerRound, lr: o.lr, minLr: o.minLr, warmupSteps: o.warmupSteps, seed: o.seed + r, divergence: o.divergence, workers: o.workers, backend: rt.backend, signal: rt.signal, onStep: rt.onTrainStep });
    if (!t.done) { summary.stopReason = 'interrupted'; break; }
    const onTokens = onPolicyTokens(rawOn, r);
    const rs: RoundSummary = {
      round: r, sampled: prompts.length, generatedTokens: generated, teacherTokens: onTokens, onRows: onIds.length, offRows: off.length,
      steps: t.steps, loss: t.loss, checkpoint: t.checkpoint, collectStop: c.stopReason,
    };
    writeAtomic(doneFile, JSON.stringify(rs) + '\n');
    summary.rounds.push(rs);
    current = runDir(out, r);
    if (c.stopReason === 'budget') { summary.stopReason = 'budget'; log(`stopped after round ${r + 1}: ${c.stopDetail}`); break; }
  }
  summary.student = current;
  summary.teacherTokens = summary.rounds.reduce((s, x) => s + x.teacherTokens, 0);
  return summary;
}

/** Teacher tokens billed for round r's sequences (prompt + completion usage of their records). */
function onPolicyTokens(rawOn: string, r: number): number {
  let n = 0;
  for (const f of listRawShards(rawOn)) {
    for (const rec of readRawRecords(f)) {
      if (!rec.input_id.endsWith(`@r${r}`)) continue;
      n += (rec.prompt_tokens ?? 0) + (rec.completion_tokens ?? 0);
    }
  }
  return n;
}
