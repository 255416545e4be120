import { describe, expect, it } from 'vitest';
import { parseChat, parseEcho, parseJsonKeepingIdOrder, parseVllm, responsesAsChat, type ParseContext } from '../../src/collect/parse.js';
import type { PlannedRequest } from '../../src/collect/request.js';

function ctx(over: Partial<PlannedRequest> = {}, topK = 2): ParseContext {
  const req: PlannedRequest = {
    endpoint: 'chat', body: {}, hash: 'h1', inputId: 'row-1', row: 1, chunkIndex: 0, chunkCount: 1,
    chunkStart: null, scoreFrom: null, text: null, ...over,
  };
  return { req, topK, latencyMs: 12.5, attempts: 1, completedAt: 1_700_000_000_000 };
}

// Literal shapes of the OpenAI wire format: {token, logprob, bytes: int[]|null, top_logprobs: [{token, logprob, bytes}]}.
const chatFixture = {
  id: 'chatcmpl-1', object: 'chat.completion', model: 'gpt-4o-mini-2024-07-18', system_fingerprint: null,
  choices: [{
    index: 0, finish_reason: 'length', message: { role: 'assistant', content: 'Hi\u00e9' },
    logprobs: {
      content: [
        { token: 'Hi', logprob: -0.25, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.25, bytes: [72, 105] }, { token: 'Hello', logprob: -1.5, bytes: [72, 101, 108, 108, 111] }] },
        // a token holding part of a UTF-8 character: bytes are the truth, not the token string
        { token: '\\xc3', logprob: -0.5, bytes: [195], top_logprobs: [{ token: '\\xc3', logprob: -0.5, bytes: [195] }, { token: ' x', logprob: -9999.0, bytes: [32, 120] }] },
        // Ollama: bytes absent, fewer alternatives than asked
        { token: '\\xa9', logprob: -9999.0, top_logprobs: [{ token: '\\xa9', logprob: -0.1 }] },
      ],
    },
  }],
  usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12, prompt_tokens_details: { cached_tokens: 4 } },
};

describe('chat completions → raw records', () => {
  it('keeps tokens, bytes, top-k, usage; -9999 becomes null; missing bytes null; short top-k counted', () => {
    const r = parseChat(chatFixture, ctx());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const [rec] = r.records;
    expect(r.records).toHaveLength(1);
    expect(rec!.tokens).toEqual(['Hi', '\\xc3', '\\xa9']);
    expect(rec!.token_bytes.map((b) => (b ? [...b] : null))).toEqual([[72, 105], [195], null]);
    expect(rec!.token_logprobs).toEqual([-0.25, -0.5, null]);
    expect(rec!.top_tokens).toEqual([['Hi', 'Hello'], ['\\xc3', ' x'], ['\\xa9']]);
    expect(rec!.top_logprobs).toEqual([[-0.25, -1.5], [-0.5, null], [-0.1]]);
    expect(rec!.top_bytes[2]).toEqual([null]);
    expect(rec!.top_ids).toBeNull();
    expect(rec!.finish_reason).toBe('length');
    expect(rec!.prompt_tokens).toBe(9);
    expect(rec!.completion_tokens).toBe(3);
    expect(rec!.cached_tokens).toBe(4);
    expect(rec!.system_fingerprint).toBeNull();
    expect(rec!.model).toBe('gpt-4o-mini-2024-07-18');
    expect(rec!.input_id).toBe('row-1');
    expect(r.stats).toEqual({ positions: 3, sentinels: 2, shortTopK: 1, missingBytes: 1 });
    // the bytes rebuild the text, the token strings do not
    expect(Buffer.concat(rec!.token_bytes.filter((b): b is Uint8Array => b !== null)).toString('utf8')).toBe('Hi\ufffd');
  });

  it('cuts alternatives to k and puts usage on choice 0 only when n > 1', () => {
    const two = { ...chatFixture, choices: [chatFixture.choices[0], { ...chatFixture.choices[0], index: 1 }] };
    const r = parseChat(two, ctx({}, 1));
    expect(r.ok && r.records.map((x) => [x.choice_index, x.prompt_tokens, x.top_tokens[0]!.length])).toEqual([[0, 9, 1], [1, null, 1]]);
  });

  it('rejects an answer without logprobs and one with malformed logprobs', () => {
    const none = { ...chatFixture, choices: [{ ...chatFixture.choices[0], logprobs: null }] };
    expect(parseChat(none, ctx())).toMatchObject({ ok: false, reason: 'no_logprobs' });
    const bad = structuredClone(chatFixture) as { choices: { logprobs: { content: Record<string, unknown>[] } }[] };
    bad.choices[0]!.logprobs.content[1]!.logprob = 'x';
    expect(parseChat(bad, ctx())).toMatchObject({ ok: false, reason: 'malformed_logprobs', detail: expect.stringContaining('position 1') });
    const badBytes = structuredClone(chatFixture) as { choices: { logprobs: { content: Record<string, unknown>[] } }[] };
    badBytes.choices[0]!.logprobs.content[0]!.bytes = [300];
    expect(parseChat(badBytes, ctx())).toMatchObject({ ok: false, reason: 'malformed_logprobs' });
    expect(parseChat({ error: { message: 'x' } }, ctx())).toMatchObject({ ok: false, reason: 'malformed_response' });
  });

  it('names the choice, position and alternative of a malformed value', () => {
    const broken = (edit: (c: Record<string, unknown>[]) => void, k = 2) => {
      const b = structuredClone(chatFixture) as { choices: { index: number; logprobs: { content: Record<string, unknown>[] } }[] };
      b.choices[0]!.index = 3;
      edit(b.choices[0]!.logprobs.content);
      const r = parseChat(b, ctx({}, k));
      return r.ok ? null : r.detail;
    };
    const alt = (c: Record<string, unknown>[], i: number, j: number) => (c[i]!.top_logprobs as Record<string, unknown>[])[j]!;
    expect(broken((c) => { alt(c, 1, 1).logprob = 0.5; })).toBe('choice 3 position 1 alternative 1: log-prob 0.5 is not a number ≤ 0');
    expect(broken((c) => { alt(c, 0, 1).bytes = [1, 2.5]; })).toBe('choice 3 position 0 alternative 1: bytes must be an array of 0..255');
    expect(broken((c) => { alt(c, 0, 0).token = 7; })).toBe('choice 3 position 0 alternative 0: token must be a string');
    expect(broken((c) => { (c[1]!.top_logprobs as unknown[])[0] = 'x'; })).toBe('choice 3 position 1 alternative 0: not an object');
    // after the alternatives of position 0, a fault of position 1 itself names no alternative
    expect(broken((c) => { c[1]!.bytes = 'x'; })).toBe('choice 3 position 1: bytes must be an array of 0..255');
    expect(broken((c) => { c[2]!.top_logprobs = {}; })).toBe('choice 3 position 2: top_logprobs must be an array');
    expect(broken((c) => { c[2] = 5 as never; })).toBe('choice 3 position 2: not an object');
    // an alternative past k is not read
    expect(broken((c) => { alt(c, 0, 1).logprob = 'x'; }, 1)).toBeNull();
  });
});

// Legacy completions with echo: {tokens, token_logprobs (first null), top_logprobs ({token: logprob}|null), text_offset}.
const echoFixture = {
  id: 'cmpl-1', object: 'text_completion', model: 'davinci-002',
  choices: [{
    index: 0, text: 'The cat sat', finish_reason: 'length',
    logprobs: {
      tokens: ['The', ' cat', ' sat'],
      token_logprobs: [null, -4.2, -2.5],
      top_logprobs: [null, { ' dog': -3.0, ' cat': -4.2, ' first': -3.5 }, { ' sat': -2.5, ' is': -1.0 }],
      text_offset: [0, 3, 7],
    },
  }],
  usage: { prompt_tokens: 3, completion_tokens: 0, total_tokens: 3 },
};

describe('legacy echo completions → raw records', () => {
  const req = { endpoint: 'completions' as const, text: 'The cat sat', chunkStart: 100, scoreFrom: 100 };
  it('first position has null log-prob and no alternatives; top-k sorted and cut; offsets absolute', () => {
    const r = parseEcho(echoFixture, ctx(req, 2));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const rec = r.records[0]!;
    expect(rec.mode).toBe('score');
    expect(rec.tokens).toEqual(['The', ' cat', ' sat']);
    expect(rec.token_logprobs).toEqual([null, -4.2, -2.5]);
    expect(rec.top_tokens).toEqual([null, [' dog', ' first'], [' is', ' sat']]);
    expect(rec.top_logprobs).toEqual([null, [-3.0, -3.5], [-1.0, -2.5]]);
    expect(rec.text_offsets).toEqual([100, 103, 107]);
    expect(rec.token_bytes).toEqual([null, null, null]);
    expect(rec.chunk_start).toBe(100);
  });

  it('drops a generated token past the prompt (max_tokens 1)', () => {
    const gen = structuredClone(echoFixture);
    const lp = gen.choices[0]!.logprobs;
    lp.tokens.push(' on');
    lp.token_logprobs.push(-0.3);
    (lp.top_logprobs as unknown[]).push({ ' on': -0.3 });
    lp.text_offset.push(11);
    const r = parseEcho(gen, ctx(req, 2));
    expect(r.ok && r.records[0]!.tokens).toEqual(['The', ' cat', ' sat']);
  });

  it('rejects missing logprobs and arrays of unequal length', () => {
    expect(parseEcho({ ...echoFixture, choices: [{ index: 0, text: '', logprobs: null }] }, ctx(req))).toMatchObject({ ok: false, reason: 'no_logprobs' });
    const bad = structuredClone(echoFixture);
    bad.choices[0]!.logprobs.token_logprobs.pop();
    expect(parseEcho(bad, ctx(req))).toMatchObject({ ok: false, reason: 'malformed_logprobs' });
  });
});

// vLLM prompt_logprobs, literal from the doc: first entry null, then {"9906": {"logprob": -3.1, "rank": 4, "decoded_token": "Hello"}}.
const vllmText = `{"id":"cmpl-v","object":"text_completion","model":"meta-llama/Llama-3.1-8B","choices":[{"index":0,"text":"!","logprobs":null,"finish_reason":"length",
"prompt_logprobs":[null,{"9906": {"logprob": -3.1, "rank": 4, "decoded_token": "Hello"},"40": {"logprob": -0.5, "rank": 1, "decoded_token": "I"},"791": {"logprob": -1.2, "rank": 2, "decoded_token": "The"}},
{"1917":{"logprob":-0.2,"rank":1,"decoded_token":" world"},"11":{"logprob":-9999.0,"rank":2,"decoded_token":","}}]}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`;

describe('vLLM prompt_logprobs → raw records', () => {
  it('keeps the id keys in server order (the prompt token first)', () => {
    const j = parseJsonKeepingIdOrder(vllmText) as { choices: { prompt_logprobs: (Record<string, unknown> | null)[] }[] };
    expect(Object.keys(j.choices[0]!.prompt_logprobs[1]!)).toEqual(['#9906', '#40', '#791']);
    // plain JSON.parse would reorder them numerically: the reason for the helper
    const plain = JSON.parse(vllmText) as typeof j;
    expect(Object.keys(plain.choices[0]!.prompt_logprobs[1]!)).toEqual(['40', '791', '9906']);
  });

  it('reads the prompt token, top-k by rank with ids, sentinel → null, offsets from decoded tokens', () => {
    const r = parseVllm(parseJsonKeepingIdOrder(vllmText), ctx({ endpoint: 'completions', text: '<s>Hello world', chunkStart: 0, scoreFrom: 0 }, 2));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const rec = r.records[0]!;
    expect(rec.tokens).toEqual([null, 'Hello', ' world']);
    expect(rec.token_logprobs).toEqual([null, -3.1, -0.2]);
    expect(rec.top_ids).toEqual([null, [40, 791], [1917, 11]]);
    expect(rec.top_tokens).toEqual([null, ['I', 'The'], [' world', ',']]);
    expect(rec.top_logprobs).toEqual([null, [-0.5, -1.2], [-0.2, null]]);
    expect(rec.text_offsets).toEqual([0, 3, 8]);
    expect(r.stats.sentinels).toBe(1);
  });

  it('finds prompt_logprobs at the top level (chat) and rejects their absence', () => {
    const chat = { id: 'x', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: '' } }], prompt_logprobs: [null, { '#5': { logprob: -1, rank: 1, decoded_token: 'a' } }] };
    const r = parseVllm(chat, ctx({ endpoint: 'completions', text: 'Xa', chunkStart: 0, scoreFrom: 0 }, 1));
    expect(r.ok && r.records[0]!.tokens).toEqual([null, 'a']);
    expect(parseVllm({ choices: [{ index: 0, text: '' }] }, ctx())).toMatchObject({ ok: false, reason: 'no_logprobs' });
  });
});

describe('the Responses API (collect --chat-api responses)', () => {
  const answer = (logprobs: unknown, status = 'incomplete') => ({
    id: 'resp_1', object: 'response', status, model: 'gpt-4o-mini',
    output: [{ type: 'reasoning', summary: [] }, { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Hi', annotations: [], ...(logprobs ? { logprobs } : {}) }] }],
    usage: { input_tokens: 9, input_tokens_details: { cached_tokens: 4 }, output_tokens: 1, total_tokens: 10 },
  });
  const req = { endpoint: 'responses' as const, body: { input: [{ role: 'user', content: 'hi' }] } };

  it('an output_text\'s log-probs become one chat record: usage, finish reason, prompt', () => {
    const lp = [{ token: 'Hi', logprob: -0.25, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.25, bytes: [72, 105] }, { token: 'Ho', logprob: -2, bytes: [72, 111] }] }];
    const r = parseChat(responsesAsChat(answer(lp)), ctx(req));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.records).toHaveLength(1);
    expect(r.records[0]).toMatchObject({ mode: 'chat', tokens: ['Hi'], token_logprobs: [-0.25], top_tokens: [['Hi', 'Ho']], finish_reason: 'length',
      prompt_tokens: 9, completion_tokens: 1, cached_tokens: 4, model: 'gpt-4o-mini', prompt: 'user: hi\n' });
  });

  it('an answer without log-probs, or without output, is rejected as such', () => {
    expect(parseChat(responsesAsChat(answer(undefined, 'completed')), ctx(req))).toMatchObject({ ok: false, reason: 'no_logprobs' });
    expect(parseChat(responsesAsChat({ error: { message: 'x' } }), ctx(req))).toMatchObject({ ok: false, reason: 'malformed_response' });
  });
});
