/**
 * On-policy vs off-policy distillation at equal teacher tokens, on kd's embedded teacher; one JSON line.
 *
 * Start: a student S0 trained on an off-policy collection (by default datasets/bench-active/reference,
 * bench:active's reference before it reused bench:quality's: a random 55k-token budget of SOTU
 * excerpts, scored teacher-forced; built and trained here if absent).
 *   on-policy   `kd onpolicy`: R rounds; S0 (then each round's student) continues P prompts (the first
 *               12 words of training excerpts) by --max-new-tokens, the teacher scores the sequences,
 *               the student trains --steps-per-round steps on them mixed with the off-policy rows (λ);
 *   off-policy  the same teacher tokens spent on more off-policy excerpts (kd collect --budget-tokens
 *               into a copy of the start collection), and the same R × steps of training from S0 with
 *               the same schedule (fineTune, as kd onpolicy trains), on all off-policy rows.
 * `ratio` = on-policy bpb / off-policy bpb on held-out SOTU and Brown (< 1: on-policy is better).
 *
 * --divergence D: kd onpolicy trains its rounds on D (GKD favours reverse-kl or jsd on the student's samples);
 * the off-policy arm keeps kd's default loss, the best measured for off-policy KD (give another --dir: the
 * off-policy arm's cached rounds do not notice a change of its data).
 *
 *   npm run bench:onpolicy [-- --prompts 150 --rounds 2 --steps-per-round 150 --max-new-tokens 64 --lambda 0.5 --divergence jsd --dir D --fresh]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../src/backend/index.js';
import { disposeModel } from '../src/model/gpt.js';
import { loadModel } from '../src/model/load.js';
import { buildMix, fineTune, type OnPolicySummary } from '../src/onpolicy/onpolicy.js';
import { listRawShards } from '../src/schema/raw.js';
import { readRawRecords } from '../src/dataset/raw-columns.js';
import { excerpts, heldOut, prompts, r4, run, scoreCheckpoint, STUDENT, withTeacher } from './quality.js';

const args = process.argv.slice(2);
const arg = (n: string, d: string) => { const i = args.indexOf(`--${n}`); return i >= 0 ? args[i + 1]! : d; };
const flag = (n: string) => args.includes(`--${n}`);
const P = Number(arg('prompts', '150'));
const ROUNDS = arg('rounds', '2');
const STEPS = arg('steps-per-round', '150');
const NEW = arg('max-new-tokens', '64');
const LAMBDA = arg('lambda', '0.5');
const DIVERGENCE = arg('divergence', '');
const BASE = path.resolve(arg('base', 'datasets/bench-active/reference'));
const ROOT = path.resolve(arg('dir', 'datasets/bench-onpolicy'));

async function main() {
  if (flag('fresh')) fs.rmSync(ROOT, { recursive: true, force: true });
  fs.mkdirSync(ROOT, { recursive: true });
  await initBackend({});
  const texts = heldOut();
  const score = (ckpt: string) => Object.fromEntries(Object.entries(scoreCheckpoint(ckpt, texts)).map(([t, v]) => [t, r4(v)]));
  const t0 = Date.now();
  const pool = path.join(ROOT, 'pool.jsonl');
  fs.writeFileSync(pool, excerpts(Number(arg('pool', '600'))).map((r) => JSON.stringify(r)).join('\n') + '\n');
  const promptFile = path.join(ROOT, 'prompts.jsonl');
  fs.writeFileSync(promptFile, prompts(P).map((r) => JSON.stringify(r)).join('\n') + '\n');
  const tokensOf = (raw: string) => { const m = JSON.parse(fs.readFileSync(path.join(raw, 'manifest.json'), 'utf8')) as { tokens: { prompt: number; completion: number } }; return m.tokens.prompt + m.tokens.completion; };

  return withTeacher(async (url) => {
    const baseRaw = path.join(BASE, 'raw'), s0 = path.join(BASE, 'run');
    if (!fs.existsSync(path.join(s0, 'checkpoint.kdc'))) {
      await run(['collect', '--teacher-url', url, '--model', 'kd-teacher', '--input', pool, '--out', baseRaw, '--mode', 'score', '--top-k', '20', '--concurrency', '4', '--json', '--budget-tokens', arg('budget', '55000'), '--select', 'random', '--select-seed', '1']);
      await run(['dataset', 'build', '--from', baseRaw, '--out', path.join(BASE, 'data'), '--vocab-size', '2048', '--val-fraction', '0.05', '--seed', '0', '--json', '--force']);
      await run(['train', '--data', path.join(BASE, 'data'), '--out', s0, ...STUDENT, '--seed', '0', '--force', '--json']);
    }
    const start = score(s0);
    process.stderr.write(`start: ${JSON.stringify(start)}\n`);
    const baseTokens = tokensOf(baseRaw);

    // on-policy: kd onpolicy as a user runs it
    const onOut = path.join(ROOT, 'onpolicy');
    const on = JSON.parse(await run(['onpolicy', '--teacher-url', url, '--model', 'kd-teacher', '--prompts', promptFile, '--student', s0, '--offpolicy', baseRaw, '--out', onOut,
      '--rounds', ROUNDS, '--steps-per-round', STEPS, '--max-new-tokens', NEW, '--lambda', LAMBDA, ...(DIVERGENCE ? ['--divergence', DIVERGENCE] : []), '--json'])) as OnPolicySummary;
    const onBpb = score(on.student);
    process.stderr.write(`on-policy: ${JSON.stringify(onBpb)} (${on.teacherTokens} teacher tokens)\n`);

    // off-policy at the same teacher tokens: more excerpts, then the same training from S0
    const offRaw = path.join(ROOT, 'offpolicy', 'raw');
    if (!fs.existsSync(offRaw)) {
      fs.mkdirSync(path.dirname(offRaw), { recursive: true });
      execFileSync('cp', ['-r', baseRaw, offRaw]);
    }
    await run(['collect', '--teacher-url', url, '--model', 'kd-teacher', '--input', pool, '--out', offRaw, '--mode', 'score', '--top-k', '20', '--concurrency', '4', '--json',
      '--budget-tokens', String(baseTokens + on.teacherTokens), '--select', 'random', '--select-seed', '3']);
    const offTokens = tokensOf(offRaw) - baseTokens;
    const ids = new Set<string>();
    for (const f of listRawShards(offRaw)) for (const r of readRawRecords(f)) ids.add(r.input_id);
    const tok = loadModel(s0);
    disposeModel(tok.model);
    buildMix([offRaw], ids, tok.tokenizer!, path.join(ROOT, 'offpolicy'));
    let cur = s0;
    for (let r = 0; r < Number(ROUNDS); r++) {
      const dir = path.join(ROOT, 'offpolicy', `round-${r}`);
      const t = await fineTune(cur, path.join(ROOT, 'offpolicy', 'data'), dir, { steps: Number(STEPS), lr: 1e-3, minLr: 1e-4, warmupSteps: 10, seed: r });
      cur = path.dirname(t.checkpoint);
    }
    const offBpb = score(cur);
    process.stderr.write(`off-policy: ${JSON.stringify(offBpb)} (${offTokens} teacher tokens)\n`);
    process.stdout.write(JSON.stringify({
      bench: 'onpolicy', prompts: P, rounds: Number(ROUNDS), steps_per_round: Number(STEPS), max_new_tokens: Number(NEW), lambda: Number(LAMBDA), divergence: DIVERGENCE || '(the student\'s own)',
      start: { teacher_tokens: baseTokens, bpb: start },
      onpolicy: { teacher_tokens: on.teacherTokens, bpb: onBpb },
      offpolicy: { teacher_tokens: offTokens, bpb: offBpb },
      ratio: Object.fromEntries(Object.keys(onBpb).map((k) => [k, r4(onBpb[k]! / offBpb[k]!)])),
      seconds: Math.round((Date.now() - t0) / 1000),
    }) + '\n');
  });
}

await main();
