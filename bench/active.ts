/**
 * Does active selection save teacher tokens? One run on kd's embedded teacher, printing one JSON line
 * (also when the target is missed or a step fails: then with what was measured and `error`).
 *
 * A pool of SOTU training excerpts (score mode) is offered to `kd collect --budget-tokens … --select …`
 * through `kd serve`, as a user would:
 *   reference  every 4th pool excerpt, all of it (B estimated teacher tokens), trained → held-out SOTU
 *              bits per byte R. With the default pool of 600 this is exactly bench:quality's "limited"
 *              case (its 150 excerpts, its kd run of seed 0): its collection, dataset and run are
 *              reused from datasets/bench-quality/ when there, else made there for both benches;
 *   seed       --select random with `seed-share`·B from the pool; a student trained on it (half the
 *              steps) is the scorer;
 *   selected   for each fraction f: the seed round, then --select STRATEGY --student SCORER up to f·B
 *              total (rounds into one --out: the seed's tokens count), trained like the reference;
 *   control    (--control) --select random at each f·B: what the strategy adds over random there.
 * Every student: bench:quality's config, steps and seed 0 (kd's default loss). Teacher tokens are the
 * billed ones (kd serve's usage, from each collection's manifest). By default every student also trains
 * on the pool's texts its collection did not score, with hard targets only (kd dataset build --text: in
 * score mode the texts are the user's, free), and `bounds` adds the pool with no teacher token at all
 * and with every row scored (bench:quality's "large" runs); --labelled-only trains each student on the
 * rows its tokens bought alone, the reference then being bench:quality's limited kd run itself.
 * `teacher_token_ratio`: the smallest selected run's tokens / the reference's tokens among runs whose
 * held-out SOTU bpb is within 1% of R; null when none is (then `teacher_token_ratio_above` is the
 * largest share tried). Target ≤ 0.5.
 *
 * Cost on 2 cores: the seed's training (half steps) and one selected run per fraction, plus the
 * reference once if bench:quality has not trained it (600 steps each by default).
 *
 *   npm run bench:active [-- --fractions 0.5,0.75 --select entropy --steps 600 --control --seeds 0,1,2 --fresh]
 * --seeds: every run again per seed s (training seed s for every student, the scorer's too; for s > 0 the
 * control picks other random excerpts; the seed round's excerpts stay the same), bpb as the mean over seeds with each seed's value beside it.
 * --scorer-text: the scorer trains on the seed round and the pool's text for --steps (a user's first student).
 *   npm run bench:active -- --smoke    a few-minute check of the whole path (tiny pool, 8 steps)
 * Collections and runs are cached under datasets/bench-active/ (--fresh redoes those, not bench:quality's).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../src/backend/index.js';
import { approxTokens } from '../src/collect/pricing.js';
import { dataset, excerpts, heldOut, qualityRun, r4, run, scoreCheckpoint, SPECS, STUDENT, trainCached, withTeacher } from './quality.js';

const args = process.argv.slice(2);
const arg = (n: string, d: string) => { const i = args.indexOf(`--${n}`); return i >= 0 ? args[i + 1]! : d; };
const flag = (n: string) => args.includes(`--${n}`);

const SMOKE = flag('smoke');
const POOL = Number(arg('pool', SMOKE ? '16' : '600'));
const REF_EVERY = 4;
const FRACTIONS = arg('fractions', '0.5').split(',').map(Number);
const STRATEGY = arg('select', 'entropy');
const SEED_SHARE = Number(arg('seed-share', SMOKE ? '0.3' : '0.1')); // the smoke pool's excerpts are ~25% of B each
const RANDOM_SHARE = arg('random-share', '0.2');
const CONTROL = flag('control');
/** The scorer also trains on the pool's text (hard targets, free in score mode) and for the full --steps, as a user would train before buying more. */
const SCORER_TEXT = !flag('labelled-only') && flag('scorer-text');
const SEEDS = arg('seeds', '0').split(',').map(Number);
const STEPS = Number(arg('steps', SMOKE ? '8' : '600'));
const SCORER_STEPS = Number(arg('scorer-steps', String(Math.max(1, Math.round(STEPS / 2)))));
const TEXT_BYTES = Number(arg('text-bytes', SMOKE ? '3000' : '300000'));
const ROOT = path.resolve(arg('dir', SMOKE ? 'datasets/bench-active-smoke' : 'datasets/bench-active'));
const QUALITY = path.resolve(arg('quality-dir', 'datasets/bench-quality'));
const TARGET = 0.5;
/**
 * Score mode's texts are the user's own, so their hard targets cost nothing: by default every student
 * also trains on the pool's texts that its collection did not score (kd dataset build --text), as
 * SE-KD does (cross-entropy everywhere, the teacher where it was asked). --labelled-only: each student
 * sees only the rows its teacher tokens bought (the earlier bench).
 */
const POOL_TEXT = !flag('labelled-only');

interface RunResult { tokens: number; rows: number; bpb: Record<string, number>; per_seed?: Record<string, number>[] }

/** Several seeds' runs as one: mean tokens, rows and bpb, each seed's bpb kept. */
function meanOf(rs: RunResult[]): RunResult {
  if (rs.length === 1) return rs[0]!;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const keys = Object.keys(rs[0]!.bpb);
  return {
    tokens: Math.round(mean(rs.map((r) => r.tokens))), rows: Math.round(mean(rs.map((r) => r.rows))),
    bpb: Object.fromEntries(keys.map((k) => [k, r4(mean(rs.map((r) => r.bpb[k]!)))])), per_seed: rs.map((r) => r.bpb),
  };
}

const studentWith = (steps: number) => STUDENT.map((a, i) => (STUDENT[i - 1] === '--steps' ? String(steps) : a));
const billed = (raw: string) => {
  const m = JSON.parse(fs.readFileSync(path.join(raw, 'manifest.json'), 'utf8')) as { tokens: { prompt: number; completion: number }; counts: { records: number } };
  return { tokens: m.tokens.prompt + m.tokens.completion, rows: m.counts.records };
};
const share = (r: RunResult, ref: RunResult) => ({ ...r, token_share: r4(r.tokens / ref.tokens), bpb_ratio: r4(r.bpb.sotu_heldout! / ref.bpb.sotu_heldout!) });

async function main(): Promise<number> {
  const t0 = Date.now();
  // what is known so far: printed whatever happens
  const out: Record<string, unknown> = {
    bench: 'active', smoke: SMOKE, pool_text: POOL_TEXT, scorer_text: SCORER_TEXT, strategy: STRATEGY, random_share: Number(RANDOM_SHARE), pool: POOL, steps: STEPS, scorer_steps: SCORER_STEPS,
    seeds: SEEDS, teacher_token_ratio: null, target: TARGET,
  };
  const selectedBy: Record<string, RunResult[]> = {};
  const controlBy: Record<string, RunResult[]> = {};
  const referenceBy: RunResult[] = [];
  let selected: Record<string, RunResult> = {};
  let control: Record<string, RunResult> = {};
  let reference: RunResult | null = null;
  const bounds: Record<string, RunResult> = {};
  const finish = (error?: unknown) => {
    // the seeds measured so far, as means (a seed that failed half-way leaves its runs out)
    const n = referenceBy.length;
    const upTo = (by: Record<string, RunResult[]>) => Object.fromEntries(Object.entries(by).filter(([, rs]) => rs.length >= n && n > 0).map(([f, rs]) => [f, meanOf(rs.slice(0, n))]));
    reference = n ? meanOf(referenceBy) : null;
    selected = upTo(selectedBy);
    control = upTo(controlBy);
    if (reference) {
      const target = reference.bpb.sotu_heldout! * 1.01;
      const shares = Object.values(selected).map((r) => r.tokens / reference!.tokens);
      const matching = Object.values(selected).filter((r) => r.bpb.sotu_heldout! <= target).map((r) => r.tokens / reference!.tokens);
      out.teacher_token_ratio = matching.length ? r4(Math.min(...matching)) : null;
      if (!matching.length && shares.length) out.teacher_token_ratio_above = r4(Math.max(...shares));
      out.target_met = matching.length > 0 && Math.min(...matching) <= TARGET;
      out.reference = reference;
      out.selected = Object.fromEntries(Object.entries(selected).map(([f, r]) => [f, share(r, reference!)]));
      if (CONTROL) out.control = Object.fromEntries(Object.entries(control).map(([f, r]) => [f, share(r, reference!)]));
      if (Object.keys(bounds).length) out.bounds = Object.fromEntries(Object.entries(bounds).map(([k, r]) => [k, share(r, reference!)]));
    }
    if (error) {
      const lines = (error as Error).message.split('\n').map((l) => l.trim()).filter(Boolean);
      out.error = lines.length > 1 ? `${lines[0]} ${lines.at(-1)}` : lines[0] ?? String(error);
    }
    out.seconds = Math.round((Date.now() - t0) / 1000);
    process.stdout.write(JSON.stringify(out) + '\n');
    return error ? 1 : 0;
  };

  try {
    if (flag('fresh')) fs.rmSync(ROOT, { recursive: true, force: true });
    fs.mkdirSync(ROOT, { recursive: true });
    const pool = excerpts(POOL);
    const input = path.join(ROOT, 'pool.jsonl');
    fs.writeFileSync(input, pool.map((r) => JSON.stringify(r)).join('\n') + '\n');
    // excerpts(n / 4) are the pool's every 4th excerpt (same spread over the same chunks)
    const refRows = excerpts(Math.floor(POOL / REF_EVERY));
    const budget = refRows.reduce((s, r) => s + approxTokens(r.text), 0); // B: estimated, as --budget-tokens counts
    out.budget_tokens = budget;
    await initBackend({});
    const texts = heldOut(TEXT_BYTES);
    const score = (ckpt: string) => Object.fromEntries(Object.entries(scoreCheckpoint(ckpt, texts)).map(([t, v]) => [t, r4(v)]));

    return await withTeacher(async (url) => {
      const collectTo = async (out: string, inputFile: string, extra: string[]) => {
        const s = JSON.parse(await run(['collect', '--teacher-url', url, '--model', 'kd-teacher', '--input', inputFile, '--out', out, '--mode', 'score', '--top-k', '20', '--concurrency', '4', '--json', ...extra])) as { stopReason: string };
        if (s.stopReason !== 'complete') throw new Error(`collect into ${out} stopped: ${s.stopReason}`);
        return billed(out);
      };
      let seedNow = 0; // the training seed of the runs being made
      /** build + train (cached by arguments, training sources and the raw files) + score */
      const trainOn = async (name: string, raw: string, steps = STEPS, text = POOL_TEXT): Promise<Record<string, number>> => {
        const dir = path.join(ROOT, text ? `${name}-pooltext` : name);
        const data = path.join(dir, 'data'), ck = path.join(dir, 'run');
        const argv = ['train', '--data', data, '--out', ck, ...studentWith(steps), '--seed', String(seedNow), '--force', '--json'];
        // the dataset is rebuilt every time (seconds): the run's key holds its shards' sha256, so an unchanged
        // collection reuses the run and a new round retrains
        await run(['dataset', 'build', '--from', raw, '--out', data, '--vocab-size', '2048', '--val-fraction', '0.05', '--seed', '0', '--json', '--force', ...(text ? ['--text', input] : [])]);
        await trainCached(argv, ck, { raw: fs.readdirSync(raw).sort(), ...(text ? { text } : {}) });
        const b = score(ck);
        process.stderr.write(`${name}: ${JSON.stringify(b)}\n`);
        return b;
      };

      const q = SPECS.limited!;
      const asQuality = !SMOKE && refRows.length === q.rows && STEPS === Number(STUDENT[STUDENT.indexOf('--steps') + 1]);
      for (const s of SEEDS) {
        seedNow = s;
        const sfx = s === 0 ? '' : `-s${s}`; // seed 0 keeps the single-seed bench's names (and its cached runs)
        // the reference: bench:quality's limited kd run when it is the same thing, else our own
        if (asQuality && POOL_TEXT) {
          // its collection, the rest of the pool as text
          const d = await dataset(q, async () => url, { root: QUALITY, fresh: false });
          referenceBy.push({ ...billed(d.raw), bpb: await trainOn(`reference${sfx}`, d.raw) });
          out.reference_from = d.raw;
        } else if (asQuality) {
          const d = await dataset(q, async () => url, { root: QUALITY, fresh: false });
          const { ck, argv, loss } = qualityRun(QUALITY, d.dir, q.name, 'kd', s);
          await trainCached(argv, ck, { loss });
          referenceBy.push({ ...billed(d.raw), bpb: score(ck) });
          out.reference_from = ck;
        } else {
          const refInput = path.join(ROOT, 'reference.jsonl');
          fs.writeFileSync(refInput, refRows.map((r) => JSON.stringify(r)).join('\n') + '\n');
          const raw = path.join(ROOT, 'reference', 'raw');
          referenceBy.push({ ...(await collectTo(raw, refInput, [])), bpb: await trainOn(`reference${sfx}`, raw) });
        }
        process.stderr.write(`reference${sfx}: ${JSON.stringify(referenceBy.at(-1))}\n`);

        // the scorer: a student trained on a small random seed round (its tokens count towards every selected run)
        const seedRaw = path.join(ROOT, `seed${sfx}`, 'raw');
        const seed = await collectTo(seedRaw, input, ['--budget-tokens', String(Math.round(budget * SEED_SHARE)), '--select', 'random', '--select-seed', '2']);
        if (s === 0) out.seed_tokens = seed.tokens;
        // the scorer: trained on what the seed round bought (--scorer-text: and on the pool's text, full steps)
        await trainOn(`seed${sfx}`, seedRaw, SCORER_TEXT ? STEPS : SCORER_STEPS, SCORER_TEXT);
        const scorer = path.join(ROOT, SCORER_TEXT ? `seed${sfx}-pooltext` : `seed${sfx}`, 'run');

        for (const f of FRACTIONS) {
          const name = `selected-${f}${SCORER_TEXT ? '-ts' : ''}${sfx}`;
          const raw = path.join(ROOT, name, 'raw');
          if (!fs.existsSync(path.join(raw, 'selection.json'))) {
            fs.rmSync(raw, { recursive: true, force: true });
            fs.mkdirSync(path.dirname(raw), { recursive: true });
            execFileSync('cp', ['-r', seedRaw, raw]); // round 1 = the seed round
          }
          const c = await collectTo(raw, input, ['--budget-tokens', String(Math.round(budget * f)), '--select', STRATEGY, '--student', scorer, '--random-share', RANDOM_SHARE]);
          (selectedBy[String(f)] ??= []).push({ ...c, bpb: await trainOn(name, raw) });
          if (CONTROL) {
            const craw = path.join(ROOT, `random-${f}${sfx}`, 'raw');
            const c = await collectTo(craw, input, ['--budget-tokens', String(Math.round(budget * f)), '--select', 'random', '--select-seed', String(1 + 10 * s)]);
            (controlBy[String(f)] ??= []).push({ ...c, bpb: await trainOn(`random-${f}${sfx}`, craw) });
          }
        }
      }
      seedNow = 0;
      if (POOL_TEXT && asQuality && !flag('no-bounds')) {
        // bounds: the whole pool with hard targets only (no teacher tokens) and with every row scored (4 B),
        // bench:quality's "large" case, seed 0
        const L = SPECS.large!;
        if (L.rows === POOL) {
          const d = await dataset(L, async () => url, { root: QUALITY, fresh: false });
          for (const kind of ['hard', 'kd'] as const) {
            const { ck, argv, loss } = qualityRun(QUALITY, d.dir, L.name, kind, 0);
            await trainCached(argv, ck, { loss });
            bounds[kind === 'hard' ? 'pool_hard_only' : 'pool_all_scored'] = { ...(kind === 'hard' ? { tokens: 0, rows: 0 } : billed(d.raw)), bpb: score(ck) };
            process.stderr.write(`bound ${kind}: ${JSON.stringify(bounds)}\n`);
          }
        }
      }
      return finish();
    });
  } catch (e) {
    return finish(e);
  }
}

process.exitCode = await main();
