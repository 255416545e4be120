/**
 * A `fetch` for the `openai` SDK on node:http(s) with keep-alive agents (the SDK's documented
 * `fetch` option). Node's built-in fetch (undici, WHATWG streams) costs several times more CPU per
 * request than node:http; at hundreds of requests per second that CPU is the collector's limit.
 *
 * The whole body is read before the promise resolves (the SDK's timeout and abort signal therefore
 * cover the body too) into a {@link BufferedResponse}, whose buffer the client takes without copies.
 */
import http from 'node:http';
import https from 'node:https';

/** A Response whose body was read in full; `buffer` is that body. */
export class BufferedResponse extends Response {
  constructor(readonly buffer: Buffer, init: ResponseInit & { url: string }) {
    // The body is served from `bytes` by the overrides below: no stream is built per response.
    super(null, init);
    Object.defineProperty(this, 'url', { value: init.url });
  }
  override get body(): ReadableStream<Uint8Array<ArrayBuffer>> | null {
    const bytes = new Uint8Array(this.buffer);
    return new ReadableStream({ start(c) { c.enqueue(bytes); c.close(); } });
  }
  override get bodyUsed(): boolean {
    return false;
  }
  override async text(): Promise<string> {
    return this.buffer.toString('utf8');
  }
  override async json(): Promise<unknown> {
    return JSON.parse(this.buffer.toString('utf8'));
  }
  override async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    return new Uint8Array(this.buffer);
  }
  override async arrayBuffer(): Promise<ArrayBuffer> {
    return new Uint8Array(this.buffer).buffer;
  }
}

export interface NodeFetchOptions {
  /** Sockets kept per host (at least the concurrency, so no request waits for a socket). */
  maxSockets: number;
}

/** Copies chunks into one buffer that owns its memory (so it can be moved to another thread). */
function ownBuffer(chunks: Buffer[], size: number): Buffer {
  const out = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 20;

/**
 * A fetch(url, init) on node:http(s); rejects like undici's (a TypeError with the cause) and follows
 * redirects as fetch does (303, and 301/302 after a POST, become a GET without body; the
 * authorization header is dropped when the redirect leaves the origin).
 */
export type NodeFetch = ((input: string | URL | Request, init?: RequestInit) => Promise<Response>) & {
  /**
   * Ends every request in flight at once (their sockets are destroyed: each rejects like a failed
   * fetch). Later requests open new connections. What a caller's stop signal does, without an
   * abort listener per request.
   */
  destroyAll(): void;
};

export function nodeFetch(o: NodeFetchOptions): NodeFetch {
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: o.maxSockets, scheduling: 'fifo' }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: o.maxSockets, scheduling: 'fifo' }),
  };
  const fetchOnce = (url: URL, method: string, headers: Record<string, string>, body: string | Uint8Array | undefined, signal: AbortSignal | undefined, redirects: number): Promise<Response> => new Promise<Response>((resolve, reject) => {
    const agent = agents[url.protocol as keyof typeof agents];
    if (!agent) return reject(new TypeError(`fetch: unsupported protocol ${url.protocol}`));
    if (signal?.aborted) return reject(signal.reason);
    const fail = (e: unknown) => reject(signal?.aborted ? signal.reason : new TypeError('fetch failed', { cause: e }));
    const req = (url.protocol === 'https:' ? https : http).request(url, { method, headers, agent, signal }, (res) => {
      const status = res.statusCode!;
      const location = res.headers.location;
      if (REDIRECTS.has(status) && location !== undefined) {
        res.resume();
        if (redirects >= MAX_REDIRECTS) return fail(new Error('redirect count exceeded'));
        let next: URL;
        try {
          next = new URL(location, url);
        } catch (e) {
          return fail(e);
        }
        const get = status === 303 ? method !== 'HEAD' : (status === 301 || status === 302) && method === 'POST';
        const h = { ...headers };
        if (get) {
          delete h['content-length'];
          delete h['content-type'];
        }
        if (next.origin !== url.origin) delete h.authorization;
        resolve(fetchOnce(next, get ? 'GET' : method, h, get ? undefined : body, signal, redirects + 1));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        size += c.byteLength;
      });
      res.on('error', fail);
      res.on('close', () => {
        if (!res.complete) fail(new Error('the connection closed before the body was complete'));
      });
      res.on('end', () => {
        // name/value pairs: the Response builds its Headers from them (no intermediate Headers)
        const h: [string, string][] = [];
        const raw = res.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) h.push([raw[i]!, raw[i + 1]!]);
        try {
          resolve(new BufferedResponse(ownBuffer(chunks, size), { status, statusText: res.statusMessage, headers: h, url: url.href }));
        } catch (e) {
          fail(e);
        }
      });
    });
    req.on('error', fail);
    req.end(body);
  });
  // The SDK calls with the same URL string every time: parse it once.
  let lastInput = '';
  let lastUrl: URL | null = null;
  const parse = (input: string | URL | Request): URL => {
    const href = input instanceof Request ? input.url : String(input);
    if (href !== lastInput || lastUrl === null) {
      lastUrl = new URL(href);
      lastInput = href;
    }
    return lastUrl;
  };
  const fetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const headers: Record<string, string> = {};
    // the SDK hands a Headers: read it as it is rather than through a copy
    (init.headers instanceof Headers ? init.headers : new Headers(init.headers)).forEach((v, k) => {
      headers[k] = v;
    });
    const body = init.body as string | Uint8Array | null | undefined;
    if (body !== null && body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      return Promise.reject(new TypeError('fetch: only string and byte bodies are supported'));
    }
    if (body !== null && body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    let url: URL;
    try {
      url = parse(input);
    } catch (e) {
      return Promise.reject(e);
    }
    return fetchOnce(url, init.method ?? 'GET', headers, body ?? undefined, init.signal ?? undefined, 0);
  };
  return Object.assign(fetch, {
    destroyAll() {
      for (const agent of Object.values(agents)) agent.destroy();
    },
  });
}
