import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockFileOf, lockOutput } from '../src/core/lock.js';
import { KD_ARGS, ROOT, kd } from './helpers/kd.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kd-lock-'));

/** The pid of a process that has exited (so certainly dead). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

async function waitFor(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('output locks', () => {
  it('a second lock on the same output is refused with one line naming the holder; release frees it', () => {
    const out = path.join(tmp(), 'run');
    const a = lockOutput(out, 'kd train');
    expect(fs.existsSync(lockFileOf(out))).toBe(true);
    expect(fs.existsSync(out)).toBe(false); // the output itself is not created by locking
    expect(() => lockOutput(out, 'kd train')).toThrow(new RegExp(`is in use by kd train \\(pid ${process.pid} on `));
    a.release();
    expect(fs.existsSync(lockFileOf(out))).toBe(false);
    lockOutput(out, 'kd train').release();
  });

  it('a stale lock (its pid is dead on this host) or an unreadable one is taken over', () => {
    const out = path.join(tmp(), 'run');
    fs.writeFileSync(lockFileOf(out), JSON.stringify({ pid: deadPid(), hostname: os.hostname(), command: 'kd train', startedAt: 'then' }));
    const l = lockOutput(out, 'kd train');
    expect(JSON.parse(fs.readFileSync(l.file, 'utf8')).pid).toBe(process.pid);
    l.release();
    fs.writeFileSync(lockFileOf(out), '{"pid":');
    lockOutput(out, 'kd train').release();
    expect(fs.readdirSync(path.dirname(out))).toEqual([]); // no temporaries left beside it
  });

  it('a lock from a live pid or another host is not stale', () => {
    const out = path.join(tmp(), 'run');
    fs.writeFileSync(lockFileOf(out), JSON.stringify({ pid: deadPid(), hostname: 'elsewhere.example', command: 'kd collect', startedAt: 'then' }));
    expect(() => lockOutput(out, 'kd train')).toThrow(/in use by kd collect \(pid \d+ on elsewhere\.example.*remove .*run\.kd-lock/);
  });

  it('two kd train on one --out: the second stops with a lock error, the first finishes alone', async () => {
    const out = path.join(tmp(), 'run');
    const args = ['train', '--data', 'synthetic', '--out', out, '--steps', '1000000', '--vocab-size', '64', '--d-model', '8', '--heads', '2', '--layers', '1',
      '--seq-len', '8', '--batch-size', '2', '--workers', '1', '--backend', 'cpu', '--log-every', '1', '--eval-every', '0', '--json'];
    const first = spawn(process.execPath, [...KD_ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    first.stdout.on('data', (d) => { stdout += d; });
    const exited = new Promise<number | null>((r) => first.on('exit', (c) => r(c)));
    try {
      await waitFor(() => stdout.includes('"event":"log"'), 'the first train to start stepping');
      const second = kd(args);
      expect(second.status).toBe(1);
      expect(second.stderr.trim().split('\n')).toHaveLength(1);
      expect(second.stderr).toMatch(new RegExp(`kd: .*run is in use by kd train \\(pid ${first.pid} on `));
    } finally {
      first.kill('SIGINT'); // stops at the next step after a checkpoint
    }
    expect(await exited).toBe(130);
    expect(fs.existsSync(lockFileOf(out))).toBe(false);
    const steps = fs.readFileSync(path.join(out, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step as number);
    expect(steps).toEqual(steps.map((_, i) => i + 1)); // one run's log, not two interleaved
  });
});
