/** `kd prune` stopped by Ctrl-C / SIGTERM: a checkpoint of its fine-tuning, exit 130, and --resume to go on. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { KD_ARGS, ROOT, kd } from '../helpers/kd.js';
import { waitFor } from '../helpers/wait.js';
import { tmpDir, trainedCheckpoint } from './fixture.js';

let ckpt: string;
beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  ckpt = await trainedCheckpoint(20);
});

describe.each(['SIGINT', 'SIGTERM'] as const)('kd prune, %s while fine-tuning', (signal) => {
  it('checkpoints the stage, says how to continue, exits 130; a rerun without --resume refuses to discard it', async () => {
    const out = path.join(tmpDir(), 'p');
    const args = ['prune', '--checkpoint', ckpt, '--out', out, '--data', 'synthetic', '--method', 'magnitude', '--sparsity', '0.5', '--finetune-steps', '100000', '--workers', '1'];
    const child = spawn(process.execPath, [...KD_ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KD_BACKEND: 'cpu' } });
    let stdout = '', stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    // the stage's directory appears when its fine-tuning starts; give it a few steps
    expect(await waitFor(() => fs.existsSync(path.join(out, 'prune-work', 'stage-1')), 60_000), stderr).toBe(true);
    await new Promise((r) => setTimeout(r, 1000));
    child.kill(signal);
    expect(await exited, stderr).toBe(130);
    expect(stderr).toMatch(/stopped in fine-tuning stage 1 of 1 at step \d+ of 100000 .*run the same command with --resume to continue/);
    expect(stdout).toBe(''); // no summary: nothing was written
    expect(fs.existsSync(path.join(out, 'prune-work', 'stage-1', 'checkpoint.kdc'))).toBe(true);
    expect(fs.existsSync(path.join(out, 'checkpoint.kdc'))).toBe(false);
    const again = kd(args, { env: { KD_BACKEND: 'cpu' } });
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/holds an interrupted prune: pass --resume to continue it, or --force to start over/);
    expect(again.stderr).not.toMatch(/\n\s+at /); // one line, no stack
  }, 120_000);
});
