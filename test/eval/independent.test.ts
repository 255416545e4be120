/**
 * kd eval's numbers against an independent computation: a tiny model's forward pass written out in
 * plain float64 JavaScript from the checkpoint's weights (no tfjs, none of src/eval or src/model),
 * the metrics computed from their definitions on the same validation batches, and bits per byte of a
 * text summed token by token.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { evalStudents } from '../../src/eval/eval.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { loadCheckpoint } from '../../src/schema/checkpoint.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { syntheticTeacher } from '../../src/data/synthetic.js';
import { makeStudents } from './fixtures.js';

const C = resolveModelConfig({ vocabSize: 256, seqLen: 6, dModel: 8, nLayers: 1, nHeads: 2, ffnMult: 2 });

/** erf to ~1e-12 (series / continued fraction), for the exact GELU. */
function erf(x: number): number {
  const s = Math.sign(x), a = Math.abs(x);
  if (a < 2.5) { let sum = a, term = a; for (let n = 1; n < 60; n++) { term *= -a * a / n; sum += term / (2 * n + 1); } return s * 2 / Math.sqrt(Math.PI) * sum; }
  let f = 0; for (let n = 60; n >= 1; n--) f = n / 2 / (a + f);
  return s * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f));
}

/** Log-softmax rows [T][V] of the model on ids, from the named weights. */
function reference(w: Map<string, Float32Array>, ids: number[]): number[][] {
  const { dModel: d, vocabSize: V, nHeads: H, lnEps } = C;
  const hd = d / H, f = C.ffnMult * d, T = ids.length;
  const at = (name: string) => w.get(name)!;
  const ln = (x: number[], g: Float32Array, b: Float32Array) => {
    const mu = x.reduce((a, v) => a + v, 0) / d, va = x.reduce((a, v) => a + (v - mu) ** 2, 0) / d;
    return x.map((v, i) => ((v - mu) / Math.sqrt(va + lnEps)) * g[i] + b[i]);
  };
  const mm = (x: number[], m: Float32Array, cols: number) => Array.from({ length: cols }, (_, j) => x.reduce((a, v, i) => a + v * m[i * cols + j], 0));
  let x = ids.map((id, t) => Array.from({ length: d }, (_, i) => at('wte')[id * d + i] + at('wpe')[t * d + i]));
  const h = x.map((r) => ln(r, at('h0.ln1.g'), at('h0.ln1.b')));
  const qkv = h.map((r) => mm(r, at('h0.attn.qkv'), 3 * d));
  const att = x.map(() => new Array(d).fill(0));
  for (let hh = 0; hh < H; hh++) {
    for (let t = 0; t < T; t++) {
      const sc = Array.from({ length: t + 1 }, (_, u) => { let s = 0; for (let i = 0; i < hd; i++) s += qkv[t][hh * hd + i] * qkv[u][d + hh * hd + i]; return s / Math.sqrt(hd); });
      const m = Math.max(...sc), e = sc.map((s) => Math.exp(s - m)), z = e.reduce((a, b) => a + b, 0);
      for (let i = 0; i < hd; i++) att[t][hh * hd + i] = e.reduce((a, p, u) => a + (p / z) * qkv[u][2 * d + hh * hd + i], 0);
    }
  }
  x = x.map((r, t) => { const p = mm(att[t], at('h0.attn.proj'), d); return r.map((v, i) => v + p[i]); });
  x = x.map((r) => {
    const fc = mm(ln(r, at('h0.ln2.g'), at('h0.ln2.b')), at('h0.mlp.fc'), f).map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
    const o = mm(fc, at('h0.mlp.out'), d);
    return r.map((v, i) => v + o[i]);
  });
  return x.map((r) => {
    const hf = ln(r, at('lnf.g'), at('lnf.b'));
    const logits = Array.from({ length: V }, (_, v) => hf.reduce((a, q, i) => a + q * at('wte')[v * d + i], 0));
    const m = Math.max(...logits), lse = m + Math.log(logits.reduce((a, l) => a + Math.exp(l - m), 0));
    return logits.map((l) => l - lse);
  });
}

beforeAll(async () => { await initBackend({ backend: 'cpu' }); });

describe('kd eval against an independent computation', () => {
  it('KL, agreement, perplexity, accuracy on the validation batches and bits per byte on a text equal a float64 re-computation', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-eval-ref-'));
    const s = await makeStudents(dir, { trainSteps: 0, config: C, tokenizer: Tokenizer.bytes().toJSON() });
    const text = path.join(dir, 'text.txt');
    const TEXT = 'A tiny text, scored byte by byte: é.';
    fs.writeFileSync(text, TEXT);
    const { report } = await evalStudents({ data: 'synthetic', seed: 3, topK: 6, students: [s.fp32], out: path.join(dir, 'r'), batches: 2, batchSize: 3, samples: 0, latencySteps: 2, latencyWarmup: 0, latencyContext: 2, texts: [text] });
    const ck = loadCheckpoint(s.fp32);
    const w = new Map([...ck.arrays.values()].map((a) => [a.name, a.data as Float32Array]));

    // the same validation batches eval read: synthetic data is a function of its options
    const src = syntheticTeacher({ vocabSize: 256, seqLen: 6, batchSize: 3, topK: 6, seed: 3, split: 'val' }).open();
    let kl = 0, agree = 0, labelled = 0, nll = 0, correct = 0, targeted = 0;
    for (let bi = 0; bi < 2; bi++) {
      const b = src.next();
      for (let r = 0; r < b.B; r++) {
        const ls = reference(w, Array.from(b.inputIds.subarray(r * b.T, (r + 1) * b.T)));
        for (let t = 0; t < b.T; t++) {
          const n = r * b.T + t, row = ls[t];
          const amax = row.indexOf(Math.max(...row));
          if (b.mask[n] > 0) {
            const ent = Array.from({ length: b.K }, (_, k) => ({ id: b.topIds[n * b.K + k], lp: b.topLogprobs[n * b.K + k] })).filter((e) => Number.isFinite(e.lp) && e.lp > -9999);
            // forward KL over the top-k and one tail class (the teacher's mass outside it)
            const m = Math.max(...ent.map((e) => e.lp));
            const R = 1 - ent.reduce((a, e) => a + Math.exp(e.lp), 0), qTail = Math.max(1 - ent.reduce((a, e) => a + Math.exp(row[e.id]), 0), 1e-6);
            kl += ent.reduce((a, e) => a + Math.exp(e.lp) * (e.lp - row[e.id]), 0) + (R > 1e-9 ? R * Math.log(R / qTail) : 0);
            agree += amax === ent.find((e) => e.lp === m)!.id ? 1 : 0;
            labelled++;
          }
          if (b.targets[n] >= 0) { nll -= row[b.targets[n]]; correct += amax === b.targets[n] ? 1 : 0; targeted++; }
        }
      }
    }
    const got = report.students[0].metrics;
    expect(got.labelled).toBe(labelled);
    expect(got.targeted).toBe(targeted);
    expect(got.kl!).toBeCloseTo(kl / labelled, 4);
    expect(got.agreement!).toBeCloseTo(agree / labelled, 9);
    expect(got.ppl!).toBeCloseTo(Math.exp(nll / targeted), 2);
    expect(got.accuracy!).toBeCloseTo(correct / targeted, 9);

    // bits per byte: byte tokens, windows of 6 sliding by 3; every byte after the first predicted once
    const bytes = [...Buffer.from(TEXT, 'utf8')];
    let bits = 0;
    for (let t = 1; t < bytes.length; t++) {
      // the window that scores t: starts 0, 3, 6, … (targets start+1 … start+6, each counted once), the last one ending at the text's end
      const start = t <= 6 ? 0 : Math.min(3 * Math.ceil((t - 6) / 3), bytes.length - 7);
      const ctx = bytes.slice(start, t);
      bits -= reference(w, ctx).at(-1)![bytes[t]] / Math.LN2;
    }
    const bpb = report.texts[0].students[0];
    expect(bpb.bytes).toBe(bytes.length - 1);
    expect(bpb.bits).toBeCloseTo(bits, 3);
    expect(bpb.bpb).toBeCloseTo(bits / (bytes.length - 1), 5);
  }, 120_000);
});
