import { describe, expect, it } from 'vitest';
import {
  canonicalJson, chatBody, chunkText, echoBody, effectiveTopK, planRequests, requestHash, sliceCodePoints, vllmBody, type RequestParams,
} from '../../src/collect/request.js';

const params: RequestParams = {
  mode: 'chat', model: 'm', topK: 20, maxTokens: 64, temperature: 0.7, seed: 1, n: 1, scoreApi: 'echo',
  maxTokensField: 'max_tokens', chunkTokens: 8, chunkOverlap: 2,
};

describe('canonical JSON and request hash', () => {
  it('sorts keys at every level and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null }, u: undefined })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
  });
  it('is stable under key order and changes with body, id, endpoint and chunk', () => {
    const h = requestHash('chat', { a: 1, b: 2 }, 'id1');
    expect(requestHash('chat', { b: 2, a: 1 }, 'id1')).toBe(h);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    const others = [requestHash('chat', { a: 1, b: 3 }, 'id1'), requestHash('chat', { a: 1, b: 2 }, 'id2'),
      requestHash('completions', { a: 1, b: 2 }, 'id1'), requestHash('chat', { a: 1, b: 2 }, 'id1', 1)];
    expect(new Set([h, ...others]).size).toBe(5);
  });
});

describe('request bodies', () => {
  it('chat asks for logprobs, top_logprobs, max tokens under the right name, seed and n only when set', () => {
    const b = chatBody([{ role: 'user', content: 'hi' }], { ...params, maxTokensField: 'max_completion_tokens', n: 2 });
    expect(b).toEqual({ model: 'm', messages: [{ role: 'user', content: 'hi' }], logprobs: true, top_logprobs: 20, max_completion_tokens: 64, temperature: 0.7, seed: 1, n: 2 });
    expect(chatBody([], { ...params, seed: undefined })).not.toHaveProperty('seed');
    expect(chatBody([], params)).not.toHaveProperty('n');
  });
  it('echo scores with max_tokens 0; vLLM asks for prompt_logprobs', () => {
    expect(echoBody('t', { ...params, topK: 5 })).toEqual({ model: 'm', prompt: 't', echo: true, logprobs: 5, max_tokens: 0, temperature: 0 });
    expect(vllmBody('t', params)).toEqual({ model: 'm', prompt: 't', max_tokens: 1, temperature: 0, prompt_logprobs: 20 });
  });
  it('caps top-k at 20, and at 5 for echo on OpenAI models only', () => {
    expect(effectiveTopK(50, 'chat', 'echo', 'gpt-4o')).toBe(20);
    expect(effectiveTopK(20, 'score', 'echo', 'davinci-002')).toBe(5);
    expect(effectiveTopK(20, 'score', 'echo', 'kd-teacher')).toBe(20);
    expect(effectiveTopK(20, 'score', 'vllm', 'meta-llama/Llama-3.1-8B')).toBe(20);
  });
});

describe('chunking with overlap', () => {
  const text = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
  it('covers the text, overlaps each chunk, bounds the length, scoreFrom = previous end', () => {
    const chunks = chunkText(text, 40, 10);
    const n = Array.from(text).length;
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks[0]).toMatchObject({ start: 0, scoreFrom: 0 });
    expect(chunks.at(-1)!.end).toBe(n);
    for (const [i, c] of chunks.entries()) {
      expect(c.end - c.start).toBeLessThanOrEqual(40);
      if (i > 0) {
        const prev = chunks[i - 1]!;
        expect(c.scoreFrom).toBe(prev.end);
        expect(c.start).toBeLessThan(prev.end); // overlap: left context for the first new token
        expect(prev.end - c.start).toBeLessThanOrEqual(10);
        expect(c.start).toBeGreaterThan(prev.start);
      }
    }
    // the new parts tile the text exactly
    expect(chunks.map((c) => sliceCodePoints(text, c.scoreFrom, c.end)).join('')).toBe(text);
  });
  it('prefers whitespace cuts and never splits a surrogate pair', () => {
    for (const c of chunkText(text, 40, 10).slice(0, -1)) expect(Array.from(text)[c.end - 1]).toBe(' ');
    const emoji = '🙂'.repeat(50);
    const chunks = chunkText(emoji, 16, 4);
    for (const c of chunks) expect(sliceCodePoints(emoji, c.start, c.end)).toMatch(/^(🙂)+$/u);
  });
  it('keeps a short text whole', () => {
    expect(chunkText('short', 40, 10)).toEqual([{ start: 0, end: 5, scoreFrom: 0 }]);
  });
  it('plans one request per chunk with distinct hashes and absolute offsets', () => {
    const reqs = planRequests({ row: 3, id: 'doc', text }, { ...params, mode: 'score' });
    expect(reqs.length).toBe(chunkText(text, 32, 8).length);
    expect(new Set(reqs.map((r) => r.hash)).size).toBe(reqs.length);
    for (const r of reqs) {
      expect(r.body.prompt).toBe(r.text);
      expect(sliceCodePoints(text, r.chunkStart!, r.chunkStart! + Array.from(r.text!).length)).toBe(r.text);
      expect(r.chunkCount).toBe(reqs.length);
    }
  });
});
