/**
 * The teacher capability probe against kd serve (real) and small fake servers that each mimic one
 * behaviour: vLLM prompt_logprobs, chat only (404 on completions), echo ignored (llama.cpp: generated
 * tokens only), echo with too few positions, no log-probs at all, and a server refusing the key.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { judgeEcho, probeTeacher, PROBE_TEXT, promptSpan } from '../../src/collect/probe.js';
import { serveTiny, type TinyServer } from '../serve/fixture.js';
import { spawn } from 'node:child_process';
import { KD_ARGS, ROOT } from '../helpers/kd.js';

/** kd run asynchronously (the fake servers live in this process: spawnSync would block them). */
function kd(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...KD_ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

type Handler = (path: string, body: Record<string, unknown>) => { status: number; json: unknown };

/** The probe text cut into word-ish tokens (as a tokenizer would). */
const TOKENS = PROBE_TEXT.match(/\s?\S+/g)!;
const top = (t: string) => ({ [t]: -0.5, ' x': -2, ' y': -3 });
const chatOk = () => ({ choices: [{ message: { role: 'assistant', content: 'Hello' }, logprobs: { content: [{ token: 'Hello', logprob: -0.1, bytes: [72], top_logprobs: [{ token: 'Hello', logprob: -0.1 }, { token: 'Hi', logprob: -2 }] }] } }], usage: { prompt_tokens: 5, completion_tokens: 1 } });
const notFound = { status: 404, json: { error: { message: 'Not found', type: 'invalid_request_error' } } };

const BEHAVIOURS: Record<string, Handler> = {
  // vLLM: echo is refused (400 here), prompt_logprobs answered per position, keyed by token id
  vllm: (p, b) => {
    if (p.endsWith('/chat/completions')) return { status: 200, json: chatOk() };
    if (b.prompt_logprobs !== undefined) {
      return { status: 200, json: { choices: [{ text: '.', prompt_logprobs: [null, ...TOKENS.slice(1).map((t, i) => ({ [String(100 + i)]: { logprob: -1, rank: 1, decoded_token: t }, '7': { logprob: -2, rank: 2, decoded_token: ' x' } }))] }], usage: { prompt_tokens: TOKENS.length, completion_tokens: 1 } } };
    }
    return { status: 400, json: { error: { message: 'echo is not supported with max_tokens 0', code: 400 } } };
  },
  // OpenAI chat models: /v1/completions does not exist for them
  chatOnly: (p) => (p.endsWith('/chat/completions') ? { status: 200, json: chatOk() } : notFound),
  // llama.cpp: echo accepted, but the log-probs are of the generated tokens only
  echoIgnored: (p) => {
    if (p.endsWith('/chat/completions')) return { status: 200, json: chatOk() };
    return { status: 200, json: { choices: [{ text: ' And', logprobs: { tokens: [' And', ' so'], token_logprobs: [-1, -2], top_logprobs: [top(' And'), top(' so')], text_offset: [0, 4] } }], usage: { prompt_tokens: TOKENS.length, completion_tokens: 2 } } };
  },
  // echo of the prompt tokens, but log-probs at only half of them
  echoSparse: (p) => {
    if (p.endsWith('/chat/completions')) return { status: 200, json: chatOk() };
    return { status: 200, json: { choices: [{ text: PROBE_TEXT, logprobs: { tokens: TOKENS, token_logprobs: TOKENS.map((_, i) => (i % 2 ? -1 : null)), top_logprobs: TOKENS.map((t, i) => (i ? top(t) : null)), text_offset: [] } }], usage: { prompt_tokens: TOKENS.length } } };
  },
  // answers every call, with no log-probs anywhere
  noLogprobs: (p) => (p.endsWith('/chat/completions')
    ? { status: 200, json: { choices: [{ message: { role: 'assistant', content: 'Hello' }, logprobs: null }] } }
    : { status: 200, json: { choices: [{ text: 'x', logprobs: null }] } }),
  auth: () => ({ status: 401, json: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } } }),
};

let servers: { name: string; url: string; close: () => void }[] = [];
let tiny: TinyServer;

async function fake(name: string, h: Handler): Promise<string> {
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (d) => (data += d));
    req.on('end', () => {
      if (req.method === 'GET' && req.url?.endsWith('/models')) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: [{ id: `fake-${name}` }] }));
        return;
      }
      const r = h(req.url ?? '', data ? JSON.parse(data) : {});
      res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.json));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`;
  servers.push({ name, url, close: () => server.close() });
  return url;
}

beforeAll(async () => {
  tiny = await serveTiny();
  for (const [n, h] of Object.entries(BEHAVIOURS)) await fake(n, h);
}, 120_000);
afterAll(async () => {
  for (const s of servers) s.close();
  servers = [];
  await tiny?.close();
});
const url = (name: string) => servers.find((s) => s.name === name)!.url;

describe('teacher capability probe', () => {
  it('kd serve scores given text through echo, one log-prob per prompt token', async () => {
    const v = await probeTeacher({ teacherUrl: `${tiny.h.url}/v1`, model: 'tiny-student' });
    expect(v.scoresGivenText).toBe(true);
    expect(v.scoreApi).toBe('echo');
    const echo = v.checks.find((c) => c.api === 'echo')!;
    expect(echo.status).toBe('ok');
    // the tiny tokenizer's own count of the probe text, minus the first position (nothing precedes it)
    expect(echo.positions).toBe(tiny.tok.encode(PROBE_TEXT).length - 1);
    expect(echo.promptTokens).toBe(tiny.tok.encode(PROBE_TEXT).length);
    expect(v.chatLogprobs).toBe(true);
  });

  it('vLLM prompt_logprobs is found when echo is refused', async () => {
    const v = await probeTeacher({ teacherUrl: url('vllm') });
    expect(v.model).toBe('fake-vllm'); // from GET /models
    expect(v.scoreApi).toBe('vllm');
    expect(v.checks.find((c) => c.api === 'vllm')).toMatchObject({ status: 'ok', positions: TOKENS.length - 1, topK: 2 });
  });

  it('a chat-only teacher answers only its own text', async () => {
    const v = await probeTeacher({ teacherUrl: url('chatOnly'), model: 'gpt-4o-mini' });
    expect(v).toMatchObject({ scoresGivenText: false, scoreApi: null, chatLogprobs: true });
    expect(v.checks.map((c) => c.status)).toEqual(['unsupported', 'unsupported', 'ok']);
    expect(v.summary).toMatch(/only its own answers/);
  });

  it('echo accepted but ignored (llama.cpp) is caught, not taken for scoring', async () => {
    const v = await probeTeacher({ teacherUrl: url('echoIgnored'), model: 'llama' });
    expect(v.scoresGivenText).toBe(false);
    const echo = v.checks.find((c) => c.api === 'echo')!;
    expect(echo.status).toBe('wrong');
    expect(echo.detail).toMatch(/echo ignored/);
  });

  it('echo with log-probs at only some prompt positions is wrong', async () => {
    const v = await probeTeacher({ teacherUrl: url('echoSparse'), model: 'm' });
    expect(v.scoresGivenText).toBe(false);
    expect(v.checks[0]!.status).toBe('wrong');
    expect(v.checks[0]!.detail).toMatch(/log-probs for \d+ prompt tokens/);
  });

  it('no log-probs at all: neither scoring nor chat', async () => {
    const v = await probeTeacher({ teacherUrl: url('noLogprobs'), model: 'm' });
    expect(v).toMatchObject({ scoresGivenText: false, chatLogprobs: false });
    expect(v.summary).toMatch(/no usable log-probs/);
  });

  it('a refused key and an unreachable server are one clear error', async () => {
    await expect(probeTeacher({ teacherUrl: url('auth'), model: 'm' })).rejects.toThrow(/refused the probe: HTTP 401/);
    await expect(probeTeacher({ teacherUrl: 'http://127.0.0.1:9/v1', model: 'm', timeoutMs: 5000 })).rejects.toThrow(/127\.0\.0\.1:9/);
  });

  it('promptSpan and judgeEcho: a leading special token is allowed, a different text is not', () => {
    expect(promptSpan(['<s>', 'ab', 'c'], 'abc')).toEqual({ first: 1, end: 3 });
    expect(promptSpan(['ab', 'cd'], 'abc')).toBeNull();
    expect(judgeEcho({ choices: [{ logprobs: { tokens: ['a', 'b'], token_logprobs: [null, -1], top_logprobs: [null, { b: -1 }] } }] }, 'ab').status).toBe('ok');
    expect(judgeEcho({ choices: [{ text: 'x' }] }).status).toBe('unsupported');
  });

  it('kd doctor --teacher-url and kd collect --probe print the verdict, human and --json', async () => {
    const human = await kd(['doctor', '--teacher-url', url('chatOnly'), '--teacher-model', 'gpt-4o-mini']);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/verdict\s+ANSWERS ONLY/);
    const json = await kd(['collect', '--probe', '--teacher-url', url('vllm'), '--json']);
    expect(json.status, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ scoresGivenText: true, scoreApi: 'vllm', model: 'fake-vllm' });
    const bad = await kd(['collect', '--probe', '--teacher-url', url('auth'), '--model', 'm']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/HTTP 401/);
    expect(bad.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  }, 120_000);
});
