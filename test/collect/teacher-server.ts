/**
 * A fault-injecting OpenAI-compatible teacher for tests and the bench (node:http on 127.0.0.1).
 *
 * Serves /v1/chat/completions (logprobs + top_logprobs) and /v1/completions (echo + logprobs, or
 * vLLM's prompt_logprobs) with deterministic answers, and can inject per attempt: 429 with
 * retry-after, 500/503, a hang past the client's timeout, a connection reset, a body that is not
 * JSON, an answer without log-probs, a 400. It counts requests per `x-kd-request-hash`, and which of
 * them it answered with a complete 200.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = '429' | '500' | '503' | 'hang' | 'reset' | 'badjson' | 'nologprobs' | '400' | '401';

export interface FaultContext {
  hash: string;
  /** 1 for the first request with this hash, 2 for its first retry, … */
  attempt: number;
  /** Requests received so far, this one included. */
  seq: number;
  body: Record<string, unknown>;
}

export interface TeacherServerOptions {
  latencyMs?: number;
  fault?: (c: FaultContext) => Fault | null;
  /** retry-after header on injected 429s (seconds, as a string), or retry-after-ms. */
  retryAfter?: string;
  retryAfterMs?: string;
  /** Send x-ratelimit-* headers with these figures. */
  rateLimit?: { remainingRequests: number; resetRequests: string };
  /** Chat: alternatives to return per position (default: as asked). */
  altsPerPosition?: number;
  /** Chat: drop `bytes` everywhere. */
  noBytes?: boolean;
  /** Chat: the last alternative of every position gets the -9999 sentinel. */
  sentinel?: boolean;
  /** Tokens generated per chat answer, at most (default 4). */
  genTokens?: number;
  /** Record the order of every request (for tests; off in the bench). */
  keepLog?: boolean;
  /**
   * The prompt tokens billed in `usage`, from the prompt text (completions) or the joined messages
   * (chat); default: the fake tokenizer's count (one per word). E.g. UTF-8 bytes for a byte-level teacher.
   */
  billPromptTokens?: (prompt: string) => number;
}

export interface TeacherServer {
  url: string;
  port: number;
  /** Requests received per hash. */
  received: Map<string, number>;
  /** Complete 200 answers sent per hash. */
  answered: Map<string, number>;
  log: { hash: string; status: number | Fault; at: number }[];
  total(): number;
  close(): Promise<void>;
}

/** FNV-1a: a cheap deterministic hash so the server is not the bottleneck in the bench. */
const h32 = (s: string) => {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
};
const lp = (s: string) => -(0.05 + (h32(s) % 500) / 100);

/** Words with their leading space, as the fake tokenizer's tokens. */
export function fakeTokens(text: string): string[] {
  return text.match(/\s*\S+|\s+/gu) ?? [];
}

/** One generated position: the token, its log-prob and bytes, and k alternatives (the token first). */
function chatPosition(token: string, i: number, k: number, o: TeacherServerOptions): unknown {
  const alts = Array.from({ length: k }, (_, j) => {
    const t = j === 0 ? token : ` a${j}`;
    return { token: t, logprob: o.sentinel && j === k - 1 ? -9999 : lp(`${t}${i}`) - j, ...(o.noBytes ? {} : { bytes: [...Buffer.from(t)] }) };
  });
  return { token, logprob: lp(`${token}${i}`), ...(o.noBytes ? {} : { bytes: [...Buffer.from(token)] }), top_logprobs: alts };
}

/** What a chat answer holds, before the positions are built: per choice its tokens. */
function chatPlan(body: Record<string, unknown>, o: TeacherServerOptions) {
  const messages = body.messages as { content: string }[];
  const prompt = messages.map((m) => m.content).join('\n');
  const k = Math.min(Number(body.top_logprobs ?? 0), o.altsPerPosition ?? 99);
  const max = Number(body.max_completion_tokens ?? body.max_tokens ?? 16);
  const n = Number(body.n ?? 1);
  const gen = Math.min(max, o.genTokens ?? 4);
  const choices = Array.from({ length: n }, (_, c) => Array.from({ length: gen }, (_, i) => (i === 0 ? 'é' : ` t${h32(`${prompt}/${c}/${i}`) % 100}`)));
  const promptTokens = o.billPromptTokens ? o.billPromptTokens(prompt) : fakeTokens(prompt).length + 3;
  return {
    k, choices, finishReason: gen < max ? 'stop' : 'length',
    usage: { prompt_tokens: promptTokens, completion_tokens: gen * n, total_tokens: promptTokens + gen * n },
  };
}

/** The chat answer as an object (the reference for {@link chatAnswerJson}). */
export function chatAnswer(body: Record<string, unknown>, o: TeacherServerOptions): { choices: { logprobs: unknown }[] } & Record<string, unknown> {
  const p = chatPlan(body, o);
  const choices = p.choices.map((tokens, c) => ({
    index: c, message: { role: 'assistant', content: tokens.join('') },
    logprobs: { content: tokens.map((t, i) => chatPosition(t, i, p.k, o)) }, finish_reason: p.finishReason,
  }));
  return { id: 'chatcmpl-test', object: 'chat.completion', created: 0, model: body.model, system_fingerprint: 'fp_test', choices, usage: p.usage };
}

/**
 * The same answer serialized: exactly `JSON.stringify(chatAnswer(body, o))` (with `logprobs: null`
 * when `noLogprobs`), but each position's JSON comes from `cache` — positions depend only on the
 * token, its index and k, so the bench server spends its time on HTTP, not on building ~17 KB
 * answers. The answer's content and size are unchanged.
 */
export function chatAnswerJson(body: Record<string, unknown>, o: TeacherServerOptions, cache: Map<string, string>, noLogprobs = false): string {
  const p = chatPlan(body, o);
  const position = (t: string, i: number) => {
    const key = `${i}\u0000${p.k}\u0000${t}`;
    let json = cache.get(key);
    if (json === undefined) {
      if (cache.size >= 100_000) cache.clear();
      json = JSON.stringify(chatPosition(t, i, p.k, o));
      cache.set(key, json);
    }
    return json;
  };
  const choices = p.choices.map((tokens, c) => `{"index":${c},"message":${JSON.stringify({ role: 'assistant', content: tokens.join('') })},`
    + `"logprobs":${noLogprobs ? 'null' : `{"content":[${tokens.map(position).join(',')}]}`},"finish_reason":${JSON.stringify(p.finishReason)}}`);
  const model = body.model === undefined ? '' : `"model":${JSON.stringify(body.model)},`;
  return `{"id":"chatcmpl-test","object":"chat.completion","created":0,${model}"system_fingerprint":"fp_test","choices":[${choices.join(',')}],"usage":${JSON.stringify(p.usage)}}`;
}

function completionAnswer(body: Record<string, unknown>, o: TeacherServerOptions): unknown {
  const prompt = String(body.prompt);
  const toks = fakeTokens(prompt);
  const offsets: number[] = [];
  let at = 0;
  for (const t of toks) {
    offsets.push(at);
    at += Array.from(t).length;
  }
  const billed = o.billPromptTokens ? o.billPromptTokens(prompt) : toks.length;
  const usage = { prompt_tokens: billed, completion_tokens: Number(body.max_tokens ?? 0), total_tokens: billed + Number(body.max_tokens ?? 0) };
  if (body.prompt_logprobs !== undefined) {
    const k = Number(body.prompt_logprobs);
    // vLLM: position 0 null; then {id: {logprob, rank, decoded_token}}, the prompt token first.
    const idOf = (t: string) => 1000 + (h32(t) % 50000);
    const pl = toks.map((t, i) => {
      if (i === 0) return null;
      const entries: [string, unknown][] = [[String(idOf(t)), { logprob: lp(t), rank: k + 1, decoded_token: t }]];
      for (let j = 1; j <= k; j++) entries.push([String(j * 7), { logprob: -j, rank: j, decoded_token: ` a${j}` }]);
      return entries;
    });
    // Hand-written JSON so that the prompt token's id key comes first, as vLLM (Python) sends it.
    const plJson = `[${pl.map((e) => (e === null ? 'null' : `{${e.map(([key, v]) => `${JSON.stringify(key)}:${JSON.stringify(v)}`).join(',')}}`)).join(',')}]`;
    return `{"id":"cmpl-test","object":"text_completion","model":${JSON.stringify(body.model)},"choices":[{"index":0,"text":" x","logprobs":null,"finish_reason":"length","prompt_logprobs":${plJson}}],"usage":${JSON.stringify(usage)}}`;
  }
  const k = Number(body.logprobs ?? 0);
  const top = toks.map((t, i) => (i === 0 ? null : Object.fromEntries([[t, lp(t)], ...Array.from({ length: k }, (_, j) => [` a${j + 1}`, -1 - j])].slice(0, k + 1))));
  // without echo, a continuation of max_tokens (at most 4) fake tokens, different per temperature
  const gen = Array.from({ length: Math.min(4, Number(body.max_tokens ?? 0)) }, (_, i) => ` c${h32(`${prompt}/${body.temperature}/${i}`) % 100}`).join('');
  return {
    id: 'cmpl-test', object: 'text_completion', model: body.model,
    choices: [{ index: 0, text: body.echo ? prompt : gen, finish_reason: 'length', logprobs: { tokens: toks, token_logprobs: toks.map((t, i) => (i === 0 ? null : lp(t))), top_logprobs: top, text_offset: offsets } }],
    usage,
  };
}

export async function startTeacherServer(o: TeacherServerOptions = {}): Promise<TeacherServer> {
  const received = new Map<string, number>();
  const answered = new Map<string, number>();
  const log: TeacherServer['log'] = [];
  let seq = 0;
  const positions = new Map<string, string>();
  const send = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}, hash?: string) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body, () => {
      if (status === 200 && hash) answered.set(hash, (answered.get(hash) ?? 0) + 1);
    });
  };
  const error = (res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}) =>
    send(res, status, JSON.stringify({ error: { message, type: 'test', param: null, code: status === 429 ? 'rate_limit_exceeded' : null } }), headers);

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const arrived = performance.now();
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const hash = String(req.headers['x-kd-request-hash'] ?? 'none');
    const attempt = (received.get(hash) ?? 0) + 1;
    received.set(hash, attempt);
    seq++;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      return error(res, 400, 'body is not JSON');
    }
    const fault = o.fault?.({ hash, attempt, seq, body }) ?? null;
    if (o.keepLog !== false) log.push({ hash, status: fault ?? 200, at: Date.now() });
    // The latency counts from the request's arrival, so reading and parsing its body are inside it.
    if (o.latencyMs) await new Promise((r) => setTimeout(r, Math.max(0, o.latencyMs! - (performance.now() - arrived))));
    const rl: Record<string, string> = o.rateLimit
      ? { 'x-ratelimit-remaining-requests': String(o.rateLimit.remainingRequests), 'x-ratelimit-reset-requests': o.rateLimit.resetRequests }
      : {};
    switch (fault) {
      case 'hang':
        return; // never answer; the socket is closed by close()
      case 'reset':
        req.socket.destroy();
        return;
      case '429':
        return error(res, 429, 'Rate limit reached', { ...(o.retryAfter ? { 'retry-after': o.retryAfter } : {}), ...(o.retryAfterMs ? { 'retry-after-ms': o.retryAfterMs } : {}) });
      case '500':
      case '503':
      case '400':
      case '401':
        return error(res, Number(fault), `injected ${fault}`);
      case 'badjson':
        return send(res, 200, '{"id": "cmpl-trunc", "choices": [', rl);
      default:
        break;
    }
    if (req.url === '/v1/chat/completions') {
      return send(res, 200, chatAnswerJson(body, o, positions, fault === 'nologprobs'), rl, hash);
    }
    if (req.url === '/v1/completions') {
      const answer = completionAnswer(body, o);
      const text = typeof answer === 'string' ? answer : JSON.stringify(fault === 'nologprobs' ? { ...(answer as object), choices: [{ index: 0, text: '', logprobs: null }] } : answer);
      return send(res, 200, text, rl, hash);
    }
    return error(res, 404, `no route ${req.url}`);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      res.destroy(e as Error);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    received,
    answered,
    log,
    total: () => seq,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
