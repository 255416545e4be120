/**
 * The exactly-once property across real `kill -9`s: a collector child process is killed twice
 * mid-run and restarted with the same command. Every input row must end up exactly once in the
 * shards or in rejects.jsonl, and no request whose record was on disk at a kill is sent again.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { scanLedger } from '../../src/collect/ledger.js';
import { readRawDir } from '../../src/schema/raw.js';
import { killChildren, startKdChild, until } from '../helpers/killable.js';
import { startTeacherServer, type TeacherServer } from './teacher-server.js';

let server: TeacherServer | null = null;
afterEach(async () => {
  killChildren();
  await server?.close();
  server = null;
});

const runCollector = (args: string[]) => startKdChild(['collect', ...args]);

describe('kill -9 and restart', () => {
  it('loses no row, duplicates no row, and never resends a completed request', async () => {
    // 20% of first attempts fail with 503 so retries are in flight at the kills too. Once `gate`
    // answers are out, the server holds every request (no timing race with the kill).
    let gate = 0;
    let ok = 0;
    server = await startTeacherServer({
      latencyMs: 8,
      fault: (c) => {
        if (ok >= gate) return 'hang';
        if (c.attempt === 1 && c.seq % 5 === 0) return '503';
        ok++;
        return null;
      },
    });
    const dir = mkdtempSync(join(tmpdir(), 'kd-kill-'));
    const rows = Array.from({ length: 160 }, (_, i) => (i % 40 === 39 ? { id: `r${i}`, prompt: '' } : { id: `r${i}`, prompt: `Tell me about ${i}` }));
    const input = join(dir, 'in.jsonl');
    writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(dir, 'raw');
    const args = ['--teacher-url', server.url, '--model', 'test-teacher', '--input', input, '--out', out, '--top-k', '5', '--concurrency', '6', '--json'];

    const persistedAtKills: Set<string>[] = [];
    const logMarks: number[] = [];
    for (const killAt of [40, 100]) {
      gate = killAt;
      const run = runCollector(args);
      const delivered = () => [...server!.answered.values()].reduce((a, b) => a + b, 0);
      await until(() => delivered() >= killAt || run.child.exitCode !== null, `${killAt} answers`);
      await new Promise((r) => setTimeout(r, 50)); // let the collector write some of them (or not: both are fine)
      run.child.kill('SIGKILL');
      const res = await run.exit;
      expect(res.signal).toBe('SIGKILL');
      // what is on disk now is what "completed" means; read without repairing
      persistedAtKills.push(scanLedger(out, { repair: false }).done);
      logMarks.push(server.log.length);
    }
    expect(persistedAtKills[0]!.size).toBeGreaterThan(0);
    expect(persistedAtKills[0]!.size).toBeLessThan(160);

    gate = Infinity;
    const final = runCollector(args);
    const res = await final.exit;
    expect(res.stderr).not.toMatch(/internal error/);
    expect(res.code).toBe(0);
    const summary = JSON.parse(res.stdout.trim().split('\n').at(-1)!);
    expect(summary.stopReason).toBe('complete');
    expect(summary.pending).toBe(0);

    // no request on disk at a kill was sent after that kill
    for (const [k, done] of persistedAtKills.entries()) {
      const later = server.log.slice(logMarks[k]).map((l) => l.hash);
      expect(later.filter((h) => done.has(h))).toEqual([]);
    }
    // every row exactly once, over records and rejects
    const ids = new Map<string, number>();
    const hashes = new Map<string, number>();
    for (const r of readRawDir(out)) {
      ids.set(r.input_id, (ids.get(r.input_id) ?? 0) + 1);
      hashes.set(r.request_hash, (hashes.get(r.request_hash) ?? 0) + 1);
    }
    const rejects = readFileSync(join(out, 'rejects.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; reason: string; request_hash: string });
    for (const r of rejects) {
      ids.set(r.id, (ids.get(r.id) ?? 0) + 1);
      hashes.set(r.request_hash, (hashes.get(r.request_hash) ?? 0) + 1);
    }
    expect(rejects.map((r) => r.reason)).toEqual(Array(4).fill('empty_prompt'));
    expect([...ids.keys()].sort()).toEqual(rows.map((r) => r.id).sort());
    expect([...ids.values()].every((n) => n === 1)).toBe(true);
    expect([...hashes.values()].every((n) => n === 1)).toBe(true);
    // a request answered twice by the server was in flight at a kill: at most once per kill
    for (const n of server.answered.values()) expect(n).toBeLessThanOrEqual(3);
    // the manifest of the finished run is complete
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ status: 'complete', counts: { records: 156, rejects: 4, pending: 0 } });
    // the killed runs show as never finished
    expect(manifest.runs.map((r: { stop_reason: string }) => r.stop_reason)).toEqual(['running', 'running', 'complete']);
  });
});
