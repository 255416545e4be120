import { kd as runKd } from '../helpers/kd.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TRAIN } from '../../src/train/config.js';
import { defaultWorkers } from '../../src/train/config.js';

const kd = (...args: string[]) => runKd(args);

describe('kd CLI', () => {
  it('--help lists the commands', () => {
    const r = kd('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/kd train/);
    expect(r.stdout).toMatch(/kd doctor/);
  });

  it('doctor --json reports the backend chosen and why the others were not', () => {
    const r = kd('doctor', '--json');
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    // whatever this machine has: the attempts in order of preference, failures with their reason, then the one chosen
    const attempts = info.attempts as { name: string; ok: boolean; reason: string }[];
    expect(attempts.at(-1)).toMatchObject({ name: info.backend, ok: true });
    for (const a of attempts.slice(0, -1)) expect(a).toMatchObject({ ok: false, reason: expect.stringMatching(/\S/) });
    expect(['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).toContain(info.backend);
    expect(info.tfjsVersion).toMatch(/^4\./);
    if (info.backend === 'wasm') expect(info.matmul).toMatch(/^kd native \((avx512|avx2|generic)\)$|^XNNPACK/);
  });

  it('doctor shows the workers kd train runs by default beside the kernels\' threads', () => {
    const r = kd('doctor', '--backend', 'cpu');
    expect(r.status).toBe(0);
    const want = defaultWorkers('cpu', DEFAULT_TRAIN.batchSize);
    expect(r.stdout).toMatch(/^threads +\d+ per kernel \(of \d+ cores\)$/m);
    expect(r.stdout).toMatch(new RegExp(`^workers +${want} for kd train and prune: data-parallel`, 'm'));
    expect(JSON.parse(kd('doctor', '--backend', 'cpu', '--json').stdout).trainWorkers).toBe(want);
  });

  it('doctor says when the native kernels are turned off, and what runs instead', () => {
    const r = runKd(['doctor'], { env: { ...process.env, KD_NATIVE: '0' } });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^matmul +XNNPACK; kd native matmul disabled by KD_NATIVE$/m);
  });

  it('bad input gives one clear line and a non-zero exit, no stack trace', () => {
    for (const args of [['doctor', '--backend', 'tpu'], ['train', '--data', 'synthetic', '--out', '/tmp/kd-x', '--heads', '3', '--d-model', '32']]) {
      const r = kd(...args);
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^kd: /);
      expect(r.stderr).not.toMatch(/\s+at /);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-cli-'));
    fs.mkdirSync(path.join(dir, 'run'));
    fs.writeFileSync(path.join(dir, 'run', 'checkpoint.kdc'), 'garbage');
    const r = kd('train', '--data', 'synthetic', '--out', path.join(dir, 'run'), '--resume', '--backend', 'cpu');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/kd: .*checkpoint.kdc: not a valid kd checkpoint/);
  });

  it('trains a tiny student end to end with --json lines', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-cli-'));
    const r = kd('train', '--data', 'synthetic', '--out', path.join(dir, 'run'), '--steps', '4', '--log-every', '2', '--eval-every', '4',
      '--vocab-size', '64', '--d-model', '16', '--heads', '2', '--layers', '1', '--seq-len', '8', '--batch-size', '2', '--json', '--backend', 'wasm');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.event)).toEqual(['log', 'log', 'summary']);
    expect(lines[2]).toMatchObject({ steps: 4, backend: 'wasm' });
    expect(fs.existsSync(path.join(dir, 'run', 'checkpoint.kdc'))).toBe(true);
  });
});
