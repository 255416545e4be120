/** nodeFetch: the SDK's fetch on node:http behaves like fetch where the SDK and the client look. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTeacherClient } from '../../src/collect/client.js';
import { BufferedResponse, nodeFetch } from '../../src/collect/http.js';

let server: Server | null = null;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = null;
});

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('nodeFetch', () => {
  it('sends method, headers and body; returns status, headers and the whole body', async () => {
    const url = await serve((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        res.writeHead(201, { 'content-type': 'application/json', 'x-echo': String(req.headers['x-kd']), 'x-len': String(req.headers['content-length']) });
        res.write('{"method":' + JSON.stringify(req.method) + ',');
        res.end('"body":' + JSON.stringify(Buffer.concat(chunks).toString()) + '}');
      });
    });
    const f = nodeFetch({ maxSockets: 4 });
    const res = await f(`${url}/v1/x`, { method: 'POST', headers: new Headers({ 'x-kd': 'v1' }), body: 'héllo' });
    expect(res).toBeInstanceOf(Response);
    expect(res).toBeInstanceOf(BufferedResponse);
    expect(res.status).toBe(201);
    expect(res.ok).toBe(true);
    expect(res.url).toBe(`${url}/v1/x`);
    expect(res.headers.get('x-echo')).toBe('v1');
    expect(res.headers.get('x-len')).toBe('6');
    expect(await res.json()).toEqual({ method: 'POST', body: 'héllo' });
    expect(await new Response(res.body).text()).toBe('{"method":"POST","body":"héllo"}');
  });

  it('follows redirects as fetch does: 307 keeps method and body, 303 becomes a GET', async () => {
    const url = await serve((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/a') return res.writeHead(307, { location: '/b' }).end();
        if (req.url === '/b') return res.writeHead(303, { location: `http://${req.headers.host}/c` }).end(`${req.method} ${Buffer.concat(chunks)}`);
        res.writeHead(200).end(`${req.method} ${req.url} ${Buffer.concat(chunks).length} ${req.headers.authorization}`);
      });
    });
    const f = nodeFetch({ maxSockets: 2 });
    const res = await f(`${url}/a`, { method: 'POST', body: 'xyz', headers: { authorization: 'Bearer k' } });
    expect(await res.text()).toBe('GET /c 0 Bearer k');
    expect(res.url).toBe(`${url}/c`);
  });

  it('rejects like fetch: a TypeError whose cause names the failure, or the abort reason', async () => {
    const f = nodeFetch({ maxSockets: 1 });
    const e = await f('http://127.0.0.1:9/').catch((x) => x);
    expect(e).toBeInstanceOf(TypeError);
    expect(String((e as Error & { cause: Error }).cause)).toMatch(/ECONNREFUSED/);
    const url = await serve(() => {}); // never answers
    const ac = new AbortController();
    const p = f(url, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    expect((await p.catch((x) => x)).name).toBe('AbortError');
  });

  it('destroyAll ends every request in flight at once; later requests still go through', async () => {
    let hold = true;
    const url = await serve((req, res) => {
      if (!hold) res.end('ok'); // the first two never get an answer
    });
    const f = nodeFetch({ maxSockets: 4 });
    const pending = [f(`${url}/a`), f(`${url}/b`)].map((p) => p.then(() => 'answered', (e: unknown) => e));
    await new Promise((r) => setTimeout(r, 50));
    f.destroyAll();
    for (const e of await Promise.all(pending)) expect(e).toBeInstanceOf(TypeError);
    hold = false;
    expect(await (await f(`${url}/c`)).text()).toBe('ok');
  });
});

describe('teacher client', () => {
  it('a stop signal ends the requests in flight as aborted, and refuses new ones', async () => {
    const url = await serve(() => {}); // never answers
    const client = makeTeacherClient({ baseURL: `${url}/v1`, timeoutMs: 60_000, concurrency: 4, env: {} });
    const stop = new AbortController();
    const req = (hash: string) => ({ endpoint: 'chat' as const, body: { model: 'm', messages: [] }, hash, inputId: hash, row: 0, chunkIndex: 0, chunkCount: 1, chunkStart: null, scoreFrom: null, text: null });
    const inFlight = [client.sendRaw(req('a'), stop.signal), client.sendRaw(req('b'), stop.signal)].map((p) => p.catch((e: unknown) => e));
    await new Promise((r) => setTimeout(r, 50));
    stop.abort(); // (the 60 s timeout would outlast the test's own)
    for (const e of await Promise.all(inFlight)) expect(e).toMatchObject({ kind: 'aborted' });
    await expect(client.sendRaw(req('c'), stop.signal)).rejects.toMatchObject({ kind: 'aborted' });
  });
});
