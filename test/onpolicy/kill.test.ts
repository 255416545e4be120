/**
 * kd onpolicy across real `kill -9`s: the CLI is killed while the teacher scores round 1's samples,
 * then while it scores round 2's (after round 1 trained), and run again with the same arguments.
 * Every sampled sequence must be scored exactly once in --out/raw-onpolicy (nothing lost, nothing
 * twice), no request whose record was on disk at a kill is sent again, and the last run finishes.
 * The teacher is the fault-injecting test server: once `gate` scored answers are out it holds every
 * request, so the kills land mid-scoring without a timing race.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { scanLedger } from '../../src/collect/ledger.js';
import { readRawDir } from '../../src/schema/raw.js';
import { killChildren, startKdChild, until } from '../helpers/killable.js';
import { makeCheckpoint } from '../serve/fixture.js';
import { startTeacherServer, type TeacherServer } from '../collect/teacher-server.js';

let server: TeacherServer | null = null;
afterEach(async () => {
  killChildren();
  await server?.close();
  server = null;
});

const runKd = (args: string[]) => startKdChild(args, { KD_BACKEND: 'cpu' });

let student: string;
beforeAll(async () => {
  student = await makeCheckpoint();
}, 120_000);

describe('kd onpolicy: kill -9 and rerun', () => {
  it('scores every sampled sequence exactly once and finishes', async () => {
    const PROMPTS = 8;
    let gate = 0;
    let ok = 0; // scored answers sent (the probe's requests are always answered and not counted)
    server = await startTeacherServer({
      keepLog: true, latencyMs: 5,
      fault: (c) => {
        if (c.hash.startsWith('probe-')) return null;
        if (ok >= gate) return 'hang';
        ok++;
        return null;
      },
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-onpolicy-kill-'));
    const prompts = path.join(dir, 'prompts.jsonl');
    fs.writeFileSync(prompts, Array.from({ length: PROMPTS }, (_, i) => JSON.stringify({ id: `p${i}`, prompt: `the world ${i}` })).join('\n') + '\n');
    const out = path.join(dir, 'op');
    const rawOn = path.join(out, 'raw-onpolicy');
    const args = ['onpolicy', '--teacher-url', server.url, '--model', 'test-teacher', '--prompts', prompts, '--student', student, '--out', out,
      '--lambda', '1', '--rounds', '2', '--max-new-tokens', '4', '--steps-per-round', '2', '--top-k', '3', '--concurrency', '2', '--workers', '1', '--backend', 'cpu', '--json'];
    const scoredHashes = () => server!.log.filter((l) => !l.hash.startsWith('probe-') && l.status === 200);

    const persistedAtKills: Set<string>[] = [];
    const logMarks: number[] = [];
    // kill 1: 3 of round 1's 8 sequences answered; kill 2: round 1 done and trained, 3 of round 2's answered
    for (const more of [3, -1]) {
      const onDisk = persistedAtKills.at(-1)?.size ?? 0;
      gate = more > 0 ? ok + more : ok + (PROMPTS - onDisk) + 3;
      const run = runKd(args);
      await until(() => ok >= gate || run.child.exitCode !== null, `${gate} scored answers`);
      await new Promise((r) => setTimeout(r, 100)); // let it write some of them (or not: both are fine)
      run.child.kill('SIGKILL');
      const res = await run.exit;
      expect(res.signal, res.stderr).toBe('SIGKILL');
      persistedAtKills.push(scanLedger(rawOn, { repair: false }).done);
      logMarks.push(server.log.length);
    }
    expect(persistedAtKills[0]!.size).toBeLessThan(PROMPTS); // the first kill was inside round 1's scoring
    expect(fs.existsSync(path.join(out, 'round-0', 'done.json'))).toBe(true); // the second after round 1 was done
    expect(fs.existsSync(path.join(out, 'round-1', 'done.json'))).toBe(false);

    gate = Infinity;
    const final = await runKd(args).exit;
    expect(final.code, final.stderr).toBe(0);
    const summary = JSON.parse(final.stdout.trim().split('\n').at(-1)!) as { stopReason: string; rounds: { onRows: number; steps: number }[] };
    expect(summary.stopReason).toBe('complete');
    expect(summary.rounds.map((r) => [r.onRows, r.steps])).toEqual([[PROMPTS, 2], [PROMPTS, 2]]);

    // nothing on disk at a kill was sent after it
    for (const [k, done] of persistedAtKills.entries()) {
      expect(server.log.slice(logMarks[k]).filter((l) => done.has(l.hash))).toEqual([]);
    }
    // every sampled sequence exactly once: no record lost, none twice
    const recs = [...readRawDir(rawOn)];
    const want = [0, 1].flatMap((r) => Array.from({ length: PROMPTS }, (_, i) => `p${i}@r${r}`)).sort();
    expect(recs.map((r) => r.input_id).sort()).toEqual(want);
    expect(new Set(recs.map((r) => r.request_hash)).size).toBe(recs.length);
    // the records are those of the samples on disk (a rerun reuses them, it does not sample anew)
    for (const r of [0, 1]) {
      const samples = fs.readFileSync(path.join(out, `round-${r}`, 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string });
      expect(samples.map((s) => s.id)).toEqual(Array.from({ length: PROMPTS }, (_, i) => `p${i}@r${r}`));
    }
    // a request answered twice was in flight at a kill: at most once more per kill
    const answers = new Map<string, number>();
    for (const l of scoredHashes()) answers.set(l.hash, (answers.get(l.hash) ?? 0) + 1);
    for (const n of answers.values()) expect(n).toBeLessThanOrEqual(3);
    expect(fs.readFileSync(path.join(rawOn, 'manifest.json'), 'utf8')).toMatch(/"status": ?"complete"/);
  }, 180_000);
});
