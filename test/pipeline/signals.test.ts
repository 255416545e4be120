/** `kd run` killed: its service and the stage it runs must not outlive it. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { KD_ARGS, ROOT } from '../helpers/kd.js';
import { waitFor } from '../helpers/wait.js';
import { makeCheckpoint } from '../serve/fixture.js';

let checkpoint: string;
beforeAll(async () => {
  checkpoint = await makeCheckpoint();
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const childrenOf = (pid: number) => spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).stdout.split('\n').map(Number).filter((n) => n > 0);

/** A pipeline whose collect stage keeps its service busy for minutes. */
function startRun(): { run: ChildProcess; stderr: () => string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-sig-'));
  fs.writeFileSync(path.join(dir, 'prompts.csv'), 'prompt\n' + Array.from({ length: 5000 }, (_, i) => `say something about ${i}`).join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'p.yaml'), `version: 1
name: sig
services:
  t: { serve: { checkpoint: ${checkpoint}, model_name: tiny } }
stages:
  - name: collect
    stage: collect
    with: { teacher_url: "\${services.t.url}", model: tiny, input: ${dir}/prompts.csv, max_tokens: 16, concurrency: 1, top_k: 4, out: ${dir}/raw }
`);
  const run = spawn(process.execPath, [...KD_ARGS, 'run', path.join(dir, 'p.yaml')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KD_BACKEND: 'cpu' } });
  let stderr = '';
  run.stderr!.on('data', (d) => { stderr += d; });
  return { run, stderr: () => stderr, dir };
}

async function started(run: ChildProcess, stderr: () => string, dir: string): Promise<{ service: number; stage: number }> {
  expect(await waitFor(() => /▶ collect/.test(stderr()), 90_000), stderr()).toBe(true);
  const service = Number(/service t: .* \(pid (\d+)\)/.exec(stderr())![1]);
  let stage = 0;
  expect(await waitFor(() => (stage = childrenOf(run.pid!).find((p) => p !== service) ?? 0) > 0, 30_000)).toBe(true);
  expect(await waitFor(() => fs.existsSync(path.join(dir, 'raw', 'manifest.json')), 60_000), stderr()).toBe(true); // collecting
  return { service, stage };
}

describe('kd run stopped from outside', () => {
  it('SIGKILL of kd run: the service and the collect child notice and exit, without an EPIPE stack', async () => {
    const { run, stderr, dir } = startRun();
    const { service, stage } = await started(run, stderr, dir);
    expect(alive(service) && alive(stage)).toBe(true);
    run.kill('SIGKILL');
    const gone = await waitFor(() => !alive(service) && !alive(stage), 30_000);
    for (const p of [service, stage]) if (alive(p)) process.kill(p, 'SIGKILL');
    expect(gone, stderr()).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(stderr()).not.toMatch(/EPIPE|internal error|\n\s+at /);
  });

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig} to kd run stops the stage and the service, then kd run exits`, async () => {
      const { run, stderr, dir } = startRun();
      const { service, stage } = await started(run, stderr, dir);
      const exited = new Promise<number | null>((r) => run.on('exit', (c) => r(c)));
      run.kill(sig);
      const bound = new Promise<'running'>((r) => setTimeout(() => r('running'), 60_000).unref());
      const code = await Promise.race([exited, bound]);
      if (code === 'running') run.kill('SIGKILL');
      expect(code, stderr()).toBe(sig === 'SIGINT' ? 130 : 143);
      expect(alive(service) || alive(stage)).toBe(false);
      expect(stderr()).not.toMatch(/EPIPE|internal error|\n\s+at /);
      // the collection stopped cleanly: what it wrote is resumable
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'raw', 'manifest.json'), 'utf8')).status).not.toBe('running');
    });
  }
});
