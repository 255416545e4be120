/**
 * Capability probe of a teacher URL (`kd doctor --teacher-url`, `kd collect --probe`): can it score
 * *given* text (teacher-forced log-probs of every prompt token: legacy completions echo+logprobs as kd
 * serve and OpenAI's old models do, or vLLM's prompt_logprobs), or only its own answers (chat
 * completions log-probs: OpenAI chat models, llama.cpp, Ollama)?
 *
 * Each test scores one known short text and checks what came back, not just the status: one log-prob
 * per prompt token (the prompt's tokens joined must rebuild the text, and there must be as many as the
 * server billed as prompt tokens), each with alternatives. llama.cpp accepts `echo` and silently answers
 * with the generated tokens' log-probs only: that is "echo ignored", not a pass.
 *
 * The probe sends three tiny requests (~25 prompt tokens each, at most 4 generated): a paid teacher
 * bills them (a fraction of a cent).
 */
import { KdError } from '../core/errors.js';
import { makeTeacherClient, SendError, type TeacherClient } from './client.js';
import type { Endpoint, PlannedRequest, ScoreApi } from './request.js';

export const PROBE_TEXT = 'The history of every nation is written in plain words, one sentence at a time.';
const PROBE_TOP_K = 5;

export type ProbeStatus = 'ok' | 'unsupported' | 'wrong' | 'error';

export interface ProbeCheck {
  /** echo: /v1/completions echo+logprobs; vllm: /v1/completions prompt_logprobs; chat: /v1/chat/completions logprobs */
  api: 'echo' | 'vllm' | 'chat';
  status: ProbeStatus;
  /** For people: what came back. */
  detail: string;
  /** Prompt positions with a log-prob (score APIs), or generated tokens with log-probs (chat). */
  positions: number;
  /** Prompt tokens the server reported (usage.prompt_tokens), when it did. */
  promptTokens: number | null;
  /** Most alternatives seen at one position. */
  topK: number;
}

export interface ProbeVerdict {
  baseURL: string;
  model: string;
  /** The teacher returns teacher-forced log-probs of given text: score mode and on-policy distillation work. */
  scoresGivenText: boolean;
  /** The --score-api to use (echo preferred), or null. */
  scoreApi: ScoreApi | null;
  /** Chat completions with log-probs work (chat mode: the teacher's own answers). */
  chatLogprobs: boolean;
  checks: ProbeCheck[];
  /** One line for people. */
  summary: string;
}

export interface ProbeOptions {
  teacherUrl?: string;
  /** Teacher model; absent: the first of GET /models. */
  model?: string;
  apiKeyEnv?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

function request(endpoint: Endpoint, body: Record<string, unknown>): PlannedRequest {
  return { endpoint, body, hash: `probe-${endpoint}-${String(body.echo ?? body.prompt_logprobs ?? 'chat')}`, inputId: 'probe', row: 0, chunkIndex: 0, chunkCount: 1, chunkStart: null, scoreFrom: null, text: null };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const promptTokensOf = (json: unknown): number | null => {
  const u = isObj(json) && isObj(json.usage) ? json.usage.prompt_tokens : undefined;
  return typeof u === 'number' && Number.isInteger(u) ? u : null;
};

/**
 * How many leading tokens rebuild `text` exactly (a leading special token such as "<s>" or "" may come
 * first): the number of prompt positions, or null when the tokens do not start with the text.
 */
export function promptSpan(tokens: string[], text: string): { first: number; end: number } | null {
  for (let first = 0; first <= Math.min(1, tokens.length - 1); first++) {
    let acc = '';
    for (let i = first; i < tokens.length; i++) {
      acc += tokens[i];
      if (acc === text) return { first, end: i + 1 };
      if (!text.startsWith(acc)) break;
    }
  }
  return null;
}

/** Judges a /v1/completions echo answer (pure; exported for tests). */
export function judgeEcho(json: unknown, text = PROBE_TEXT): ProbeCheck {
  const base = { api: 'echo' as const, positions: 0, promptTokens: promptTokensOf(json), topK: 0 };
  const choice = isObj(json) && Array.isArray(json.choices) ? json.choices[0] : undefined;
  const lp = isObj(choice) ? choice.logprobs : undefined;
  if (!isObj(lp) || !Array.isArray(lp.tokens) || !Array.isArray(lp.token_logprobs)) {
    return { ...base, status: 'unsupported', detail: 'answered without logprobs.tokens/token_logprobs' };
  }
  const tokens = lp.tokens.map((t) => String(t));
  const span = promptSpan(tokens, text);
  if (!span) {
    const got = tokens.join('').slice(0, 40);
    return { ...base, positions: tokens.length, status: 'wrong', detail: `echo ignored: the ${tokens.length} log-prob(s) are not of the prompt (they spell ${JSON.stringify(got)}), e.g. only generated tokens (llama.cpp does this)` };
  }
  const n = span.end - span.first;
  const tops = Array.isArray(lp.top_logprobs) ? lp.top_logprobs : [];
  let scored = 0, withTop = 0, topK = 0;
  // the first prompt token has nothing before it: null there is expected
  for (let i = span.first + 1; i < span.end; i++) {
    if (typeof lp.token_logprobs[i] === 'number') scored++;
    const t = tops[i];
    if (isObj(t) && Object.keys(t).length > 0) {
      withTop++;
      topK = Math.max(topK, Object.keys(t).length);
    }
  }
  const check = { ...base, positions: scored, topK };
  if (scored < n - 1) return { ...check, status: 'wrong', detail: `${scored} log-probs for ${n} prompt tokens (want one per token after the first)` };
  if (withTop < n - 1) return { ...check, status: 'wrong', detail: `log-probs of the prompt but alternatives at only ${withTop} of ${n - 1} positions (top_logprobs)` };
  if (base.promptTokens !== null && Math.abs(base.promptTokens - (span.end)) > 1) {
    return { ...check, status: 'wrong', detail: `${n} prompt positions returned but ${base.promptTokens} prompt tokens billed` };
  }
  return { ...check, status: 'ok', detail: `one log-prob per prompt token (${n} tokens), top-${topK} alternatives` };
}

/** Judges a vLLM prompt_logprobs answer (pure). */
export function judgeVllm(json: unknown, text = PROBE_TEXT): ProbeCheck {
  const base = { api: 'vllm' as const, positions: 0, promptTokens: promptTokensOf(json), topK: 0 };
  const choice = isObj(json) && Array.isArray(json.choices) ? json.choices[0] : undefined;
  const pl = (isObj(choice) ? choice.prompt_logprobs : undefined) ?? (isObj(json) ? json.prompt_logprobs : undefined);
  if (!Array.isArray(pl)) return { ...base, status: 'unsupported', detail: 'answered without prompt_logprobs (not vLLM)' };
  let scored = 0, topK = 0;
  pl.forEach((pos, i) => {
    if (!isObj(pos) || i === 0) return;
    scored++;
    topK = Math.max(topK, Object.values(pos).filter(isObj).length);
  });
  const check = { ...base, positions: scored, topK };
  if (pl.length < 2) return { ...check, status: 'wrong', detail: `prompt_logprobs holds ${pl.length} position(s) for a ${text.length}-character text` };
  if (scored < pl.length - 1) return { ...check, status: 'wrong', detail: `${scored} of ${pl.length - 1} prompt positions carry log-probs` };
  if (base.promptTokens !== null && base.promptTokens !== pl.length) {
    return { ...check, status: 'wrong', detail: `${pl.length} prompt positions returned but ${base.promptTokens} prompt tokens billed` };
  }
  return { ...check, status: 'ok', detail: `one log-prob per prompt token (${pl.length} tokens), top-${topK} alternatives` };
}

/** Judges a chat completions answer with logprobs (pure). */
export function judgeChat(json: unknown): ProbeCheck {
  const base = { api: 'chat' as const, positions: 0, promptTokens: promptTokensOf(json), topK: 0 };
  const choice = isObj(json) && Array.isArray(json.choices) ? json.choices[0] : undefined;
  const content = isObj(choice) && isObj(choice.logprobs) ? choice.logprobs.content : undefined;
  if (!Array.isArray(content) || content.length === 0) return { ...base, status: 'unsupported', detail: 'answered without logprobs.content' };
  let topK = 0;
  for (const c of content) if (isObj(c) && Array.isArray(c.top_logprobs)) topK = Math.max(topK, c.top_logprobs.length);
  if (topK === 0) return { ...base, positions: content.length, status: 'wrong', detail: `log-probs of ${content.length} generated token(s) without alternatives (top_logprobs)` };
  return { ...base, positions: content.length, topK, status: 'ok', detail: `log-probs of its own ${content.length} generated token(s), top-${topK} alternatives` };
}

async function attempt(client: TeacherClient, req: PlannedRequest, signal: AbortSignal, judge: (json: unknown) => ProbeCheck, api: ProbeCheck['api']): Promise<ProbeCheck> {
  try {
    const res = await client.send(req, signal, api === 'vllm');
    return judge(res.json);
  } catch (e) {
    if (!(e instanceof SendError)) throw e;
    if (e.status === 401 || e.status === 403) throw new KdError('teacher-auth', `the teacher refused the probe: ${e.message} (check the API key variable)`);
    if (e.kind === 'network' || e.kind === 'timeout') throw new KdError('teacher-unreachable', `${client.baseURL}: ${e.message}`);
    const status: ProbeStatus = e.kind === 'http' && e.status !== undefined && e.status >= 400 && e.status < 500 ? 'unsupported' : 'error';
    return { api, status, detail: e.message, positions: 0, promptTokens: null, topK: 0 };
  }
}

/** The first model of GET {base}/models. */
async function firstModel(baseURL: string, key: string | undefined, signal: AbortSignal): Promise<string> {
  let res: Response;
  try {
    res = await fetch(`${baseURL}/models`, { headers: key ? { authorization: `Bearer ${key}` } : {}, signal });
  } catch (e) {
    throw new KdError('teacher-unreachable', `${baseURL}/models: ${(e as Error).message}`);
  }
  const json = (await res.json().catch(() => null)) as { data?: { id?: unknown }[] } | null;
  const id = json?.data?.[0]?.id;
  if (!res.ok || typeof id !== 'string') throw new KdError('teacher-model', `${baseURL}/models listed no model (HTTP ${res.status}); give the teacher model name (--teacher-model / --model)`);
  return id;
}

/** Probes a teacher: what it can score. Throws KdError only when it cannot be reached or refuses the key. */
export async function probeTeacher(o: ProbeOptions): Promise<ProbeVerdict> {
  const env = o.env ?? process.env;
  const timeoutMs = o.timeoutMs ?? 60_000;
  const client = makeTeacherClient({ baseURL: o.teacherUrl, apiKeyEnv: o.apiKeyEnv, timeoutMs, concurrency: 1, env });
  const signal = o.signal ?? new AbortController().signal;
  const model = o.model ?? await firstModel(client.baseURL, env[o.apiKeyEnv ?? 'OPENAI_API_KEY'], signal);
  const text = PROBE_TEXT;
  const echo = await attempt(client, request('completions', { model, prompt: text, echo: true, logprobs: PROBE_TOP_K, max_tokens: 0, temperature: 0 }), signal, (j) => judgeEcho(j, text), 'echo');
  const vllm = echo.status === 'ok'
    ? { api: 'vllm' as const, status: 'unsupported' as const, detail: 'not tried (echo works)', positions: 0, promptTokens: null, topK: 0 }
    : await attempt(client, request('completions', { model, prompt: text, max_tokens: 1, temperature: 0, prompt_logprobs: PROBE_TOP_K }), signal, (j) => judgeVllm(j, text), 'vllm');
  const chat = await attempt(client, request('chat', { model, messages: [{ role: 'user', content: 'Say hello.' }], logprobs: true, top_logprobs: PROBE_TOP_K, max_tokens: 4, temperature: 0 }), signal, judgeChat, 'chat');
  const scoreApi: ScoreApi | null = echo.status === 'ok' ? 'echo' : vllm.status === 'ok' ? 'vllm' : null;
  const chatLogprobs = chat.status === 'ok';
  const summary = scoreApi
    ? `scores given text (${scoreApi === 'echo' ? 'completions echo+logprobs' : 'vLLM prompt_logprobs'}: ${(scoreApi === 'echo' ? echo : vllm).detail}): kd collect --mode score --score-api ${scoreApi}, --select and kd onpolicy work`
    : chatLogprobs
      ? `scores only its own answers (chat log-probs; echo: ${echo.detail}; prompt_logprobs: ${vllm.detail}): kd collect --mode chat only; score mode and on-policy distillation need a teacher that scores given text (vLLM, kd serve)`
      : `returns no usable log-probs (echo: ${echo.detail}; prompt_logprobs: ${vllm.detail}; chat: ${chat.detail}): kd cannot distil from it`;
  return { baseURL: client.baseURL, model, scoresGivenText: scoreApi !== null, scoreApi, chatLogprobs, checks: [echo, vllm, chat], summary };
}

/** The human report (pure). */
export function formatProbe(v: ProbeVerdict): string {
  const mark = (s: ProbeStatus) => (s === 'ok' ? 'ok  ' : s === 'unsupported' ? 'no  ' : s === 'wrong' ? 'BAD ' : 'err ');
  return [
    `teacher   ${v.baseURL}  model ${v.model}`,
    `verdict   ${v.scoresGivenText ? 'SCORES GIVEN TEXT' : v.chatLogprobs ? 'ANSWERS ONLY' : 'NO LOG-PROBS'}: ${v.summary}`,
    'checks (scoring a known text):',
    ...v.checks.map((c) => `  ${mark(c.status)} ${c.api.padEnd(5)} ${c.detail}`),
  ].join('\n');
}
