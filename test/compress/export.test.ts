import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.js';
import { exportModel } from '../../src/compress/export.js';
import { prune } from '../../src/compress/prune.js';
import { quantize } from '../../src/compress/quantize.js';
import { disposeModel, forwardLogits } from '../../src/model/gpt.js';
import { loadModel } from '../../src/model/load.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { loadExport } from './export-load.js';
import { tmpDir, trainedCheckpoint } from './fixture.js';

/** Same ids through kd's forwardLogits and through the exported graph in plain tfjs. */
async function compare(ckpt: string, dir: string, ids: number[][]): Promise<number> {
  const { model } = loadModel(ckpt);
  const shape: [number, number] = [ids.length, ids[0].length];
  const x = tf.tensor2d(ids, shape, 'int32');
  const want = forwardLogits(model, x);
  const g = await loadExport(dir);
  const got = g.predict(x) as tf.Tensor;
  expect(got.shape).toEqual(want.shape);
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]);
  tf.dispose([x, want, got]);
  g.dispose();
  disposeModel(model);
  expect(Number.isFinite(diff)).toBe(true);
  return diff;
}

const IDS = [[1, 5, 9, 63, 0, 12, 7], [3, 3, 3, 40, 41, 42, 2]];
const TOL = 1e-4; // float32, same backend: only summation order differs (q/k/v as three matmuls)

describe('kd export (plain tfjs GraphModel, Node)', () => {
  let ckpt: string;
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
    ckpt = await trainedCheckpoint(30, { tokenizer: Tokenizer.bytes().toJSON() });
  });

  it('float32: same logits as kd within 1e-4, for any batch and length', async () => {
    const out = path.join(tmpDir(), 'fp32');
    const s = exportModel({ checkpoint: ckpt, out });
    expect(s.quantized).toBe(false);
    expect(fs.readdirSync(out).sort()).toEqual(['README.md', 'group1-shard1of1.bin', 'index.html', 'kd-student.js', 'manifest.json', 'model.json', 'tf.fesm.min.js', 'tokenizer.json']);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8')).format).toBe('kd-tokenizer');
    expect(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'))).toMatchObject({ format: 'kd-export', input: { name: 'ids' }, output: { name: 'logits' } });
    expect(await compare(ckpt, out, IDS)).toBeLessThan(TOL);
    expect(await compare(ckpt, out, [[4, 2]])).toBeLessThan(TOL);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
    expect(json.format).toBe('graph-model');
    expect(new Set(json.modelTopology.node.map((n: { op: string }) => n.op))).toContain('BatchMatMulV2');
    expect(() => exportModel({ checkpoint: ckpt, out })).toThrow(/pass --force/);
  });

  it('int8 per channel and per tensor: int8 in the shards (≈¼ the bytes), logits equal to the dequantized checkpoint\'s', async () => {
    const dir = tmpDir();
    const fp32 = exportModel({ checkpoint: ckpt, out: path.join(dir, 'fp32') });
    for (const scheme of ['per-channel', 'per-tensor'] as const) {
      const q = await quantize({ checkpoint: ckpt, out: path.join(dir, `q-${scheme}`), scheme });
      const s = exportModel({ checkpoint: q.checkpoint, out: path.join(dir, `e-${scheme}`) });
      expect(s.quantized).toBe(true);
      expect(s.weightBytes / fp32.weightBytes).toBeLessThan(0.3);
      expect(await compare(q.checkpoint, path.join(dir, `e-${scheme}`), IDS)).toBeLessThan(TOL);
    }
  });

  it('a structurally pruned student (fewer heads and neurons per block) exports and matches', async () => {
    const dir = tmpDir();
    const plain = await trainedCheckpoint(5);
    const pr = await prune({ checkpoint: plain, out: path.join(dir, 'p2'), data: 'synthetic', method: 'structured', sparsity: 0.5, importance: 'norm' });
    exportModel({ checkpoint: pr.checkpoint, out: path.join(dir, 'e') });
    expect(await compare(pr.checkpoint, path.join(dir, 'e'), IDS)).toBeLessThan(TOL);
  });
});
