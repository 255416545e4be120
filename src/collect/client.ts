/**
 * The teacher client: the official `openai` SDK with its retries off (pacing.ts retries), its fetch
 * on node:http (http.ts: far less CPU per request than the built-in fetch), a per-request timeout
 * that also covers reading the body, and raw bodies parsed here (so a body that
 * is not JSON is a retryable failure, and vLLM's id-keyed objects keep their order).
 *
 * The API key is handed to the SDK and nowhere else: it is not part of any error, log or manifest.
 */
import OpenAI from 'openai';
import { KdError } from '../core/errors.js';
import { BufferedResponse, nodeFetch } from './http.js';
import type { HeaderSource } from './pacing.js';
import { decodeBody } from './parse.js';
import type { PlannedRequest } from './request.js';

export interface TeacherClientOptions {
  /** Base URL (…/v1); falls back to OPENAI_BASE_URL, then the SDK's default (api.openai.com). */
  baseURL?: string;
  /** Name of the environment variable holding the key (default OPENAI_API_KEY). */
  apiKeyEnv?: string;
  timeoutMs: number;
  /** Requests in flight at most (sockets kept open per host; default 16). */
  concurrency?: number;
  env?: NodeJS.ProcessEnv;
}

/** An answer as received: the body's bytes, not yet decoded. */
export interface RawTeacherResponse {
  status: number;
  body: Uint8Array;
  headers: HeaderSource;
  latencyMs: number;
}

export interface TeacherResponse {
  json: unknown;
  headers: HeaderSource;
  latencyMs: number;
}

export type SendFailureKind = 'http' | 'network' | 'timeout' | 'bad_json' | 'aborted';

/** A failed attempt, classified; `message` never holds the key. */
export class SendError extends Error {
  constructor(
    readonly kind: SendFailureKind,
    message: string,
    readonly status?: number,
    readonly headers?: HeaderSource,
    readonly code?: string | null,
  ) {
    super(message);
  }
}

export interface TeacherClient {
  readonly baseURL: string;
  /** One attempt; the body is left undecoded ({@link decodeBody}): kd collect decodes it off the main thread. */
  sendRaw(req: PlannedRequest, signal: AbortSignal): Promise<RawTeacherResponse>;
  /** One attempt, the body decoded; a body that is not JSON throws a `bad_json` SendError. */
  send(req: PlannedRequest, signal: AbortSignal, keepIdOrder: boolean): Promise<TeacherResponse>;
}

/** Local servers take any key: this placeholder is sent when none is configured. */
export const PLACEHOLDER_KEY = 'sk-no-key-required';

/** `http://host:8000` → `http://host:8000/v1` (an OpenAI-compatible root without a path means /v1). */
export function normalizeBaseURL(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new KdError('teacher-url', `--teacher-url: "${url}" is not a URL (e.g. http://127.0.0.1:8000/v1)`);
  }
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1';
  return u.toString().replace(/\/$/, '');
}

export function makeTeacherClient(o: TeacherClientOptions): TeacherClient {
  const env = o.env ?? process.env;
  const keyEnv = o.apiKeyEnv ?? 'OPENAI_API_KEY';
  const key = env[keyEnv];
  if (o.apiKeyEnv && !key) throw new KdError('api-key', `--api-key-env: environment variable ${o.apiKeyEnv} is not set`);
  const rawBase = o.baseURL ?? env.OPENAI_BASE_URL;
  if (!rawBase && !key) {
    // the placeholder is for local servers: OpenAI would only refuse every request (after reading the prompts)
    throw new KdError('api-key', `no --teacher-url (or OPENAI_BASE_URL) and no ${keyEnv}: kd collect would send the prompts to OpenAI without a key; set ${keyEnv}, or give --teacher-url for a local server`);
  }
  const baseURL = rawBase ? normalizeBaseURL(rawBase) : 'https://api.openai.com/v1';
  const fetch = nodeFetch({ maxSockets: o.concurrency ?? 16 });
  const sdk = new OpenAI({ apiKey: key || PLACEHOLDER_KEY, baseURL, maxRetries: 0, timeout: o.timeoutMs, fetch });
  // A stop signal ends every request in flight at once (their sockets are destroyed): one listener
  // per signal rather than an AbortController and listeners per request, which cost the main
  // thread at hundreds of requests per second. (A run uses one client and one stop signal.)
  const watched = new WeakSet<AbortSignal>();
  const client: TeacherClient = {
    baseURL,
    async sendRaw(req, stop) {
      if (stop.aborted) throw new SendError('aborted', 'aborted');
      if (!watched.has(stop)) {
        watched.add(stop);
        stop.addEventListener('abort', () => fetch.destroyAll(), { once: true });
      }
      // The SDK's timeout covers the body too: nodeFetch resolves only once the body is read.
      const options = { timeout: o.timeoutMs, headers: { 'x-kd-request-hash': req.hash } };
      const t0 = performance.now();
      try {
        const body = req.body as never; // one request body for three SDK methods, each typed for its own endpoint
        const res = req.endpoint === 'chat' ? await sdk.chat.completions.create(body, options).asResponse()
          : req.endpoint === 'responses' ? await sdk.responses.create(body, options).asResponse()
            : await sdk.completions.create(body, options).asResponse();
        const bytes = res instanceof BufferedResponse ? res.buffer : new Uint8Array(await res.arrayBuffer());
        return { status: res.status, body: bytes, headers: res.headers, latencyMs: performance.now() - t0 };
      } catch (e) {
        throw classify(e, stop, o.timeoutMs, key);
      }
    },
    async send(req, stop, keepIdOrder) {
      const res = await client.sendRaw(req, stop);
      const decoded = decodeBody(res.body, res.status, keepIdOrder);
      if (!decoded.ok) throw new SendError('bad_json', decoded.message, res.status, res.headers);
      return { json: decoded.json, headers: res.headers, latencyMs: res.latencyMs };
    },
  };
  return client;
}

/** The innermost cause of a fetch failure, e.g. "ECONNREFUSED 127.0.0.1:9" or "other side closed". */
function rootCause(e: unknown): string {
  let cur = e as (Error & { cause?: unknown; code?: string }) | undefined;
  for (let i = 0; i < 5 && cur && cur.cause instanceof Error; i++) cur = cur.cause as Error & { cause?: unknown; code?: string };
  if (!cur) return 'unknown';
  return cur.code && !cur.message.includes(cur.code) ? `${cur.code}: ${cur.message}` : cur.message;
}

/** Removes the key (and anything shaped like an OpenAI key, which servers echo masked) from text. */
export function redact(text: string, key: string | undefined): string {
  let out = key && key.length >= 4 ? text.split(key).join('***') : text;
  out = out.replace(/\b(sk|rk)-[A-Za-z0-9_*\-]{4,}/g, '$1-***');
  return out;
}

function classify(e: unknown, stop: AbortSignal, timeoutMs: number, key: string | undefined): SendError {
  if (stop.aborted) return new SendError('aborted', 'aborted');
  if (e instanceof OpenAI.APIConnectionTimeoutError) return new SendError('timeout', `no answer within ${timeoutMs} ms`);
  if (e instanceof OpenAI.APIError && e.status !== undefined) {
    const code = e.code === undefined || e.code === null ? null : String(e.code);
    const msg = (e.error as { message?: unknown } | undefined)?.message;
    return new SendError('http', `HTTP ${e.status}${typeof msg === 'string' ? `: ${redact(msg, key).slice(0, 200)}` : ''}`, e.status, e.headers, code);
  }
  if (e instanceof OpenAI.APIConnectionError || e instanceof TypeError || (e as Error)?.name === 'AbortError') {
    return new SendError('network', `connection failed (${rootCause(e)})`);
  }
  return new SendError('network', `request failed: ${redact((e as Error)?.message ?? String(e), key)}`);
}
