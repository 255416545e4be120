/**
 * The HTTP layer (node:http, no framework): routing, API-key check, body limit, OpenAI-shaped errors,
 * server-sent events, and one log line per request. Handlers get a parsed body and a Reply.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './api-error.js';
import { chat } from './chat.js';
import { completions } from './completions.js';
import { responses } from './responses.js';
import { type Reply, type ServeContext, type SseWriter, type Usage } from './context.js';
import { Aborted } from './generate.js';
import { stringify } from './json.js';
import { parseBody } from './validate.js';

export interface HttpOptions {
  ctx: ServeContext;
  /** required Bearer token; undefined = open */
  apiKey?: string;
  maxBodyBytes: number;
  /** one line per request; null = quiet */
  log: ((line: string) => void) | null;
  /** aborted when the server closes */
  closing: AbortSignal;
  /** Host header names to accept (null: any); requests naming another host get 403 */
  checkHost?: ((hostname: string) => boolean) | null;
  /** the address the server is bound to, for the 403 message */
  boundHost?: string;
}

type Handler = (ctx: ServeContext, body: Record<string, unknown>, reply: Reply) => Promise<Usage>;

const POST_ROUTES: Record<string, Handler> = { '/v1/completions': completions, '/v1/chat/completions': chat, '/v1/responses': responses };

const sha = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time comparison of the Bearer token (hashes make the lengths equal). */
function authorized(req: IncomingMessage, key: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  return m !== null && timingSafeEqual(sha(m[1]!.trim()), sha(key));
}

/**
 * The body as text. Over the limit it is drained (not stored) and answered 413 once fully received,
 * so the client reliably reads the answer; beyond 8× the limit the connection is dropped instead.
 */
async function readBody(req: IncomingMessage, limit: number, closing: AbortSignal): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  const chunks: Buffer[] = [];
  let total = 0;
  // shutting down: a body still arriving will not be answered, so stop waiting for it
  const onClosing = () => req.destroy();
  if (closing.aborted) onClosing();
  else closing.addEventListener('abort', onClosing, { once: true });
  try {
    for await (const c of req) {
      total += (c as Buffer).length;
      if (total > limit * 8) {
        req.destroy();
        break;
      }
      if (total <= limit && declared <= limit) chunks.push(c as Buffer);
    }
  } catch {
    // the client hung up mid-body (or the server is closing): nobody is left to answer, but this is not a server bug
    throw new ApiError(400, 'The request body was cut off', null, 'incomplete_body');
  } finally {
    closing.removeEventListener('abort', onClosing);
  }
  if (total > limit || declared > limit) {
    throw new ApiError(413, `Request body of ${Math.max(total, declared)} bytes exceeds this server's limit of ${limit} bytes (--max-body-bytes)`, null, 'request_too_large');
  }
  return Buffer.concat(chunks).toString('utf8');
}

function modelCard(ctx: ServeContext) {
  return { id: ctx.served.name, object: 'model', created: 0, owned_by: 'kd' };
}

export function createRequestHandler(o: HttpOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const t0 = performance.now();
    const method = req.method ?? 'GET';
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    } catch {
      path = '/'; // not a path URL can parse: answered 404 below
    }
    let used: Usage | null = null;
    const stop = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) stop.abort();
    };
    res.on('close', onClose);
    const signal = AbortSignal.any([stop.signal, o.closing]);
    let sse: SseWriter | null = null;
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(stringify(body));
    };
    const reply: Reply = {
      json: (body) => send(200, body),
      stream: () => {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
        res.flushHeaders();
        sse = {
          send: (chunk) => void res.write(`data: ${stringify(chunk)}\n\n`),
          end: () => res.end('data: [DONE]\n\n'),
        };
        return sse;
      },
      signal,
    };
    try {
      if (o.checkHost && req.headers.host !== undefined && !o.checkHost(hostnameOf(req.headers.host))) {
        req.resume();
        throw new ApiError(403, `Host "${req.headers.host.slice(0, 100)}" is not a loopback name: this server, bound to ${o.boundHost ?? 'loopback'}, answers only localhost, 127.0.0.1 and [::1] (start it with --host to serve other names)`, null, 'invalid_host');
      }
      if (path === '/health' && method === 'GET') return send(200, { status: 'ok' });
      if (o.apiKey !== undefined && !authorized(req, o.apiKey)) {
        req.resume(); // discard the body; it was not read
        throw new ApiError(401, 'Incorrect or missing API key: send "Authorization: Bearer <key>" with the key this server was started with', null, 'invalid_api_key');
      }
      const handler = POST_ROUTES[path];
      if (handler) {
        if (method !== 'POST') throw methodNotAllowed(method, path, 'POST');
        const body = parseBody(await readBody(req, o.maxBodyBytes, o.closing));
        used = await handler(o.ctx, body, reply);
        return;
      }
      if (path === '/v1/models' || path.startsWith('/v1/models/')) {
        if (method !== 'GET') throw methodNotAllowed(method, path, 'GET');
        if (path === '/v1/models') return send(200, { object: 'list', data: [modelCard(o.ctx)] });
        const id = decodePathSegment(path.slice('/v1/models/'.length));
        if (id !== o.ctx.served.name) throw new ApiError(404, `The model '${id}' does not exist (this server serves '${o.ctx.served.name}')`, 'model', 'model_not_found');
        return send(200, modelCard(o.ctx));
      }
      throw new ApiError(404, `Unknown route ${method} ${path} (kd serve has GET /v1/models, POST /v1/completions, POST /v1/chat/completions, POST /v1/responses)`, null, 'unknown_route');
    } catch (e) {
      const err = e instanceof ApiError ? e
        : e instanceof Aborted ? new ApiError(503, 'The server is shutting down or the client went away', null, 'aborted')
        : internal(e, o.log);
      if (res.destroyed) return;
      if (sse !== null) {
        // headers are gone: report in-band, as OpenAI does mid-stream
        res.end(`data: ${stringify(err.body())}\n\n`);
      } else {
        const headers: Record<string, string> = err.status === 413 || err.status === 401 ? { connection: 'close' } : {};
        if (err.status === 405 && err instanceof MethodNotAllowed) headers.allow = err.allow;
        send(err.status, err.body(), headers);
      }
    } finally {
      res.off('close', onClose);
      const tokens = used ? ` ${used.prompt_tokens}+${used.completion_tokens} tokens` : '';
      o.log?.(`${method} ${path} ${res.statusCode} ${Math.round(performance.now() - t0)} ms${tokens}`);
    }
  };
}

/** `host:port` or `[v6]:port` → the host name ('' when it does not parse, which no check accepts). */
function hostnameOf(header: string): string {
  try {
    return new URL(`http://${header}`).hostname;
  } catch {
    return '';
  }
}

function decodePathSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new ApiError(400, `The path segment '${s.slice(0, 100)}' is not valid percent-encoding`, null, 'invalid_path');
  }
}

class MethodNotAllowed extends ApiError {
  constructor(message: string, readonly allow: string) {
    super(405, message, null, 'method_not_allowed');
  }
}

function methodNotAllowed(method: string, path: string, allow: string): ApiError {
  return new MethodNotAllowed(`${method} is not allowed on ${path}; use ${allow}`, allow);
}

/** A bug: a 500 for the client, the stack for the operator's log. */
function internal(e: unknown, log: HttpOptions['log']): ApiError {
  const err = e instanceof Error ? e : new Error(String(e));
  (log ?? ((l: string) => process.stderr.write(l + '\n')))(`internal error: ${err.stack ?? err.message}`);
  return new ApiError(500, `Internal server error: ${err.message}`, null, 'internal_error');
}
