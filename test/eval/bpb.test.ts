import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { bitsPerByte, slidingWindows } from '../../src/eval/bpb.js';
import { evalStudents } from '../../src/eval/eval.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { disposeModel, forwardLogits, initModel } from '../../src/model/gpt.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { brownText, readText } from '../../src/data/corpus.js';
import { makeStudents } from './fixtures.js';

const CONFIG = resolveModelConfig({ vocabSize: 256, seqLen: 16, dModel: 16, nLayers: 1, nHeads: 2, ffnMult: 2 });
const TEXT = 'Fellow-Citizens of the Senate and House of Representatives: the state of the Union is strong — ünïcödé too.';

beforeAll(async () => { await initBackend({ backend: 'cpu' }); });

describe('slidingWindows', () => {
  it.each([[2, 16], [10, 16], [17, 16], [18, 16], [100, 16], [333, 16], [50, 7]])('L=%d T=%d: every token but the first is scored once, with at least T/2 context after the first window', (L, T) => {
    const seen = new Array(L).fill(0);
    for (const [i, w] of slidingWindows(L, T).entries()) {
      const end = Math.min(w.start + T, L - 1);
      for (let t = w.from + 1; t <= end; t++) {
        seen[t]++;
        if (i > 0) expect(t - w.start).toBeGreaterThanOrEqual(Math.floor(T / 2));
      }
    }
    expect(seen[0]).toBe(0);
    expect(seen.slice(1).every((c) => c === 1)).toBe(true);
  });
});

describe('bitsPerByte', () => {
  it('a uniform model scores log2(V) bits per token: 8 bits per byte with byte tokens', () => {
    const m = initModel(CONFIG, 1);
    m.params.get('wte')!.assign(tf.zeros(m.params.get('wte')!.shape)); // every logit 0
    const r = bitsPerByte(m, Tokenizer.bytes(), TEXT);
    const bytes = Buffer.byteLength(TEXT);
    expect(r.tokens).toBe(bytes - 1);
    expect(r.bytes).toBe(bytes - 1);
    expect(r.bpb).toBeCloseTo(8, 5);
    disposeModel(m);
  });

  it('equals the log-probs of one forward pass on a short text, and does not depend on the batch', () => {
    const m = initModel(CONFIG, 2);
    const tok = Tokenizer.bytes();
    const short = 'The Union is strong.'; // 20 bytes: one window of T = 16 would not hold it, so two windows
    const ids = tok.encode(short.slice(0, 12)); // ≤ T + 1 tokens: exactly one window
    const logp = tf.tidy(() => tf.logSoftmax(forwardLogits(m, tf.tensor2d(ids.slice(0, -1), [1, ids.length - 1], 'int32'))).arraySync() as number[][][]);
    let bits = 0;
    for (let t = 0; t < ids.length - 1; t++) bits -= logp[0][t][ids[t + 1]] / Math.LN2;
    const one = bitsPerByte(m, tok, short.slice(0, 12));
    expect(one.bits).toBeCloseTo(bits, 4);
    const a = bitsPerByte(m, tok, TEXT, { batch: 1 }), b = bitsPerByte(m, tok, TEXT, { batch: 16 });
    expect(b.bits).toBeCloseTo(a.bits, 3);
    expect(b.tokens).toBe(a.tokens);
    // --text-bytes: a prefix that does not cut a UTF-8 character
    const cut = bitsPerByte(m, tok, TEXT, { maxBytes: 40 });
    expect(cut.tokens).toBe(39);
    disposeModel(m);
  });

  it('refuses a tokenizer that is not the model\'s', () => {
    const m = initModel(resolveModelConfig({ ...CONFIG, vocabSize: 300 }), 1);
    expect(() => bitsPerByte(m, Tokenizer.bytes(), TEXT)).toThrow(/tokenizer has 256 tokens but the model's vocabulary is 300/);
    disposeModel(m);
  });
});

describe('held-out texts', () => {
  it('corpus:sotu is the held-out speeches (every 10th); corpus:brown is Brown without its tags', () => {
    const sotu = readText('corpus:sotu');
    expect(sotu.text.length).toBeGreaterThan(100_000);
    expect(brownText("\n\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ,/, it/pps did/dod ./.\n\n\n\tNext/ap ./.\n")).toBe('The jury said "no", it did.\n\nNext.');
    const brown = readText('corpus:brown');
    expect(brown.text).toMatch(/^The Fulton County Grand Jury said Friday/);
    expect(brown.text).not.toMatch(/\/(at|nn|vbd)\b/);
    expect(() => readText('no/such/file.txt')).toThrow(/no such text file/);
  });
});

describe('kd eval --text', () => {
  it('reports bits per byte of every student and the teacher checkpoint; a student without a tokenizer is one clear error', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-bpb-'));
    const s = await makeStudents(dir, { trainSteps: 0, config: CONFIG, tokenizer: Tokenizer.bytes().toJSON() });
    const file = path.join(dir, 'held-out.txt');
    fs.writeFileSync(file, TEXT.repeat(3));
    const r = await evalStudents({
      data: 'synthetic', students: [s.fp32, s.int8], out: path.join(dir, 'report'), batches: 1, batchSize: 2, samples: 0,
      latencySteps: 1, latencyWarmup: 0, latencyContext: 4, texts: [file], teacherCheckpoint: s.fp32,
    });
    const t = r.report.texts[0];
    expect(t.text).toBe(file);
    expect(t.students.map((x) => x.name)).toEqual(['fp32', 'int8']);
    expect(t.teacher!.bpb).toBeCloseTo(t.students[0].bpb, 6); // the same checkpoint
    expect(Math.abs(t.students[1].bpb - t.students[0].bpb)).toBeLessThan(0.05); // int8 is close
    expect(t.students[0].bpb).toBeGreaterThan(6); // an untrained byte model: about 8 bits per byte
    const html = fs.readFileSync(path.join(dir, 'report', 'index.html'), 'utf8');
    expect(html).toContain(`<tr class="teacher"><th scope="row">teacher</th><td>${t.teacher!.bpb.toFixed(4)}`); // the teacher's row, bits per byte first
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'report', 'report.json'), 'utf8')).texts[0].students[0].bpb).toBeCloseTo(t.students[0].bpb, 10);

    const bare = await makeStudents(path.join(dir, 'bare'), { trainSteps: 0 });
    await expect(evalStudents({ data: 'synthetic', students: [bare.fp32], out: path.join(dir, 'r2'), batches: 1, batchSize: 2, samples: 0, latencySteps: 1, latencyWarmup: 0, texts: [file] }))
      .rejects.toThrow(/has no tokenizer: bits per byte on --text needs one/);
    expect(fs.existsSync(path.join(dir, 'r2'))).toBe(false);
  });
});

describe('the teacher behind an API on --text', () => {
  it('kd serve scores given text: the same bits per byte as the checkpoint scored locally; chunks count every token once', async () => {
    const { makeCheckpoint } = await import('../serve/fixture.js');
    const { serve } = await import('../../src/serve/serve.js');
    const { loadModel } = await import('../../src/model/load.js');
    const { teacherBitsPerByte } = await import('../../src/eval/teacher.js');
    const dir = await makeCheckpoint();
    const h = await serve({ checkpoint: dir, port: 0, backend: 'cpu', quiet: true });
    const { model, tokenizer } = loadModel(dir);
    try {
      const short = 'the hello world €'; // fits one window of the model
      const local = bitsPerByte(model, tokenizer!, short);
      const api = await teacherBitsPerByte({ url: `${h.url}/v1`, model: h.model, text: short, timeoutMs: 30_000 });
      expect(api.tokens).toBe(local.tokens);
      expect(api.bytes).toBe(local.bytes);
      expect(api.bpb).toBeCloseTo(local.bpb, 4);
      // a longer text in many small chunks: every token after the first scored once, every byte after it counted once
      const long = 'the world, hello: the é and the € ab '.repeat(6);
      const ids = tokenizer!.encode(long);
      const chunked = await teacherBitsPerByte({ url: `${h.url}/v1`, model: h.model, text: long, timeoutMs: 30_000, chunkChars: 40, overlapChars: 10 });
      expect(chunked.bytes).toBe(Buffer.byteLength(long) - tokenizer!.tokens[ids[0]].length);
      expect(chunked.tokens).toBeGreaterThanOrEqual(ids.length - 1 - 8); // cuts may re-tokenize a few tokens
      expect(chunked.bpb).toBeGreaterThan(0);
      // a server that answers without log-probs cannot score given text: one clear error
      const { startTeacherServer } = await import('../collect/teacher-server.js');
      const bad = await startTeacherServer({ fault: () => 'nologprobs' });
      try {
        await expect(teacherBitsPerByte({ url: bad.url, model: 'm', text: short, timeoutMs: 30_000 })).rejects.toThrow(/this teacher cannot score given text/);
      } finally {
        await bad.close();
      }
    } finally {
      disposeModel(model);
      await h.close();
    }
  });
});
