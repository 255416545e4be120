import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { disposeModel, initModel } from '../../src/model/gpt.js';
import { type NamedArray, loadCheckpoint, saveCheckpoint } from '../../src/schema/checkpoint.js';
import { defaultModelName, loadServedModel } from '../../src/serve/model.js';
import { channelAxis, quantizeArray } from '../../src/model/int8.js';
import { serve } from '../../src/serve/serve.js';
import { makeCheckpoint } from './fixture.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kd-serve-model-'));

/** Symmetric int8 with the compressor's own quantizer: per channel along the axis it picks, or per tensor. */
function quantize(a: NamedArray, perChannel: boolean): NamedArray {
  const q = quantizeArray(a.data as Float32Array, a.shape, { bits: 8, scheme: perChannel ? 'per-channel' : 'per-tensor', axis: channelAxis(a.name, a.shape) });
  return { name: a.name, dtype: 'int8', shape: a.shape, data: q.q, scales: q.scales, ...(q.axis !== undefined ? { axis: q.axis } : {}) };
}

function saveFreshModel(file: string, vocabSize: number, tokenizer?: unknown) {
  const config = resolveModelConfig({ vocabSize, seqLen: 8, dModel: 8, nLayers: 1, nHeads: 2 });
  const m = initModel(config, 1);
  const arrays: NamedArray[] = [...m.params].map(([name, v]) => ({ name, dtype: 'float32', shape: v.shape, data: v.dataSync() as Float32Array }));
  disposeModel(m);
  saveCheckpoint(file, { model: config as unknown as Record<string, unknown>, tokenizer, arrays });
}

describe('loadServedModel', () => {
  it('falls back to the byte tokenizer for a 256-token vocabulary without one, and refuses otherwise', () => {
    const dir = tmp();
    saveFreshModel(path.join(dir, 'bytes', 'checkpoint.kdc'), 256);
    const s = loadServedModel(path.join(dir, 'bytes'));
    expect(s.tokenizer.vocabSize).toBe(256);
    expect(s.name).toBe('bytes');
    disposeModel(s.model);
    saveFreshModel(path.join(dir, 'big', 'checkpoint.kdc'), 300);
    expect(() => loadServedModel(path.join(dir, 'big'))).toThrow(/has no tokenizer and its vocabulary \(300\) is not the 256 bytes/);
  });

  it('refuses a tokenizer whose size differs from the model vocabulary', () => {
    const dir = tmp();
    const tok = { format: 'kd-tokenizer', version: 1, tokens: Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0')) };
    saveFreshModel(path.join(dir, 'checkpoint.kdc'), 260, tok);
    expect(() => loadServedModel(dir)).toThrow(/tokenizer has 256 tokens but the model's vocabSize is 260/);
  });

  it('names the model after the run directory whether given the directory or the file', () => {
    expect(defaultModelName('/x/run-7', '/x/run-7/checkpoint.kdc')).toBe('run-7');
    expect(defaultModelName('/x/run-7/checkpoint.kdc', '/x/run-7/checkpoint.kdc')).toBe('run-7');
  });
});

describe('serving an int8 checkpoint', () => {
  it('answers with log-probs close to the float32 model\'s', async () => {
    const dir = await makeCheckpoint();
    const ck = loadCheckpoint(dir);
    const q = path.join(tmp(), 'tiny-int8');
    const arrays = [...ck.arrays.values()].filter((a) => !a.name.startsWith('adam.')).map((a) =>
      a.shape.length === 2 ? quantize(a, a.name !== 'wpe') : a); // wpe per tensor, the other matrices per channel
    saveCheckpoint(path.join(q, 'checkpoint.kdc'), { model: ck.header.model, tokenizer: ck.header.tokenizer, arrays });
    expect(loadCheckpoint(q).arrays.get('wte')!.dtype).toBe('int8');

    const body = { model: 'm', prompt: 'hello the world', echo: true, logprobs: 0, max_tokens: 0 };
    const score = async (checkpoint: string) => {
      const h = await serve({ checkpoint, port: 0, quiet: true, backend: 'cpu' });
      try {
        const r = await new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'x', maxRetries: 0 }).completions.create(body);
        return { lps: r.choices[0]!.logprobs!.token_logprobs as (number | null)[], fp: r.system_fingerprint, model: r.model };
      } finally {
        await h.close();
      }
    };
    const f = await score(dir), i8 = await score(q);
    expect(i8.model).toBe('tiny-int8');
    expect(i8.fp).not.toBe(f.fp);
    expect(i8.lps.length).toBe(f.lps.length);
    i8.lps.slice(1).forEach((v, j) => expect(Math.abs(v! - f.lps[j + 1]!)).toBeLessThan(0.05));
    expect(i8.lps.slice(1)).not.toEqual(f.lps.slice(1)); // really the quantized weights
  });
});
