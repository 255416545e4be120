/**
 * `kd serve` as a function: load a checkpoint, listen, and return a handle {url, close()} so tests
 * and `kd run` can start and stop the server in-process.
 */
import { type Server, createServer } from 'node:http';
import { initBackend } from '../backend/index.js';
import { KdError } from '../core/errors.js';
import { listen } from './listen.js';
import { disposeModel, countParams } from '../model/gpt.js';
import type { ServeContext } from './context.js';
import { Engine } from './engine.js';
import { createRequestHandler } from './http.js';
import { loadServedModel } from './model.js';
import { tokenTable } from './tokens.js';
import { DEFAULT_LIMITS, type Limits } from './validate.js';
import { DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PROMPT_TOKENS, DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_SHUTDOWN_GRACE_MS } from './options.js';

export interface ServeOptions {
  /** checkpoint file or run directory */
  checkpoint: string;
  /** default 127.0.0.1 (loopback): exposing a server is a deliberate choice */
  host?: string;
  /** default 8080; 0 = any free port */
  port?: number;
  /** name of the environment variable holding the API key clients must send; unset = no key */
  apiKeyEnv?: string;
  /** reported as `model`; default the checkpoint's directory name */
  modelName?: string;
  /** request bodies above this are refused with 413 (default 4 MiB) */
  maxBodyBytes?: number;
  /** prompts above this many tokens are refused with 400 (default 32768) */
  maxPromptTokens?: number;
  /** a request (headers and body) not fully received within this is answered 408 and closed (default 60 s) */
  requestTimeoutMs?: number;
  /** close(): how long requests in flight may take to finish before their connections are cut (default 10 s) */
  shutdownGraceMs?: number;
  limits?: Partial<Omit<Limits, 'vocabSize'>>;
  backend?: string;
  /** no per-request log lines */
  quiet?: boolean;
  /** where log lines go (default stderr) */
  log?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

export interface ServeHandle {
  /** http://host:port (append /v1 for an OpenAI client's baseURL) */
  url: string;
  host: string;
  port: number;
  model: string;
  fingerprint: string;
  backend: string;
  vocabSize: number;
  seqLen: number;
  params: number;
  close(): Promise<void>;
}

export { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PROMPT_TOKENS, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_SHUTDOWN_GRACE_MS };

/** Loopback names: what a browser's Host header says when it really talks to a server on this machine. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function apiKeyOf(o: ServeOptions): string | undefined {
  if (!o.apiKeyEnv) return undefined;
  const key = (o.env ?? process.env)[o.apiKeyEnv];
  if (!key) throw new KdError('api-key', `--api-key-env: environment variable ${o.apiKeyEnv} is not set (or empty)`);
  return key;
}

export async function serve(o: ServeOptions): Promise<ServeHandle> {
  const apiKey = apiKeyOf(o);
  const be = await initBackend({ backend: o.backend });
  const served = loadServedModel(o.checkpoint, o.modelName);
  const ctx: ServeContext = {
    served, engine: new Engine(served.model), table: tokenTable(served.tokenizer),
    limits: { ...DEFAULT_LIMITS, ...o.limits, vocabSize: served.config.vocabSize },
    maxPromptTokens: o.maxPromptTokens ?? DEFAULT_MAX_PROMPT_TOKENS,
  };
  const closing = new AbortController();
  const log = o.quiet ? null : (o.log ?? ((l: string) => void process.stderr.write(`kd serve: ${l}\n`)));
  const host = o.host ?? DEFAULT_HOST;
  // bound to loopback: only loopback Host headers, so a web page cannot reach the server through DNS rebinding
  const handle = createRequestHandler({ ctx, apiKey, maxBodyBytes: o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, log, closing: closing.signal,
    checkHost: isLoopbackHost(host) ? isLoopbackHost : null, boundHost: host });
  const inflight = new Set<Promise<void>>();
  const requestTimeout = o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const server: Server = createServer({
    requestTimeout, headersTimeout: requestTimeout,
    // how often Node looks for requests past their timeout (its default, 30 s, would stretch a short timeout)
    connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(requestTimeout / 4))),
  }, (req, res) => {
    const p = handle(req, res).finally(() => inflight.delete(p));
    inflight.add(p);
  });
  let where: { url: string; port: number };
  try {
    where = await listen(server, host, o.port ?? DEFAULT_PORT);
  } catch (e) {
    disposeModel(served.model);
    throw e;
  }
  const { url, port } = where;
  let closed: Promise<void> | undefined;
  return {
    url, host, port, model: served.name, fingerprint: served.fingerprint, backend: be.backend,
    vocabSize: served.config.vocabSize, seqLen: served.config.seqLen, params: countParams(served.model),
    close: () => (closed ??= (async () => {
      // stop accepting, end generations at their next step and bodies being received at once, let
      // handlers finish for at most the grace period, then cut every connection and free the weights
      const done = new Promise<void>((r) => server.close(() => r()));
      closing.abort();
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((r) => { timer = setTimeout(r, o.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS); });
      await Promise.race([(async () => { await Promise.allSettled([...inflight]); await ctx.engine.queue.idle(); })(), grace]);
      clearTimeout(timer);
      server.closeAllConnections();
      await Promise.allSettled([...inflight]);
      await ctx.engine.queue.idle();
      await done;
      disposeModel(served.model);
    })()),
  };
}
