/**
 * kd serve end to end, with the official openai SDK as the client: the numbers are checked against
 * the model's forward pass computed directly, not against the server's own code.
 */
import * as tf from '@tensorflow/tfjs';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../src/model/gpt.js';
import { planWindows } from '../../src/serve/engine.js';
import { type ServeHandle, serve } from '../../src/serve/serve.js';
import { tokenBytesOf, tokenString } from '../../src/serve/tokens.js';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { SEQ_LEN, type TinyServer, logProbsOf, serveTiny } from './fixture.js';

let dir: string;
let h: ServeHandle;
let client: OpenAI;
let ref: Model;
let tok: Tokenizer;
const logLines: string[] = [];
let tiny: TinyServer | undefined;

beforeAll(async () => {
  tiny = await serveTiny((l) => logLines.push(l));
  ({ dir, h, client, ref, tok } = tiny);
});

afterAll(async () => {
  await tiny?.close();
});

/** log-softmax of forwardLogits for one sequence (≤ seqLen): [T][V] */
function refLogProbs(ids: number[]): number[][] {
  return logProbsOf(ref, ids);
}

/** The ids of wire tokens (legacy form or chat bytes). */
const idsOfStrings = (tokens: string[]) => tokens.map((t) => tok.idOf(tokenBytesOf(t))!);

type Legacy = { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: (Record<string, number> | null)[]; text_offset: number[] };

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${h.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('kd serve with the openai SDK', () => {
  it('lists the model, named after the checkpoint directory', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    expect(models.map((m) => m.id)).toEqual(['tiny-student']);
    expect((await client.models.retrieve('tiny-student')).owned_by).toBe('kd');
  });

  it('completions echo + logprobs, max_tokens 0: teacher-forced log-probs equal log-softmax(forwardLogits)', async () => {
    const prompt = 'hello the world é€ ab';
    const ids = tok.encode(prompt);
    expect(ids.some((i) => i >= 256)).toBe(true); // multi-byte tokens are in play
    const k = 5;
    const r = await client.completions.create({ model: 'whatever', prompt, echo: true, logprobs: k, max_tokens: 0, temperature: 0 });
    expect(r.model).toBe('tiny-student');
    expect(r.system_fingerprint).toMatch(/^fp_[0-9a-f]{12}$/);
    expect(r.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: 0, total_tokens: ids.length });
    const c = r.choices[0]!;
    expect(c.text).toBe(prompt);
    expect(c.finish_reason).toBe('length');
    const lp = c.logprobs as unknown as Legacy;
    expect(lp.tokens).toEqual(ids.map((i) => tokenString(tok.tokens[i]!)));
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    const want = refLogProbs(ids);
    for (let p = 1; p < ids.length; p++) {
      const row = want[p - 1]!;
      expect(lp.token_logprobs[p]).toBeCloseTo(row[ids[p]!]!, 5);
      // best first on the wire; a JS object lists integer-like keys ("5") first, so sort again here
      const entries = Object.entries(lp.top_logprobs[p]!).sort((a, b) => b[1] - a[1]);
      const inTop = [...row].sort((a, b) => b - a).slice(0, k);
      // the top k, plus the actual token when it is not among them
      const actualInTopK = entries.slice(0, k).some(([t]) => t === lp.tokens[p]);
      expect(entries.length).toBe(actualInTopK ? k : k + 1);
      if (!actualInTopK) expect(entries[k]).toEqual([lp.tokens[p], lp.token_logprobs[p]]);
      entries.slice(0, k).forEach(([t, v], j) => {
        expect(v).toBeCloseTo(inTop[j]!, 5);
        expect(v).toBeCloseTo(row[idsOfStrings([t])[0]!]!, 5);
      });
    }
    // character offsets (code points), like Python servers
    const pieces = ids.map((i) => Buffer.from(tok.tokens[i]!).toString('utf8'));
    let at = 0;
    expect(lp.text_offset).toEqual(pieces.map((s) => ((at += [...s].length), at - [...s].length)));
  });

  it('scores prompts longer than seqLen with sliding windows', async () => {
    const prompt = 'the hello world, the ab é the end of a long prompt that is longer than sixteen tokens';
    const ids = tok.encode(prompt);
    expect(ids.length).toBeGreaterThan(2 * SEQ_LEN);
    const r = await client.completions.create({ model: 'm', prompt, echo: true, logprobs: 2, max_tokens: 0 });
    const lp = r.choices[0]!.logprobs as unknown as Legacy;
    expect(lp.token_logprobs.length).toBe(ids.length);
    const windows = planWindows(ids.length, SEQ_LEN);
    expect(windows.length).toBeGreaterThan(2);
    for (const w of windows) {
      const want = refLogProbs(ids.slice(w.start, w.start + w.length));
      for (let p = w.from; p < w.to; p++) expect(lp.token_logprobs[p]).toBeCloseTo(want[p - 1 - w.start]![ids[p]!]!, 5);
    }
  });

  it('accepts an array of prompts and token ids, with n choices each, indexed prompt-major', async () => {
    const r = await client.completions.create({ model: 'm', prompt: ['hello', 'the'], n: 2, max_tokens: 3, seed: 5, echo: true });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(r.choices.slice(0, 2).every((c) => c.text.startsWith('hello'))).toBe(true);
    expect(r.choices.slice(2).every((c) => c.text.startsWith('the'))).toBe(true);
    expect(r.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 12 });
    const ids = await client.completions.create({ model: 'm', prompt: tok.encode('hello'), max_tokens: 3, seed: 5, logprobs: 1 });
    expect(ids.choices[0]!.text).toBe(r.choices[0]!.text.slice('hello'.length));
    // without echo, offsets count from the start of the prompt
    expect((ids.choices[0]!.logprobs as unknown as Legacy).text_offset[0]).toBe(5);
  });

  it('chat with logprobs/top_logprobs: bytes, sorted alternatives, and log-probs of the model itself', async () => {
    const messages = [{ role: 'system' as const, content: 'be brief' }, { role: 'user' as const, content: 'hello the world' }];
    const r = await client.chat.completions.create({ model: 'm', messages, logprobs: true, top_logprobs: 3, max_completion_tokens: 6, seed: 11, temperature: 1 });
    expect(r.object).toBe('chat.completion');
    const c = r.choices[0]!;
    const content = c.logprobs!.content!;
    expect(content.length).toBeGreaterThan(0);
    const prompt = tok.encode('system: be brief\nuser: hello the world\nassistant: ');
    expect(r.usage?.prompt_tokens).toBe(prompt.length);
    expect(r.usage?.completion_tokens).toBe(c.finish_reason === 'length' ? 6 : r.usage!.completion_tokens);
    const gen = content.map((item) => tok.idOf(Uint8Array.from(item.bytes!))!);
    content.forEach((item, i) => {
      expect(Buffer.from(item.bytes!).equals(Buffer.from(tokenBytesOf(item.token)))).toBe(true);
      expect(item.top_logprobs.length).toBe(3);
      const vals = item.top_logprobs.map((a) => a.logprob);
      expect(vals).toEqual([...vals].sort((a, b) => b - a));
      const ctx = [...prompt, ...gen.slice(0, i)].slice(-SEQ_LEN);
      const row = refLogProbs(ctx).at(-1)!;
      expect(item.logprob).toBeCloseTo(row[gen[i]!]!, 4);
      expect(vals[0]).toBeCloseTo(Math.max(...row), 4);
    });
    if (c.finish_reason === 'length') expect(c.message.content).toBe(tok.decode(gen));
  });

  it('streams chat as SSE chunks that add up to the non-streamed answer, with usage last', async () => {
    const body = { model: 'm', messages: [{ role: 'user' as const, content: 'the' }], n: 2, seed: 7, max_tokens: 8, logprobs: true, top_logprobs: 2 };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    const text = ['', ''];
    const tokens: string[][] = [[], []];
    const finish: (string | null)[] = [null, null];
    const chunks = [];
    for await (const ch of stream) {
      chunks.push(ch);
      expect(ch.object).toBe('chat.completion.chunk');
      for (const c of ch.choices) {
        text[c.index] += c.delta.content ?? '';
        tokens[c.index]!.push(...(c.logprobs?.content ?? []).map((x) => x.token));
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
    }
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(whole.usage);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    whole.choices.forEach((c, i) => {
      expect(text[i]).toBe(c.message.content);
      expect(tokens[i]).toEqual(c.logprobs!.content!.map((x) => x.token));
      expect(finish[i]).toBe(c.finish_reason);
    });
  });

  it('seeded sampling is reproducible; another seed differs; n choices are independent', async () => {
    const ask = (seed: number) => client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hello' }], seed, n: 3, temperature: 1, max_tokens: 12 });
    const a = await ask(42), b = await ask(42), c = await ask(43);
    const texts = (r: typeof a) => r.choices.map((x) => x.message.content);
    expect(a.choices.map((x) => x.index)).toEqual([0, 1, 2]);
    expect(texts(a)).toEqual(texts(b));
    expect(texts(a)).not.toEqual(texts(c));
    expect(new Set(texts(a)).size).toBeGreaterThan(1);
  });

  it('stop strings cut the text before the first occurrence', async () => {
    const free = await client.completions.create({ model: 'm', prompt: 'hello', max_tokens: 12, temperature: 0 });
    const text = free.choices[0]!.text;
    // a stop string of real characters (a tiny model may emit cut multi-byte characters, shown as U+FFFD)
    const at = [...Array(Math.max(0, text.length - 1)).keys()].find((i) => i >= 1 && !text.slice(i, i + 2).includes('\ufffd'));
    expect(at, `no two plain characters in ${JSON.stringify(text)}`).toBeDefined();
    const stop = text.slice(at!, at! + 2);
    const cut = await client.completions.create({ model: 'm', prompt: 'hello', max_tokens: 12, temperature: 0, stop: [stop] });
    expect(cut.choices[0]!.text).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.choices[0]!.finish_reason).toBe('stop');
  });

  it('answers errors in OpenAI shape: 400, 404, 405, 413', async () => {
    const shape = async (r: Response, status: number, param?: string | null) => {
      expect(r.status).toBe(status);
      const j = (await r.json()) as { error: Record<string, unknown> };
      expect(Object.keys(j.error).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(typeof j.error.message).toBe('string');
      if (param !== undefined) expect(j.error.param).toBe(param);
      return j.error;
    };
    await shape(await post('/v1/chat/completions', '{"messages": ['), 400, null);
    await shape(await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], n: 0 }), 400, 'n');
    await shape(await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], logprobs: true, top_logprobs: 21 }), 400, 'top_logprobs');
    await shape(await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }), 400, 'temperature');
    await shape(await post('/v1/completions', { prompt: 'x', logprobs: 21 }), 400, 'logprobs');
    await shape(await post('/v1/completions', { prompt: 'x'.repeat(40000) }), 400, 'prompt');
    await shape(await post('/v1/nope', {}), 404);
    const r405 = await fetch(`${h.url}/v1/completions`);
    expect(r405.headers.get('allow')).toBe('POST');
    await shape(r405, 405);
    const e413 = await shape(await post('/v1/completions', JSON.stringify({ prompt: 'x'.repeat(5 * 1024 * 1024) })), 413);
    expect(e413.message).toMatch(/4194304 bytes/);
    // the SDK sees the same errors
    await expect(client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], n: 200 })).rejects.toMatchObject({ status: 400, param: 'n' });
  });

  it('serves concurrent requests correctly, one batch at a time, without leaking tensors', async () => {
    const batch = () => Promise.all([
      client.completions.create({ model: 'm', prompt: 'hello the world', echo: true, logprobs: 3, max_tokens: 0 }),
      client.completions.create({ model: 'm', prompt: 'hello', max_tokens: 5, seed: 1 }),
      client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'the' }], max_tokens: 5, seed: 2, logprobs: true, top_logprobs: 2 }),
      client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'ab' }], max_tokens: 4, seed: 3, n: 2 }),
    ]);
    const first = await batch(); // warms caches (the causal masks per length are kept on purpose)
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const again = await batch();
      // concurrency does not change seeded answers
      expect(again[1].choices[0]!.text).toBe(first[1].choices[0]!.text);
      expect(again[3].choices.map((c) => c.message.content)).toEqual(first[3].choices.map((c) => c.message.content));
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('logs one line per request with status, time and tokens', () => {
    expect(logLines.some((l) => /^POST \/v1\/completions 200 \d+ ms \d+\+0 tokens$/.test(l))).toBe(true);
    expect(logLines.some((l) => /^POST \/v1\/nope 404 \d+ ms$/.test(l))).toBe(true);
  });
});

describe('kd serve with an API key', () => {
  let keyed: ServeHandle;
  const lines: string[] = [];
  beforeAll(async () => {
    keyed = await serve({ checkpoint: dir, port: 0, backend: 'cpu', apiKeyEnv: 'KD_TEST_KEY', env: { KD_TEST_KEY: 'sekrit-123' }, log: (l) => lines.push(l), modelName: 'keyed' });
  });
  afterAll(() => keyed?.close());

  it('answers 401 without the right Bearer token and serves with it; the key is never logged', async () => {
    const bad = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await expect(bad.models.list()).rejects.toMatchObject({ status: 401, code: 'invalid_api_key' });
    const raw = await fetch(`${keyed.url}/v1/models`);
    expect(raw.status).toBe(401);
    expect(((await raw.json()) as { error: { type: string } }).error.type).toBe('authentication_error');
    const good = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'sekrit-123', maxRetries: 0 });
    const r = await good.chat.completions.create({ model: 'keyed', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(r.model).toBe('keyed');
    expect(lines.join('\n')).not.toMatch(/sekrit/);
  });

  it('refuses to start when the key variable is unset', async () => {
    await expect(serve({ checkpoint: dir, port: 0, apiKeyEnv: 'KD_TEST_UNSET', env: {} })).rejects.toThrow(/KD_TEST_UNSET is not set/);
  });
});
