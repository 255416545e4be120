import { kd as runKd } from '../helpers/kd.js';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolvePruneArgs, resolveQuantizeArgs } from '../../src/cli/compress.js';
import { initBackend } from '../../src/backend/index.js';
import { sha256File } from '../../src/core/hash.js';
import { loadCheckpoint } from '../../src/schema/checkpoint.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { tmpDir, trainedCheckpoint } from '../compress/fixture.js';

const kd = (...args: string[]) => runKd(args);

describe('compress argument parsing', () => {
  it('maps flags to options and rejects unknown choices', () => {
    expect(resolvePruneArgs({ checkpoint: 'a', out: 'b', data: 'synthetic', method: 'heads', sparsity: 0.25, finetuneSteps: 3, importance: 'norm' }))
      .toMatchObject({ method: 'heads', sparsity: 0.25, finetuneSteps: 3, importance: 'norm' });
    expect(() => resolvePruneArgs({ checkpoint: 'a', out: 'b', data: 's', method: 'random', sparsity: 0.5 })).toThrow(/--method random: choose one of magnitude/);
    expect(() => resolvePruneArgs({ checkpoint: 'a', out: 'b', data: 's', method: 'magnitude', sparsity: 0.5, schedule: 'linear' })).toThrow(/--schedule linear/);
    expect(resolveQuantizeArgs({ checkpoint: 'a', out: 'b', scheme: 'per-tensor', bits: 4 })).toMatchObject({ scheme: 'per-tensor', bits: 4 });
    expect(() => resolveQuantizeArgs({ checkpoint: 'a', out: 'b', scheme: 'per-row' })).toThrow(/--scheme per-row/);
  });
});

describe('kd prune / quantize / export (CLI)', () => {
  let ckpt: string;
  let withTok: string;
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
    ckpt = await trainedCheckpoint(20);
    withTok = await trainedCheckpoint(2, { tokenizer: Tokenizer.bytes().toJSON() });
  });

  it('--help lists the commands and their flags', () => {
    const r = kd('--help');
    expect(r.stdout).toMatch(/kd prune/);
    expect(r.stdout).toMatch(/kd quantize/);
    expect(r.stdout).toMatch(/kd export/);
    expect(kd('prune', '--help').stdout).toMatch(/--finetune-steps/);
  });

  it('prune → quantize → export with --json', () => {
    const dir = tmpDir();
    const p = kd('prune', '--checkpoint', ckpt, '--out', path.join(dir, 'p'), '--data', 'synthetic', '--method', 'magnitude', '--sparsity', '0.5',
      '--finetune-steps', '2', '--workers', '1', '--backend', 'cpu', '--json');
    expect(p.stderr).toBe('');
    expect(p.status).toBe(0);
    expect(JSON.parse(p.stdout)).toMatchObject({ method: 'magnitude', sparsity: 0.5, finetuneSteps: 2 });
    const q = kd('quantize', '--checkpoint', path.join(dir, 'p'), '--out', path.join(dir, 'q'), '--data', 'synthetic', '--backend', 'cpu');
    expect(q.status).toBe(0);
    expect(q.stdout).toMatch(/validation KL to the teacher: [\d.]+ → [\d.]+/);
    const e = kd('export', '--checkpoint', path.join(dir, 'q'), '--out', path.join(dir, 'e'), '--backend', 'cpu', '--json');
    expect(e.status).toBe(0);
    expect(JSON.parse(e.stdout)).toMatchObject({ quantized: true });
    expect(fs.existsSync(path.join(dir, 'e', 'model.json'))).toBe(true);
  });

  it('kd train --init-from a magnitude-pruned checkpoint keeps its zeros, and so does --resume of that run', () => {
    const dir = tmpDir();
    const p = path.join(dir, 'p'), t = path.join(dir, 't');
    let r = kd('prune', '--checkpoint', ckpt, '--out', p, '--data', 'synthetic', '--method', 'magnitude', '--sparsity', '0.5', '--backend', 'cpu', '--json');
    expect(r.status, r.stderr).toBe(0);
    const zerosAt = (file: string) => {
      const c = loadCheckpoint(file);
      const at = new Set<string>();
      for (const [name, a] of c.arrays) if (/^h\d+\.(attn|mlp)\./.test(name) && a.data instanceof Float32Array) a.data.forEach((x, i) => { if (x === 0) at.add(`${name}:${i}`); });
      return { at, history: c.header.meta?.compress };
    };
    const pruned = zerosAt(p);
    expect(pruned.at.size).toBeGreaterThan(1000);
    const train = ['--data', 'synthetic', '--vocab-size', '64', '--seq-len', '16', '--batch-size', '4', '--top-k', '6', '--lr', '1e-2', '--workers', '1', '--backend', 'cpu'];
    r = kd('train', '--init-from', p, '--out', t, '--steps', '2', ...train);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/magnitude-pruned: its [\d,]+ zero weights stay zero/);
    const after = zerosAt(path.join(t, 'checkpoint.kdc'));
    expect([...pruned.at].every((k) => after.at.has(k))).toBe(true); // every pruned weight still exactly 0
    expect(after.at.size).toBe(pruned.at.size); // and nothing else became 0
    expect(after.history).toEqual(pruned.history); // the checkpoint still says how it was compressed
    // the same command with --resume for --init-from (no architecture flags: the run's checkpoint has it)
    r = kd('train', '--out', t, '--resume', '--steps', '4', ...train);
    expect(r.status, r.stderr).toBe(0);
    expect(loadCheckpoint(path.join(t, 'checkpoint.kdc')).header).toMatchObject({ state: { step: 4 }, meta: { initFrom: expect.stringContaining(p) } });
    expect(zerosAt(path.join(t, 'checkpoint.kdc')).at).toEqual(pruned.at);
    // the same start without the pruning record: trained as a dense model (its zeros move)
    const plain = path.join(dir, 'plain');
    r = kd('train', '--init-from', ckpt, '--out', plain, '--steps', '2', ...train);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/magnitude-pruned/);
  });

  it('bad input: one clear line, exit 1, the input checkpoint untouched', () => {
    const dir = tmpDir();
    const before = [sha256File(ckpt), sha256File(withTok)];
    const cases: [string[], RegExp][] = [
      [['prune', '--checkpoint', ckpt, '--out', path.join(dir, 'a'), '--data', 'synthetic', '--method', 'magnitude', '--sparsity', '1'], /--sparsity 1: must be in \[0, 1\)/],
      [['prune', '--checkpoint', ckpt, '--out', path.join(dir, 'a'), '--data', 'synthetic', '--method', 'heads', '--sparsity', '-0.5'], /--sparsity -0.5/],
      [['quantize', '--checkpoint', ckpt, '--out', path.join(dir, 'b'), '--bits', '2'], /--bits 2: only 8 and 4 bits/],
      [['quantize', '--checkpoint', path.join(dir, 'missing.kdc'), '--out', path.join(dir, 'c')], /missing.kdc: no such checkpoint/],
      [['export', '--checkpoint', path.join(dir, 'missing'), '--out', path.join(dir, 'd')], /no such checkpoint/],
      [['prune', '--checkpoint', withTok, '--out', path.join(dir, 'e'), '--data', 'synthetic', '--method', 'neurons', '--sparsity', '0.5'], /--data synthetic has no tokenizer but .* was trained with tokenizer/],
      [['quantize', '--checkpoint', ckpt, '--out', ckpt], /input is never modified/],
    ];
    for (const [args, msg] of cases) {
      const r = kd(...args, '--backend', 'cpu');
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
    }
    expect([sha256File(ckpt), sha256File(withTok)]).toEqual(before);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
