/** Hostile clients: slow bodies, shutdown while they trickle, foreign Host headers, malformed paths. */
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { isLoopbackHost, serve } from '../../src/serve/serve.js';
import { KD_ARGS, ROOT } from '../helpers/kd.js';
import { makeCheckpoint } from './fixture.js';

let checkpoint: string;
beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  checkpoint = await makeCheckpoint();
});

/** A POST whose body arrives one byte every `everyMs`; resolves with what the server sent back when it closes. */
function slowBody(port: number, everyMs: number): { socket: net.Socket; answer: Promise<string> } {
  const socket = net.connect(port, '127.0.0.1');
  socket.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n`);
  const drip = setInterval(() => { if (!socket.destroyed) socket.write('{'); }, everyMs);
  let got = '';
  socket.on('data', (d) => { got += d; });
  const answer = new Promise<string>((resolve) => {
    socket.on('close', () => { clearInterval(drip); resolve(got); });
    socket.on('error', () => {});
  });
  return { socket, answer };
}

function get(port: number, path: string, host?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: host ? { host } : {} }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('slow request bodies', () => {
  it('a body still arriving after the request timeout gets 408 and its connection is closed', async () => {
    const h = await serve({ checkpoint, port: 0, quiet: true, backend: 'cpu', requestTimeoutMs: 400 });
    try {
      const { answer } = slowBody(h.port, 100);
      expect(await answer).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      await h.close();
    }
  });

  it('kd serve exits after SIGTERM while a client trickles a body at 1 byte/s', async () => {
    const child = spawn(process.execPath, [...KD_ARGS, 'serve', '--checkpoint', checkpoint, '--port', '0', '--json', '--quiet', '--backend', 'cpu'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d) => { buf += d; if (buf.includes('\n')) resolve(buf.split('\n')[0]); });
      child.on('exit', () => reject(new Error(`kd serve exited early: ${stderr}`)));
    });
    const { port } = JSON.parse(line) as { port: number };
    const { answer } = slowBody(port, 1000);
    await new Promise((r) => setTimeout(r, 1500)); // the request is being received
    child.kill('SIGTERM');
    const bound = new Promise<'still running'>((r) => setTimeout(() => r('still running'), 30_000).unref());
    const outcome = await Promise.race([exited, bound]);
    if (outcome === 'still running') child.kill('SIGKILL');
    expect(outcome).toEqual({ code: 0, signal: null });
    await answer; // the slow client's connection was closed too
    expect(stderr).toBe('');
  });
});

describe('requests that name another host or a malformed path', () => {
  it('a loopback server answers only loopback Host headers (DNS rebinding)', async () => {
    const h = await serve({ checkpoint, port: 0, quiet: true, backend: 'cpu' });
    try {
      const evil = await get(h.port, '/v1/models', `rebind.example:${h.port}`);
      expect(evil.status).toBe(403);
      expect(JSON.parse(evil.body).error).toMatchObject({ code: 'invalid_host' });
      expect((await get(h.port, '/health', 'rebind.example')).status).toBe(403);
      for (const ok of [`localhost:${h.port}`, `127.0.0.1:${h.port}`, `[::1]:${h.port}`, 'localhost']) {
        expect((await get(h.port, '/v1/models', ok)).status, ok).toBe(200);
      }
    } finally {
      await h.close();
    }
    expect(['localhost', '127.0.0.1', '127.3.2.1', '[::1]', '::1', 'app.localhost', 'LOCALHOST.'].every(isLoopbackHost)).toBe(true);
    expect(['rebind.example', '10.0.0.1', '127.0.0.1.nip.io', '0.0.0.0', ''].some(isLoopbackHost)).toBe(false);
  });

  it('a server started with a non-loopback --host accepts any Host header', async () => {
    const h = await serve({ checkpoint, host: '0.0.0.0', port: 0, quiet: true, backend: 'cpu' });
    try {
      expect((await get(h.port, '/v1/models', 'kd.example')).status).toBe(200);
    } finally {
      await h.close();
    }
  });

  it('GET /v1/models/%ZZ is a 400, not a 500 with a stack in the log', async () => {
    const lines: string[] = [];
    const h = await serve({ checkpoint, port: 0, backend: 'cpu', log: (l) => lines.push(l) });
    try {
      const r = await get(h.port, '/v1/models/%ZZ');
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body).error).toMatchObject({ code: 'invalid_path' });
      expect((await get(h.port, '/v1/models/tiny%2Dstudent')).status).toBe(200);
    } finally {
      await h.close();
    }
    expect(lines.join('\n')).not.toMatch(/internal error|URIError/);
    expect(lines.some((l) => l.startsWith('GET /v1/models/%ZZ 400'))).toBe(true);
  });
});
