import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { sha256File } from '../../src/core/hash.js';
import { channelAxis, dequantizeArray, quantizeArray } from '../../src/model/int8.js';
import { quantize } from '../../src/compress/quantize.js';
import { disposeModel } from '../../src/model/gpt.js';
import { loadModel } from '../../src/model/load.js';
import { loadCheckpoint } from '../../src/schema/checkpoint.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { tmpDir, trainedCheckpoint } from './fixture.js';

describe('int8 arithmetic', () => {
  const w = Float32Array.from([0.5, -1, 0, 0.25, 2, -0.02]); // [2, 3]
  it('per output channel (last axis): q·scale within half a step, zeros exact', () => {
    const r = quantizeArray(w, [2, 3], { bits: 8, scheme: 'per-channel', axis: 1 });
    expect(r.axis).toBe(1);
    expect([...r.scales]).toEqual([0.5 / 127, 2 / 127, 0.02 / 127].map(Math.fround));
    expect([...r.q]).toEqual([127, -64, 0, 64, 127, -127]);
    const d = dequantizeArray(r.q, [2, 3], r.scales, r.axis);
    w.forEach((x, i) => expect(Math.abs(d[i] - x)).toBeLessThanOrEqual(r.scales[i % 3] / 2 + 1e-9));
    expect(d[2]).toBe(0);
  });
  it('per row for embeddings, per tensor on request, 4-bit range in int8 containers', () => {
    expect(channelAxis('wte', [10, 4])).toBe(0);
    expect(channelAxis('h0.mlp.fc', [4, 16])).toBe(1);
    const rows = quantizeArray(w, [2, 3], { bits: 8, scheme: 'per-channel', axis: 0 });
    expect([...rows.scales]).toEqual([1 / 127, 2 / 127].map(Math.fround));
    const t = quantizeArray(w, [2, 3], { bits: 8, scheme: 'per-tensor', axis: 1 });
    expect(t.scales).toHaveLength(1);
    expect(t.axis).toBeUndefined();
    const q4 = quantizeArray(w, [2, 3], { bits: 4, scheme: 'per-tensor', axis: 1 });
    expect(Math.max(...q4.q.map(Math.abs))).toBe(7);
    expect(() => quantizeArray(w, [2, 3], { bits: 3, scheme: 'per-tensor', axis: 1 })).toThrow(/only 8 and 4 bits/);
  });
});

describe('kd quantize', () => {
  let ckpt: string;
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
    ckpt = await trainedCheckpoint(60);
  });

  it('int8 per channel: ~¼ of the float32 size, small KL change, int8 + scales on disk, dequantized on load', async () => {
    const hash = sha256File(ckpt);
    const out = path.join(tmpDir(), 'int8');
    const s = await quantize({ checkpoint: ckpt, out, data: 'synthetic' });
    expect(sha256File(ckpt)).toBe(hash);
    expect(s.weightBytesAfter / s.weightBytesBefore).toBeLessThan(0.3);
    expect(s.sizeRatio).toBeLessThan(0.45); // tiny model: the JSON header is a large share
    expect(Math.abs(s.valKlRelChange!)).toBeLessThan(0.05);
    const { header, arrays } = loadCheckpoint(out);
    expect(header.state).toBeUndefined();
    const wte = arrays.get('wte')!;
    expect(wte.dtype).toBe('int8');
    expect(wte.axis).toBe(0);
    expect(wte.scales).toHaveLength(64);
    expect(arrays.get('h0.attn.qkv')!.axis).toBe(1);
    expect(arrays.get('h0.ln1.g')!.dtype).toBe('float32');
    const { model } = loadModel(out);
    const w = model.params.get('h0.mlp.fc')!.dataSync();
    const a = arrays.get('h0.mlp.fc')!;
    expect(w[5]).toBe(Math.fround((a.data[5] as number) * a.scales![5 % a.shape[1]]));
    disposeModel(model);
    const { model: orig } = loadModel(ckpt);
    const o = orig.params.get('h0.mlp.fc')!.dataSync();
    for (let i = 0; i < o.length; i++) expect(Math.abs(o[i] - w[i])).toBeLessThanOrEqual(s.maxAbsError);
    expect(s.maxAbsError).toBeLessThan(0.05);
    disposeModel(orig);
  });

  it('rejects other bit widths, a tokenizer other than the data\'s, missing files and an existing --out', async () => {
    const dir = tmpDir();
    await expect(quantize({ checkpoint: ckpt, out: path.join(dir, 'a'), bits: 3 })).rejects.toThrow(/--bits 3: only 8 and 4/);
    await expect(quantize({ checkpoint: path.join(dir, 'missing'), out: path.join(dir, 'b') })).rejects.toThrow(/no such checkpoint/);
    const withTok = await trainedCheckpoint(2, { tokenizer: Tokenizer.bytes().toJSON() });
    const hash = sha256File(withTok);
    await expect(quantize({ checkpoint: withTok, out: path.join(dir, 'c'), data: 'synthetic' })).rejects.toThrow(/has no tokenizer but .* was trained with tokenizer/);
    expect(sha256File(withTok)).toBe(hash);
    expect(fs.existsSync(path.join(dir, 'c', 'checkpoint.kdc'))).toBe(false);
    await quantize({ checkpoint: ckpt, out: path.join(dir, 'd'), bits: 4, scheme: 'per-tensor' });
    await expect(quantize({ checkpoint: ckpt, out: path.join(dir, 'd') })).rejects.toThrow(/pass --force/);
    await quantize({ checkpoint: ckpt, out: path.join(dir, 'd'), force: true });
  });
});
