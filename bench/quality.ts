/**
 * Does distillation pay? One run on kd's embedded teacher, printing one JSON line.
 *
 * For each case it collects the teacher's top-20 log-probs through `kd serve` + `kd collect` (as a user
 * would), builds a dataset (`kd dataset build --vocab-size 2048`), then trains the same student twice per
 * seed — hard labels only (`--alpha 1`) and kd's DEFAULT loss (no loss flags) — and scores both as bits per
 * byte on held-out text with their own tokenizer: SOTU speeches the teacher never trained on (every 10th)
 * and the out-of-domain Brown corpus. Cases:
 *   limited  score mode, ≈50k labelled tokens (150 excerpts), ≈20 epochs: the regime of a paid teacher
 *   large    score mode, ≈200k labelled tokens (600 excerpts), ≈5 epochs
 *   chat     the teacher's own sampled answers to 300 prompts (temperature 1), as an OpenAI teacher gives
 * `ratio` = KD bpb / hard-label bpb (mean over seeds); targets: ≤ 0.95 in limited and chat, ≤ 1.0 in large.
 *
 *   npm run bench:quality [-- --cases limited,chat --seeds 0,1,2 --steps 600 --kd "--alpha 0.5" --fresh]
 *   … --format-version 1 --dir datasets/bench-quality-v1: the datasets in format version 1 (float16 log-probs)
 * Collections, datasets and finished runs (same arguments, same training sources) are cached under
 * datasets/bench-quality/ (--fresh redoes everything).
 */
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { initBackend } from '../src/backend/index.js';
import { bitsPerByte } from '../src/eval/bpb.js';
import { disposeModel } from '../src/model/gpt.js';
import { loadModel } from '../src/model/load.js';
import { readCorpus, splitDocs } from '../src/data/corpus.js';
import { DEFAULT_LOSS } from '../src/train/kd-kernel.js';

const args = process.argv.slice(2);
const arg = (n: string, d: string) => { const i = args.indexOf(`--${n}`); return i >= 0 ? args[i + 1] : d; };
const flag = (n: string) => args.includes(`--${n}`);

const CASES = arg('cases', 'limited,large,chat').split(',');
const SEEDS = arg('seeds', '0,1,2').split(',').map(Number);
const STEPS = Number(arg('steps', '600'));
const KD_FLAGS = arg('kd', '').split(/\s+/).filter(Boolean); // extra loss flags for the KD student (default: none)
const HARD_FLAGS = arg('hard', '--alpha 1').split(/\s+/).filter(Boolean);
const KINDS = arg('kinds', 'hard,kd').split(','); // --kinds kd: only the KD student (a sweep over --kd flags)
const TAG = arg('tag', '');
const TEXT_BYTES = Number(arg('text-bytes', '300000'));
const ROOT = path.resolve(arg('dir', 'datasets/bench-quality'));
const FORMAT = arg('format-version', ''); // dataset format of the builds (default: kd dataset build's)
const TEACHER = path.resolve(arg('teacher', 'checkpoints/teacher'));
export const KD = [path.resolve('node_modules/.bin/tsx'), path.resolve('src/cli.ts')];
export const STUDENT = ['--d-model', '96', '--layers', '2', '--heads', '4', '--seq-len', '128', '--batch-size', '16',
  '--steps', String(STEPS), '--lr', '0.003', '--min-lr', '0.0003', // warm-up: kd train's default (100 steps)
  '--eval-every', '1000000', '--checkpoint-every', '1000000', '--log-every', '100'];

export function run(argv: string[], quiet = true): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(KD[0], [KD[1], ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; if (!quiet) process.stderr.write(d); });
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`kd ${argv.join(' ')} exited ${code}:\n${err.slice(-2000)}`))));
  });
}

/** Training-split SOTU text cut into excerpts of whole sentences (≥ 1,400 characters), spread evenly. */
export function excerpts(n: number): { id: string; text: string }[] {
  const chunks: { id: string; text: string }[] = [];
  for (const d of splitDocs(readCorpus('sotu'), 'train')) {
    let cur: string[] = [], len = 0, k = 0;
    for (const p of d.text.split(/(?<=[.!?])\s+(?=[A-Z"])/).map((s) => s.trim()).filter(Boolean)) {
      cur.push(p); len += p.length + 1;
      if (len >= 1400) { chunks.push({ id: `${d.id}#${k++}`, text: cur.join(' ') }); cur = []; len = 0; }
    }
  }
  const step = chunks.length / n;
  return Array.from({ length: n }, (_, i) => chunks[Math.floor(i * step)]);
}

/** Prompts: the first ~12 words of excerpts not used for scoring. */
export function prompts(n: number): { id: string; prompt: string }[] {
  return excerpts(n * 2).filter((_, i) => i % 2 === 1).map((e) => ({ id: e.id, prompt: e.text.split(/\s+/).slice(0, 12).join(' ') }));
}

/** Held-out texts: documents sampled evenly until about `bytes` (default --text-bytes, 300,000). */
export function heldOut(bytes = TEXT_BYTES): { name: string; text: string }[] {
  const pick = (docs: { text: string }[]) => {
    const total = docs.reduce((s, d) => s + d.text.length, 0);
    const every = Math.max(1, Math.ceil(total / bytes));
    return docs.filter((_, i) => i % every === 0).map((d) => d.text.trim()).join('\n\n').slice(0, bytes);
  };
  return [
    { name: 'sotu_heldout', text: pick(splitDocs(readCorpus('sotu'), 'val')) },
    { name: 'brown', text: pick(readCorpus('brown').docs) },
  ];
}

export async function withTeacher<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const child = spawn(KD[0], [KD[1], 'serve', '--checkpoint', TEACHER, '--port', '0', '--json', '--quiet', '--model-name', 'kd-teacher'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (c) => reject(new Error(`kd serve exited ${c}`)));
  });
  try {
    return await fn((JSON.parse(line) as { url: string }).url);
  } finally {
    child.kill('SIGTERM');
  }
}

export interface CaseSpec { name: string; mode: 'score' | 'chat'; rows: number }
export const SPECS: Record<string, CaseSpec> = {
  limited: { name: 'limited', mode: 'score', rows: 150 },
  large: { name: 'large', mode: 'score', rows: 600 },
  chat: { name: 'chat', mode: 'chat', rows: 300 },
};

/** A case's collection and dataset under `root` (built once; `fresh` redoes them). */
export async function dataset(c: CaseSpec, url: () => Promise<string>, o: { root: string; fresh: boolean } = { root: ROOT, fresh: flag('fresh') }): Promise<{ dir: string; raw: string; summary: Record<string, unknown> }> {
  const dir = path.join(o.root, c.name);
  const raw = path.join(dir, 'raw'), data = path.join(dir, 'data');
  if (o.fresh) fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  if (!fs.existsSync(path.join(data, 'manifest.json'))) {
    const input = path.join(dir, 'input.jsonl');
    const rows = c.mode === 'score' ? excerpts(c.rows) : prompts(c.rows);
    fs.writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const common = ['collect', '--teacher-url', await url(), '--model', 'kd-teacher', '--input', input, '--out', raw, '--top-k', '20', '--concurrency', '4', '--json'];
    await run(c.mode === 'score' ? [...common, '--mode', 'score']
      : [...common, '--mode', 'chat', '--max-tokens', '160', '--temperature', '1', '--seed', '1']);
    await run(['dataset', 'build', '--from', raw, '--out', data, '--vocab-size', '2048', '--val-fraction', '0.05', '--seed', '0', '--json', '--force', ...(FORMAT ? ['--format-version', FORMAT] : [])]);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(data, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  return { dir: data, raw, summary: manifest };
}

/** The checkpoint and arguments of bench:quality's run of a case, kind (hard, kd) and seed, under `root`. */
export function qualityRun(root: string, data: string, c: string, kind: 'hard' | 'kd', seed: number): { ck: string; argv: string[]; loss: unknown } {
  const ck = path.join(root, 'runs', `${c}-${kind}${TAG}-${seed}`);
  const argv = ['train', '--data', data, '--out', ck, ...STUDENT, '--seed', String(seed), ...(kind === 'hard' ? HARD_FLAGS : KD_FLAGS), '--force', '--json'];
  return { ck, argv, loss: kind === 'hard' ? null : DEFAULT_LOSS };
}

/**
 * `kd train argv` into `ck`, unless a finished run there has the same key (the arguments, this kd's
 * training sources and `extra`); `before` runs first when it trains (e.g. building its dataset).
 */
export async function trainCached(argv: string[], ck: string, extra: Record<string, unknown>, o: { fresh?: boolean; before?: () => Promise<unknown> } = {}): Promise<void> {
  const data = argv[argv.indexOf('--data') + 1];
  const keyFile = path.join(ck, 'bench-key.json');
  const key = () => JSON.stringify({ argv, src: sourceHash(), data: dataKey(data), ...extra });
  if (o.fresh || !fs.existsSync(path.join(ck, 'checkpoint.kdc')) || !fs.existsSync(keyFile) || fs.readFileSync(keyFile, 'utf8') !== key()) {
    await o.before?.();
    await run(argv);
    fs.writeFileSync(keyFile, key()); // (after `before`: the key names the data this run trained on)
  }
}

/** A dataset's content: its tokenizer and every shard's sha256 (not its manifest's bytes, which hold the build time). */
function dataKey(data: string | undefined): string | null {
  const file = data && path.join(data, 'manifest.json');
  if (!file || !fs.existsSync(file)) return null;
  const m = JSON.parse(fs.readFileSync(file, 'utf8')) as { tokenizer: { hash: string }; splits: Record<string, { shards: { sha256: string }[] }> };
  const shards = Object.entries(m.splits).map(([s, x]) => `${s}:${x.shards.map((h) => h.sha256).join(',')}`);
  return createHash('sha256').update(JSON.stringify([m.tokenizer.hash, shards])).digest('hex').slice(0, 16);
}

/**
 * sha256 of the sources a training run depends on (trainer and loss, model, loader and shard formats,
 * native kernels): a reused run must have been trained by this code. The dataset is keyed by its
 * manifest (which holds each shard's sha256), not by the code that built it. The default loss is
 * keyed by its value instead (hard-label runs, at alpha 1, do not depend on it).
 */
export function sourceHash(): string {
  const h = createHash('sha256');
  for (const dir of ['src/train', 'src/model', 'src/data', 'src/schema', 'native']) {
    for (const f of fs.readdirSync(dir).sort()) {
      if (/\.(ts|cc|h)$/.test(f)) h.update(fs.readFileSync(path.join(dir, f), 'utf8').replace(/^export const DEFAULT_LOSS\b.*$/m, ''));
    }
  }
  return h.digest('hex').slice(0, 16);
}

/** Bits per byte of a checkpoint on each held-out text, with its own tokenizer. */
export function scoreCheckpoint(ckpt: string, texts: { name: string; text: string }[]): Record<string, number> {
  const { model, tokenizer } = loadModel(ckpt);
  try {
    return Object.fromEntries(texts.map((t) => [t.name, bitsPerByte(model, tokenizer!, t.text).bpb]));
  } finally {
    disposeModel(model);
  }
}

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const spread = (xs: number[]) => (xs.length > 1 ? Math.max(...xs) - Math.min(...xs) : 0);
export const r4 = (x: number) => Math.round(x * 10_000) / 10_000;

async function main() {
  await initBackend({});
  const texts = heldOut();
  const score = (ckpt: string) => scoreCheckpoint(ckpt, texts);
  let teacherUrl: string | undefined;
  let stopTeacher: (() => void) | undefined;
  const url = async () => {
    if (teacherUrl) return teacherUrl;
    await new Promise<void>((ready) => {
      void withTeacher((u) => { teacherUrl = u; ready(); return new Promise<void>((done) => { stopTeacher = done; }); });
    });
    return teacherUrl!;
  };
  const out: Record<string, unknown> = { bench: 'quality', dir: ROOT, steps: STEPS, seeds: SEEDS, kd_flags: KD_FLAGS.join(' ') || '(defaults)', teacher: flag('no-teacher') ? null : score(TEACHER) };
  const t0 = Date.now();
  try {
    for (const name of CASES) {
      const c = SPECS[name];
      if (!c) throw new Error(`unknown case ${name} (limited, large, chat)`);
      const { dir, summary } = await dataset(c, url);
      const res: Record<string, Record<string, number[]>> = { hard: {}, kd: {} };
      for (const seed of SEEDS) {
        for (const kind of (['hard', 'kd'] as const).filter((k) => KINDS.includes(k))) {
          // a finished run with exactly these arguments (and this kd's sources) is reused unless --fresh
          const { ck, argv, loss } = qualityRun(ROOT, dir, name, kind, seed);
          await trainCached(argv, ck, { loss }, { fresh: flag('fresh') });
          for (const [t, v] of Object.entries(score(ck))) (res[kind][t] ??= []).push(v);
          process.stderr.write(`${name} ${kind} seed ${seed}: ${JSON.stringify(Object.fromEntries(Object.entries(res[kind]).map(([t, v]) => [t, r4(v.at(-1)!)])))}\n`);
        }
      }
      const stats = (kind: string) => Object.fromEntries(Object.entries(res[kind]).map(([t, v]) => [t, { mean: r4(mean(v)), spread: r4(spread(v)), runs: v.map(r4) }]));
      const counts = summary.counts as Record<string, unknown> | undefined;
      out[name] = {
        mode: c.mode, rows: c.rows, labelled_tokens: counts?.labelled ?? counts?.labelledPositions ?? null,
        format_version: summary.version ?? null, bytes_per_labelled: summary.bytesPerLabelled ?? null,
        hard: stats('hard'), kd: stats('kd'),
        ratio: res.hard[texts[0].name] && res.kd[texts[0].name] ? Object.fromEntries(texts.map((t) => [t.name, r4(mean(res.kd[t.name]) / mean(res.hard[t.name]))])) : null,
      };
    }
  } finally {
    stopTeacher?.();
  }
  out.seconds = Math.round((Date.now() - t0) / 1000);
  process.stdout.write(JSON.stringify(out) + '\n');
}

// run when invoked (npm run bench:quality), not when bench/active.ts imports the helpers above
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main();
