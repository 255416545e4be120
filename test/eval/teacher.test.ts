import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { latencyOf, probeTeacher, readCollection, teacherPrice } from '../../src/eval/teacher.js';
import { RawStreamEncoder, rawSchema, rawShardName, type RawRecord } from '../../src/schema/raw.js';
import { startTeacherServer } from '../collect/teacher-server.js';

function record(i: number, choice: number, latency: number, completion: number | null): RawRecord {
  return {
    input_id: `r${i}`, request_hash: `h${i}`, mode: 'chat', choice_index: choice, chunk_index: 0, chunk_count: 1, chunk_start: null, score_from: null,
    tokens: ['a'], token_bytes: [Uint8Array.of(97)], token_logprobs: [-0.1], top_ids: null, top_tokens: [['a']], top_bytes: [[Uint8Array.of(97)]], top_logprobs: [[-0.1]],
    text_offsets: null, finish_reason: 'stop', prompt_tokens: 5, completion_tokens: completion, cached_tokens: null, model: 'gpt-4o-mini',
    system_fingerprint: null, latency_ms: latency, attempts: 1, completed_at: 0,
  };
}

describe('teacher figures', () => {
  it('latencyOf: percentiles over requests, ms per token over those that report usage', () => {
    expect(latencyOf([100, 300, 200], [10, null, 10])).toEqual({ n: 3, p50Ms: 200, p95Ms: 290, msPerToken: 15 });
    expect(latencyOf([], []).p50Ms).toBeNull();
  });

  it('reads cost, price and latency from a dataset\'s collection records', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-eval-coll-'));
    fs.mkdirSync(path.join(dir, 'raw'));
    fs.writeFileSync(path.join(dir, 'raw', 'manifest.json'), JSON.stringify({
      format: 'kd-collect-manifest', version: 1, teacher: { model: 'gpt-4o-mini' }, counts: { records: 3 },
      tokens: { prompt: 1000, completion: 500 }, price: { input: 0.15, output: 0.6, source: 'table' }, cost_usd: 0.00045,
    }));
    const enc = new RawStreamEncoder(rawSchema());
    // request 2 had two choices: its latency counts once
    const bytes = Buffer.concat([enc.start(), enc.batch([record(0, 0, 100, 10), record(1, 0, 300, 30), record(1, 1, 300, null), record(2, 0, 200, null)]), enc.end()]);
    fs.writeFileSync(path.join(dir, 'raw', rawShardName(1)), bytes);
    const c = readCollection(dir)!;
    expect(c).toMatchObject({ model: 'gpt-4o-mini', requests: 3, promptTokens: 1000, completionTokens: 500, costUsd: 0.00045, price: { input: 0.15, output: 0.6, source: 'table' } });
    expect(c.latency).toEqual({ n: 3, p50Ms: 200, p95Ms: 290, msPerToken: 10 });
    expect(teacherPrice(c, 'gpt-4o')).toEqual(c.price); // what collection paid wins over the table
    expect(readCollection('synthetic')).toBeNull();
    expect(readCollection(os.tmpdir())).toBeNull();
    expect(teacherPrice(null, 'gpt-4o')).toMatchObject({ input: 2.5, output: 10 });
    expect(teacherPrice(null, undefined)).toBeNull();
  });

  it('a teacher answering with an HTTP error is marked "error", and stops after the first failure', async () => {
    const server = await startTeacherServer({ fault: () => '401' });
    try {
      const live = await probeTeacher({ url: server.url, model: 'm', prompts: ['a', 'b'], maxTokens: 2, temperature: 0.8, timeoutMs: 2000 });
      expect(live).toMatchObject({ status: 'error', latency: null, texts: [null, null] });
      expect(live.error).toMatch(/HTTP 401/);
      expect(server.total()).toBe(1);
    } finally {
      await server.close();
    }
  });
});
