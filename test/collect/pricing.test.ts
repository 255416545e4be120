import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { approxTokens, BOUND_TOKENS_PER_CHAT, BOUND_TOKENS_PER_MESSAGE, BOUND_TOKENS_PER_PROMPT, boundRequest, chatPromptTokens, costUsd, estimateRequest, resolvePrice, tiktokenEncodingFor, tokenCounter } from '../../src/collect/pricing.js';
import { planRequests } from '../../src/collect/request.js';

describe('prices', () => {
  it('finds a model family by longest prefix (doc table)', () => {
    expect(resolvePrice('gpt-4o')).toMatchObject({ input: 2.5, output: 10, source: 'table' });
    expect(resolvePrice('gpt-4o-2024-08-06')).toMatchObject({ input: 2.5, output: 10 });
    expect(resolvePrice('gpt-4o-mini-2024-07-18')).toMatchObject({ input: 0.15, output: 0.6, cachedInput: 0.075 });
    expect(resolvePrice('llama3')).toMatchObject({ input: 0, output: 0, source: 'unknown' });
  });
  it('lets a price file and then flags override', () => {
    const f = join(mkdtempSync(join(tmpdir(), 'kd-price-')), 'p.json');
    writeFileSync(f, JSON.stringify({ llama3: { input: 1, output: 2 }, 'gpt-4o': { input: 3, output: 4 } }));
    expect(resolvePrice('llama3', { pricesFile: f })).toMatchObject({ input: 1, output: 2, source: 'file' });
    expect(resolvePrice('gpt-4o', { pricesFile: f, priceOut: 9 })).toMatchObject({ input: 3, output: 9, source: 'flags' });
    writeFileSync(f, JSON.stringify({ m: { input: 'cheap' } }));
    expect(() => resolvePrice('m', { pricesFile: f })).toThrow(/model "m": a price must be/);
  });
  it('computes USD per 1M tokens with cached input', () => {
    const gpt4o = resolvePrice('gpt-4o');
    expect(costUsd(gpt4o, 1_000_000, 0)).toBeCloseTo(2.5, 10);
    expect(costUsd(gpt4o, 1_000_000, 1_000_000, 500_000)).toBeCloseTo(1.25 + 0.625 + 10, 10);
    expect(costUsd(resolvePrice('gpt-4o-mini'), 2000, 500)).toBeCloseTo((2000 * 0.15 + 500 * 0.6) / 1e6, 15);
  });
});

describe('token estimates', () => {
  it('uses tiktoken for OpenAI models and bytes/4 otherwise', async () => {
    expect(tiktokenEncodingFor('gpt-4o-mini')).toBe('o200k_base');
    expect(tiktokenEncodingFor('gpt-3.5-turbo')).toBe('cl100k_base');
    expect(tiktokenEncodingFor('Qwen/Qwen2.5-7B')).toBeNull();
    const o200k = await tokenCounter('gpt-4o');
    expect(o200k.method).toBe('tiktoken o200k_base');
    expect(o200k.count('hello world')).toBe(2);
    expect(o200k.count('<|endoftext|>')).toBeGreaterThan(1); // special tokens count as text
    const cl = await tokenCounter('gpt-4');
    expect(cl.count('hello world')).toBe(2);
    const approx = await tokenCounter('llama3');
    expect(approx.count('abcdefghi')).toBe(3);
    expect(approxTokens('é')).toBe(1);
  });
  it('estimates a chat request: 3 + per message (3 + content), completion = max × n', async () => {
    const counter = await tokenCounter('gpt-4o');
    const messages = [{ role: 'system', content: 'hello world' }, { role: 'user', content: 'hello world' }];
    expect(chatPromptTokens(messages, counter)).toBe(3 + 5 + 5);
    const [req] = planRequests({ row: 1, id: 'a', messages }, {
      mode: 'chat', model: 'gpt-4o', topK: 5, maxTokens: 100, temperature: 1, n: 2, scoreApi: 'echo', maxTokensField: 'max_completion_tokens', chunkTokens: 100, chunkOverlap: 10,
    });
    const e = estimateRequest(req!, counter, resolvePrice('gpt-4o'));
    expect(e).toEqual({ promptTokens: 13, completionTokens: 200, costUsd: (13 * 2.5 + 200 * 10) / 1e6 });
    expect(boundRequest(req!, counter, resolvePrice('gpt-4o'))).toEqual(e); // tiktoken is the teacher's own count
  });
  it('bounds what a teacher with an unknown tokenizer can bill: a token per byte plus template slack', async () => {
    const counter = await tokenCounter('llama3');
    const price = { input: 1, output: 2 };
    const params = { model: 'llama3', topK: 5, maxTokens: 100, temperature: 1, n: 2, scoreApi: 'echo' as const, maxTokensField: 'max_tokens' as const, chunkTokens: 100, chunkOverlap: 10 };
    const text = 'naïve café €5'; // 17 UTF-8 bytes
    const [score] = planRequests({ row: 1, id: 's', text }, { ...params, mode: 'score' });
    expect(estimateRequest(score!, counter, price).promptTokens).toBe(5); // bytes / 4: a byte-level teacher bills 17
    expect(boundRequest(score!, counter, price)).toEqual({ promptTokens: 17 + BOUND_TOKENS_PER_PROMPT, completionTokens: 0, costUsd: (17 + BOUND_TOKENS_PER_PROMPT) / 1e6 });
    expect(BOUND_TOKENS_PER_PROMPT).toBe(2);
    const [chat] = planRequests({ row: 1, id: 'c', messages: [{ role: 'system', content: 'hello world' }, { role: 'user', content: text }] }, { ...params, mode: 'chat' });
    // 16 + (6 "system" + 11 + 8) + (4 "user" + 17 + 8) = 70; completions: 100 × 2
    expect(BOUND_TOKENS_PER_CHAT + BOUND_TOKENS_PER_MESSAGE * 2).toBe(32);
    const b = boundRequest(chat!, counter, price);
    expect(b).toEqual({ promptTokens: 70, completionTokens: 200, costUsd: (70 + 400) / 1e6 });
    // kd serve's own rendering of it on its byte vocabulary fits under the bound
    expect(Buffer.byteLength(`system: hello world\nuser: ${text}\nassistant: `)).toBeLessThanOrEqual(b.promptTokens);
  });
});
