/**
 * The contract that matters most: `kd collect` (its real client and parsers) reads what kd serve
 * writes, in chat mode and in score mode (legacy echo), including tokens that are cut UTF-8.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { collect } from '../../src/collect/index.js';
import { readRawDir } from '../../src/schema/raw.js';
import { type ServeHandle, serve } from '../../src/serve/serve.js';
import { tokenBytesOf } from '../../src/serve/tokens.js';
import { makeCheckpoint, testTokenizer } from './fixture.js';

let h: ServeHandle;
beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  h = await serve({ checkpoint: await makeCheckpoint(), port: 0, quiet: true, backend: 'cpu' });
});
afterAll(() => h?.close());

function input(rows: object[]): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kd-serve-collect-'));
  const file = join(dir, 'in.jsonl');
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return { dir, file };
}

describe('kd collect against kd serve', () => {
  it('score mode: every position after the first labelled, offsets into the text, top-k intact', async () => {
    const text = 'hello the world, € and é: the end';
    const { dir, file } = input([{ id: 'd1', text }]);
    const s = await collect({ teacherUrl: `${h.url}/v1`, model: h.model, input: file, out: join(dir, 'raw'), topK: 4, concurrency: 2, mode: 'score' });
    expect(s.stopReason).toBe('complete');
    const [r] = [...readRawDir(join(dir, 'raw'))];
    const ids = testTokenizer().encode(text);
    expect(r!.tokens.length).toBe(ids.length);
    expect(r!.token_logprobs[0]).toBeNull();
    expect(r!.token_logprobs.slice(1).every((v) => typeof v === 'number' && v < 0)).toBe(true);
    expect(r!.top_tokens.slice(1).every((t) => t!.length === 4)).toBe(true);
    expect(r!.system_fingerprint).toBe(h.fingerprint);
    const cps = Array.from(text);
    r!.tokens.forEach((t, i) => {
      const piece = Buffer.from(tokenBytesOf(t!)).toString('utf8');
      expect(cps.slice(r!.text_offsets![i]!, r!.text_offsets![i]! + Array.from(piece).length).join('')).toBe(piece);
    });
  });

  it('chat mode: bytes present for every token, n choices', async () => {
    const { dir, file } = input([{ id: 'c1', prompt: 'hello' }]);
    const s = await collect({ teacherUrl: `${h.url}/v1`, model: h.model, input: file, out: join(dir, 'raw'), topK: 3, concurrency: 1, mode: 'chat', maxTokens: 6, n: 2, seed: 4 });
    expect(s.stopReason).toBe('complete');
    const recs = [...readRawDir(join(dir, 'raw'))];
    expect(recs.map((r) => r.choice_index).sort()).toEqual([0, 1]);
    for (const r of recs) {
      expect(r.token_bytes.every((b) => b instanceof Uint8Array)).toBe(true);
      r.tokens.forEach((t, i) => expect(Buffer.from(tokenBytesOf(t!)).equals(Buffer.from(r.token_bytes[i]!))).toBe(true));
      expect(r.top_tokens.every((t) => t!.length === 3)).toBe(true);
    }
  });

  it('chat mode through the Responses API (--chat-api responses): the same records as through chat completions', async () => {
    const { dir, file } = input([{ id: 'r1', prompt: 'hello the world' }, { id: 'r2', prompt: 'the' }]);
    const base = { teacherUrl: `${h.url}/v1`, model: h.model, input: file, topK: 3, concurrency: 2, mode: 'chat' as const, maxTokens: 6, temperature: 0 };
    const viaChat = await collect({ ...base, out: join(dir, 'chat') });
    const viaResponses = await collect({ ...base, out: join(dir, 'responses'), chatApi: 'responses' });
    expect(viaResponses.stopReason).toBe('complete');
    expect(viaResponses.tokens).toEqual(viaChat.tokens);
    expect(viaResponses.tokens.completion).toBeGreaterThan(0);
    const byId = (d: string) => new Map([...readRawDir(join(dir, d))].map((r) => [r.input_id, r]));
    const chat = byId('chat'), responses = byId('responses');
    expect([...responses.keys()].sort()).toEqual(['r1', 'r2']);
    for (const [id, r] of responses) {
      const c = chat.get(id)!;
      expect(r.mode).toBe('chat');
      expect(r.prompt).toBe(c.prompt);
      expect(r.tokens).toEqual(c.tokens);
      expect(r.token_bytes).toEqual(c.token_bytes);
      expect(r.top_tokens).toEqual(c.top_tokens);
      r.token_logprobs.forEach((v, i) => expect(v).toBeCloseTo(c.token_logprobs[i]!, 5));
      expect(r.finish_reason).toBe(c.finish_reason);
      expect(r.prompt_tokens).toBe(c.prompt_tokens);
    }
  });

  it('--chat-api responses refuses what the Responses API cannot do', async () => {
    const { dir, file } = input([{ id: 'x', prompt: 'p' }]);
    const o = { teacherUrl: `${h.url}/v1`, model: h.model, input: file, out: join(dir, 'raw'), chatApi: 'responses' as const };
    await expect(collect({ ...o, seed: 1 })).rejects.toThrow('--chat-api responses: the Responses API takes no seed; leave --seed out');
    await expect(collect({ ...o, n: 2 })).rejects.toThrow(/one choice per request/);
    await expect(collect({ ...o, mode: 'score' })).rejects.toThrow(/it is for --mode chat/);
  });
});
