import { kd as runKd } from '../helpers/kd.js';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildOptionsFromArgs } from '../../src/cli/dataset.js';
import { builtDataset } from './fixtures.js';

const root = path.resolve(__dirname, '../..');
const kd = (...args: string[]) => runKd(args);

describe('kd dataset CLI', () => {
  it('maps flags to build options', () => {
    expect(buildOptionsFromArgs({ from: 'r', out: 'o', vocabSize: 4096, valFraction: 0.1, seed: 2, shardMb: 0.5, force: true }))
      .toEqual({ from: 'r', out: 'o', vocabSize: 4096, valFraction: 0.1, seed: 2, shardBytes: 524288, force: true });
    expect(() => buildOptionsFromArgs({ from: 'r', out: 'o', shardMb: 0 })).toThrow(/--shard-mb must be > 0/);
  });

  it('build → inspect → train, with --json', () => {
    const fx = builtDataset({ texts: 16 });
    let r = kd('dataset', 'build', '--from', fx.raw, '--out', fx.out, '--vocab-size', '300', '--val-fraction', '0.25', '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const b = JSON.parse(r.stdout);
    expect(b.vocabSize).toBe(300);
    expect(b.topK).toBeGreaterThan(1); // ≤ 20: alternatives that project onto one student id merge
    expect(b.topK).toBeLessThanOrEqual(20);
    expect(b.bytesPerLabelled).toBeLessThanOrEqual(b.targetBytesPerLabelled);

    r = kd('dataset', 'build', '--from', fx.raw, '--out', fx.out);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/already exists .* pass --force/);

    r = kd('dataset', 'inspect', fx.out);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/bytes per labelled token/);
    expect(r.stdout).toMatch(/^train\s+\d+/m);
    r = kd('dataset', 'inspect', fx.out, '--json');
    const ins = JSON.parse(r.stdout);
    expect(ins.splits.train.tokens).toBe(b.splits.train.tokens);
    expect(ins.splits.val.labelled).toBe(b.splits.val.labelled);

    r = kd('train', '--data', fx.out, '--out', path.join(fx.root, 'run'), '--steps', '2', '--log-every', '1', '--eval-every', '2', '--eval-batches', '1',
      '--d-model', '16', '--heads', '2', '--layers', '1', '--seq-len', '32', '--batch-size', '4', '--json', '--backend', 'cpu', '--workers', '1');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ event: 'summary', steps: 2 });
    expect(lines.at(-1).valLoss).toBeGreaterThan(0);

    r = kd('train', '--data', fx.out, '--out', path.join(fx.root, 'run2'), '--vocab-size', '999', '--steps', '1');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^kd: bad-config: --vocab-size 999 does not match .*\(300 ids\)/);
  });
});
