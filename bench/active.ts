/**
 * Does active selection save teacher tokens? One run on kd's embedded teacher, printing one JSON line.
 *
 * A pool of SOTU training excerpts (score mode, as bench:quality's "limited" case) is offered to
 * `kd collect --budget-tokens … --select …` through `kd serve`, as a user would:
 *   reference  --select random with the full budget B, trained → bits per byte R on held-out SOTU;
 *   seed       --select random with `seed-share`·B; a student trained on it is the scorer;
 *   selected   for each fraction f: the seed round, then --select STRATEGY --student SCORER up to f·B
 *              total (rounds into one --out: the seed's tokens count), trained the same way;
 *   control    --select random at each f·B (what the strategy adds over random at that budget).
 * Every student: the same config, steps and seed (kd's default loss). Teacher tokens are the billed
 * ones (kd serve's usage, from each collection's manifest).
 * `teacher_token_ratio`: the smallest selected run's tokens / the reference's tokens among runs whose
 * held-out SOTU bpb is within 1% of R (null: no fraction tried reached it). Target ≤ 0.5.
 *
 *   npm run bench:active [-- --pool 600 --budget 55000 --fractions 0.5,0.75 --select entropy --steps 600 --fresh]
 * Collections and runs are cached under datasets/bench-active/ (--fresh redoes everything).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../src/backend/index.js';
import { excerpts, heldOut, r4, run, scoreCheckpoint, sourceHash, STUDENT, withTeacher } from './quality.js';

const args = process.argv.slice(2);
const arg = (n: string, d: string) => { const i = args.indexOf(`--${n}`); return i >= 0 ? args[i + 1]! : d; };
const flag = (n: string) => args.includes(`--${n}`);

const POOL = Number(arg('pool', '600'));
const BUDGET = Number(arg('budget', '55000'));
const FRACTIONS = arg('fractions', '0.5,0.75').split(',').map(Number);
const STRATEGY = arg('select', 'entropy');
const SEED_SHARE = Number(arg('seed-share', '0.1'));
const RANDOM_SHARE = arg('random-share', '0.2');
const CONTROL = !flag('no-control');
const ROOT = path.resolve(arg('dir', 'datasets/bench-active'));

interface RunResult { tokens: number; rows: number; bpb: Record<string, number> }

async function main() {
  if (flag('fresh')) fs.rmSync(ROOT, { recursive: true, force: true });
  fs.mkdirSync(ROOT, { recursive: true });
  const input = path.join(ROOT, 'pool.jsonl');
  fs.writeFileSync(input, excerpts(POOL).map((r) => JSON.stringify(r)).join('\n') + '\n');
  await initBackend({});
  const texts = heldOut();
  const score = (ckpt: string) => Object.fromEntries(Object.entries(scoreCheckpoint(ckpt, texts)).map(([t, v]) => [t, r4(v)]));
  const src = sourceHash();
  const t0 = Date.now();

  return withTeacher(async (url) => {
    const collectTo = async (out: string, extra: string[]) => {
      const s = JSON.parse(await run(['collect', '--teacher-url', url, '--model', 'kd-teacher', '--input', input, '--out', out, '--mode', 'score', '--top-k', '20', '--concurrency', '4', '--json', ...extra])) as { stopReason: string };
      if (s.stopReason !== 'complete') throw new Error(`collect into ${out} stopped: ${s.stopReason}`);
      const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { tokens: { prompt: number; completion: number }; counts: { records: number } };
      return { tokens: m.tokens.prompt + m.tokens.completion, rows: m.counts.records };
    };
    /** build + train (cached by arguments and training sources) + score */
    const trainOn = async (name: string, raw: string, steps?: string): Promise<Record<string, number>> => {
      const data = path.join(ROOT, name, 'data'), ck = path.join(ROOT, name, 'run');
      const student = steps ? STUDENT.map((a, i) => (STUDENT[i - 1] === '--steps' ? steps : a)) : STUDENT;
      const argv = ['train', '--data', data, '--out', ck, ...student, '--seed', '0', '--force', '--json'];
      const key = JSON.stringify({ argv, src, raw: fs.readdirSync(raw).sort() });
      const keyFile = path.join(ck, 'bench-key.json');
      if (!fs.existsSync(keyFile) || fs.readFileSync(keyFile, 'utf8') !== key) {
        await run(['dataset', 'build', '--from', raw, '--out', data, '--vocab-size', '2048', '--val-fraction', '0.05', '--seed', '0', '--json', '--force']);
        await run(argv);
        fs.writeFileSync(keyFile, key);
      }
      const b = score(ck);
      process.stderr.write(`${name}: ${JSON.stringify(b)}\n`);
      return b;
    };
    const randomRun = async (name: string, budget: number): Promise<RunResult> => {
      const raw = path.join(ROOT, name, 'raw');
      const c = await collectTo(raw, ['--budget-tokens', String(Math.round(budget)), '--select', 'random', '--select-seed', '1']);
      return { ...c, bpb: await trainOn(name, raw) };
    };

    const reference = await randomRun('reference', BUDGET);
    // the scorer: a student trained on a small random seed round (its tokens count towards every selected run)
    const seedRaw = path.join(ROOT, 'seed', 'raw');
    const seed = await collectTo(seedRaw, ['--budget-tokens', String(Math.round(BUDGET * SEED_SHARE)), '--select', 'random', '--select-seed', '2']);
    await trainOn('seed', seedRaw, String(Math.round(Number(arg('steps', '600')) / 2)));
    const scorer = path.join(ROOT, 'seed', 'run');

    const selected: Record<string, RunResult> = {};
    const control: Record<string, RunResult> = {};
    for (const f of FRACTIONS) {
      const name = `selected-${f}`;
      const raw = path.join(ROOT, name, 'raw');
      if (!fs.existsSync(path.join(raw, 'selection.json'))) {
        fs.rmSync(raw, { recursive: true, force: true });
        fs.mkdirSync(path.dirname(raw), { recursive: true });
        execFileSync('cp', ['-r', seedRaw, raw]); // round 1 = the seed round
      }
      const c = await collectTo(raw, ['--budget-tokens', String(Math.round(BUDGET * f)), '--select', STRATEGY, '--student', scorer, '--random-share', RANDOM_SHARE]);
      selected[String(f)] = { ...c, bpb: await trainOn(name, raw) };
      if (CONTROL) control[String(f)] = await randomRun(`random-${f}`, BUDGET * f);
    }
    const target = reference.bpb.sotu_heldout! * 1.01;
    const matching = Object.values(selected).filter((r) => r.bpb.sotu_heldout! <= target).map((r) => r.tokens / reference.tokens);
    const out = {
      bench: 'active', strategy: STRATEGY, random_share: Number(RANDOM_SHARE), pool: POOL, budget_tokens: BUDGET, seed_tokens: seed.tokens,
      steps: Number(arg('steps', '600')),
      teacher_token_ratio: matching.length ? r4(Math.min(...matching)) : null,
      target: 0.5,
      reference,
      selected: Object.fromEntries(Object.entries(selected).map(([f, r]) => [f, { ...r, token_share: r4(r.tokens / reference.tokens), bpb_ratio: r4(r.bpb.sotu_heldout! / reference.bpb.sotu_heldout!) }])),
      control: Object.fromEntries(Object.entries(control).map(([f, r]) => [f, { ...r, token_share: r4(r.tokens / reference.tokens), bpb_ratio: r4(r.bpb.sotu_heldout! / reference.bpb.sotu_heldout!) }])),
      seconds: Math.round((Date.now() - t0) / 1000),
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  });
}

await main();
