import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/serve/api-error.js';
import { CHAT_STOP, renderChat } from '../../src/serve/chat-template.js';
import { planWindows } from '../../src/serve/engine.js';
import { DEFAULT_LIMITS, parseBody, validateChat, validateCompletion } from '../../src/serve/validate.js';

const lim = { ...DEFAULT_LIMITS, vocabSize: 300 };
const chat = (extra: Record<string, unknown> = {}) => validateChat({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra }, lim);
const cmpl = (extra: Record<string, unknown> = {}) => validateCompletion({ model: 'm', prompt: 'hi', ...extra }, lim);

/** The ApiError a call throws (fails the test when it does not throw one). */
function apiError(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('expected an ApiError');
}

describe('request validation', () => {
  it('fills OpenAI defaults', () => {
    expect(cmpl()).toMatchObject({ prompts: ['hi'], maxTokens: 16, temperature: 1, topP: 1, n: 1, seed: null, stop: [], echo: false, logprobs: null, stream: false });
    expect(chat()).toMatchObject({ maxTokens: 256, logprobs: false, topLogprobs: 0, includeUsage: false, messages: [{ role: 'user', content: 'hi' }] });
  });

  it('reads max_completion_tokens before the deprecated max_tokens, and allows max_tokens 0 only on completions', () => {
    expect(chat({ max_tokens: 5, max_completion_tokens: 7 }).maxTokens).toBe(7);
    expect(chat({ max_tokens: 5 }).maxTokens).toBe(5);
    expect(cmpl({ max_tokens: 0 }).maxTokens).toBe(0);
    expect(apiError(() => chat({ max_tokens: 0 })).param).toBe('max_tokens');
    expect(apiError(() => cmpl({ max_tokens: 5000 })).message).toMatch(/between 0 and 4096/);
  });

  it('prompts: a string, strings, token ids, or lists of token ids; never empty, ids inside the vocabulary', () => {
    expect(cmpl({ prompt: ['a', 'b'] }).prompts).toEqual(['a', 'b']);
    expect(cmpl({ prompt: [1, 2, 3] }).prompts).toEqual([[1, 2, 3]]);
    expect(cmpl({ prompt: [[1], [2, 3]] }).prompts).toEqual([[1], [2, 3]]);
    expect(apiError(() => cmpl({ prompt: '' })).message).toMatch(/empty/);
    expect(apiError(() => cmpl({ prompt: [5, 300] })).message).toMatch(/token id 300 is outside the vocabulary \(0\.\.299\)/);
    expect(apiError(() => cmpl({ prompt: undefined })).code).toBe('missing_required_parameter');
    expect(apiError(() => cmpl({ prompt: [{}] })).param).toBe('prompt');
  });

  it('rejects wrong types and out-of-range values naming the parameter', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ n: 0 }, 'n'], [{ n: 129 }, 'n'], [{ n: 1.5 }, 'n'], [{ temperature: 3 }, 'temperature'], [{ temperature: '1' }, 'temperature'],
      [{ top_p: 1.1 }, 'top_p'], [{ logprobs: 'yes' }, 'logprobs'], [{ top_logprobs: 21, logprobs: true }, 'top_logprobs'],
      [{ top_logprobs: 2 }, 'top_logprobs'], [{ stop: 5 }, 'stop'], [{ stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
      [{ seed: 1.5 }, 'seed'], [{ stream: 'yes' }, 'stream'], [{ stream_options: { include_usage: 1 } }, 'stream_options.include_usage'],
      [{ model: 3 }, 'model'], [{ messages: [] }, 'messages'], [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }, 'messages[0].content[0]'],
      [{ tools: [{ type: 'function' }] }, 'tools'], [{ logit_bias: { 5: 10 } }, 'logit_bias'], [{ prompt_logprobs: 5 }, 'prompt_logprobs'],
    ];
    for (const [extra, param] of cases) {
      const e = apiError(() => chat(extra));
      expect(e.status, JSON.stringify(extra)).toBe(400);
      expect(e.param, JSON.stringify(extra)).toBe(param);
      expect(e.body().error.type).toBe('invalid_request_error');
    }
    expect(apiError(() => cmpl({ logprobs: 21 })).param).toBe('logprobs');
    expect(apiError(() => cmpl({ best_of: 3 })).param).toBe('best_of');
  });

  it('accepts neutral values of unsupported parameters and ignores unknown ones', () => {
    expect(chat({ presence_penalty: 0, logit_bias: {}, response_format: { type: 'text' }, tool_choice: 'none', some_vendor_extension: { x: 1 } }).n).toBe(1);
    expect(chat({ stop: 'x', seed: 2 ** 40, temperature: null }).stop).toEqual(['x']);
    expect(chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }] }).messages[0]!.content).toBe('ab');
  });

  it('parses only JSON objects', () => {
    expect(apiError(() => parseBody('{"a":')).code).toBe('invalid_json');
    expect(apiError(() => parseBody('[1]')).status).toBe(400);
    expect(parseBody('{"a":1}')).toEqual({ a: 1 });
  });
});

describe('chat template', () => {
  it('renders one "role: content" line per message and opens the assistant turn', () => {
    expect(renderChat([{ role: 'developer', content: 'terse' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Yo' }, { role: 'user', content: 'Again' }]))
      .toBe('system: terse\nuser: Hi\nassistant: Yo\nuser: Again\nassistant: ');
    expect(CHAT_STOP).toBe('\nuser:');
  });
});

describe('planWindows', () => {
  it('scores every position after the first exactly once, each window at most seqLen tokens', () => {
    expect(planWindows(1, 8)).toEqual([]);
    expect(planWindows(5, 8)).toEqual([{ start: 0, length: 5, from: 1, to: 5 }]);
    for (const [L, S] of [[9, 8], [20, 8], [33, 16], [100, 7]] as const) {
      const ws = planWindows(L, S);
      const scored = ws.flatMap((w) => Array.from({ length: w.to - w.from }, (_, i) => w.from + i));
      expect(scored).toEqual(Array.from({ length: L - 1 }, (_, i) => i + 1));
      for (const w of ws) {
        expect(w.length).toBe(S);
        expect(w.start + w.length).toBe(w.to); // the window ends at its last scored token
        expect(w.from - 1).toBeGreaterThanOrEqual(w.start); // the token before the first scored one is inside
        if (w.start > 0) expect(w.from - w.start).toBeGreaterThanOrEqual(S - Math.floor(S / 2)); // context kept
      }
    }
  });
});
