/**
 * Bad input to kd eval: each case a clear KdError before anything is written. Dataset directories
 * come through openData (being extended elsewhere), so it is replaced here by one that returns what
 * each case needs: a dataset tokenizer, or no validation split.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { evalStudents } from '../../src/eval/eval.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import type { OpenedData } from '../../src/data/open.js';
import { syntheticTeacher } from '../../src/data/synthetic.js';
import { makeStudents } from './fixtures.js';

const fake = vi.hoisted(() => ({ open: null as null | ((spec: string, o: { batchSize: number; seqLen: number; vocabSize?: number }) => OpenedData) }));
vi.mock('../../src/data/open.js', async (orig) => {
  const real = await orig<typeof import('../../src/data/open.js')>();
  return { ...real, openData: (spec: string, o: Parameters<typeof real.openData>[1]) => (fake.open ? fake.open(spec, o) : real.openData(spec, o)) };
});

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kd-eval-bad-'));
const withExtra = (extra: string[]) => new Tokenizer([...Tokenizer.bytes().tokens, ...extra.map((t) => Uint8Array.from(Buffer.from(t)))]);
const config = resolveModelConfig({ vocabSize: 258, seqLen: 8, dModel: 8, nLayers: 1, nHeads: 1, ffnMult: 1 });
let student: string;
let noTokenizer: string;

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  student = (await makeStudents(tmp(), { trainSteps: 0, config, tokenizer: withExtra(['ab', 'cd']).toJSON() })).fp32;
  noTokenizer = (await makeStudents(tmp(), { trainSteps: 0, config })).fp32;
});

const synth = (vocabSize: number, seqLen: number, batchSize: number) => ({
  train: syntheticTeacher({ vocabSize, seqLen, batchSize, topK: 4, seed: 1 }), val: syntheticTeacher({ vocabSize, seqLen, batchSize, topK: 4, seed: 1, split: 'val' }),
});
const opts = (out: string) => ({ data: 'datasets/web', students: [student], out, batches: 1, batchSize: 2, samples: 1, genTokens: 2, latencySteps: 1 });

describe('kd eval bad input', () => {
  it('a student whose tokenizer differs from the dataset\'s: refused, nothing written', async () => {
    fake.open = (_s, o) => ({ ...synth(258, o.seqLen, o.batchSize), tokenizer: withExtra(['ab', 'ce']) });
    const out = path.join(tmp(), 'run');
    await expect(evalStudents(opts(out))).rejects.toThrow(/student "fp32" \(.*checkpoint\.kdc\): its tokenizer \(sha256 [0-9a-f]{12}…\) differs from the dataset's datasets\/web/);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(path.dirname(out))).toEqual([]);
  });

  it('a dataset whose vocabulary size differs from the student\'s: refused', async () => {
    fake.open = (_s, o) => ({ ...synth(257, o.seqLen, o.batchSize), tokenizer: withExtra(['ab']) });
    // a student without a tokenizer of its own is checked by size
    await expect(evalStudents({ ...opts(path.join(tmp(), 'run')), students: [noTokenizer] })).rejects.toThrow(/has vocabulary 258, the dataset datasets\/web has 257 tokens/);
  });

  it('the same tokenizer: evaluated, and samples are decoded text', async () => {
    fake.open = (_s, o) => ({ ...synth(258, o.seqLen, o.batchSize), tokenizer: withExtra(['ab', 'cd']) });
    const { report } = await evalStudents(opts(path.join(tmp(), 'run')));
    expect(report.data.tokenizerHash).toBe(withExtra(['ab', 'cd']).hash());
    expect(report.students[0].tokenizerHash).toBe(report.data.tokenizerHash);
    expect(report.samples[0].prompt).not.toMatch(/^⟨/);
  });

  it('an empty validation split: a clear error, nothing written', async () => {
    fake.open = (_s, o) => ({ train: synth(258, o.seqLen, o.batchSize).train });
    const out = path.join(tmp(), 'run');
    await expect(evalStudents(opts(out))).rejects.toThrow(/--data datasets\/web: the validation split is empty/);
    expect(fs.existsSync(out)).toBe(false);
    // a split that yields only empty batches is just as empty
    fake.open = (_s, o) => ({ ...synth(258, o.seqLen, o.batchSize), val: { open: () => ({ next: () => ({ B: 0, T: o.seqLen, K: 4, inputIds: new Int32Array(0), topIds: new Int32Array(0), topLogprobs: new Float32Array(0), mask: new Float32Array(0), targets: new Int32Array(0) }), cursor: () => 0 }), describe: () => ({}) } });
    await expect(evalStudents(opts(out))).rejects.toThrow(/validation split has no labelled positions/);
  });

  it('token ids outside the students\' vocabulary, a corrupt checkpoint, a bad baseline: clear errors', async () => {
    fake.open = (_s, o) => synth(300, o.seqLen, o.batchSize);
    await expect(evalStudents(opts(path.join(tmp(), 'run')))).rejects.toThrow(/token id \d+ is outside the students' vocabulary \(258\)/);
    fake.open = null;
    const bad = path.join(tmp(), 'bad.kdc');
    fs.writeFileSync(bad, 'not a checkpoint');
    await expect(evalStudents({ ...opts(path.join(tmp(), 'run')), data: 'synthetic', students: [bad] })).rejects.toThrow(/bad\.kdc: not a valid kd checkpoint/);
    await expect(evalStudents({ ...opts(path.join(tmp(), 'run')), data: 'synthetic', baseline: path.join(tmp(), 'none.json') })).rejects.toThrow(/--baseline .*none\.json: cannot read it as JSON/);
    await expect(evalStudents({ ...opts(path.join(tmp(), 'run')), data: 'synthetic', teacherUrl: 'http://127.0.0.1:9/v1' })).rejects.toThrow(/--teacher-url needs --model/);
  });
});
