/** kd serve --static DIR: a folder on loopback for a browser (an export's index.html), confined to the folder. */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveServeArgs } from '../../src/cli/serve.js';
import { resolveStaticPath } from '../../src/serve/static.js';
import { kd, startKd } from '../helpers/kd.js';

let root: string;
beforeAll(() => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-static-'));
  root = path.join(base, 'site');
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><p>home</p>');
  fs.writeFileSync(path.join(root, 'sub', 'index.html'), '<p>sub</p>');
  fs.writeFileSync(path.join(root, 'a b.js'), 'export const x = 1;\n');
  fs.writeFileSync(path.join(base, 'secret.txt'), 'outside');
  fs.symlinkSync(path.join(base, 'secret.txt'), path.join(root, 'link.txt'));
});

/** A raw GET (fetch would normalise away the ../ being tested). */
function get(url: string, p: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const req = http.request({ hostname, port, path: p, method }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('kd serve --static', () => {
  it('takes --checkpoint or --static, not both or neither, and no API flags with --static', () => {
    expect(resolveServeArgs({ static: 'exports/run' })).toMatchObject({ static: 'exports/run', host: '127.0.0.1', port: 8080 });
    expect(() => resolveServeArgs({})).toThrow(/takes --checkpoint CKPT .* or --static DIR/);
    expect(() => resolveServeArgs({ checkpoint: 'c', static: 'd' })).toThrow(/not both or neither/);
    expect(() => resolveServeArgs({ static: 'd', apiKeyEnv: 'K', maxPromptTokens: 5 })).toThrow(/^--api-key-env, --max-prompt-tokens: only for serving a checkpoint, not with --static$/);
  });

  it('resolves paths inside the folder only: index.html for folders, nothing above it or through a link out of it', () => {
    const real = fs.realpathSync(root);
    expect(resolveStaticPath(real, '/')).toBe(path.join(real, 'index.html'));
    expect(resolveStaticPath(real, '/sub/?q=1')).toBe(path.join(real, 'sub', 'index.html'));
    expect(resolveStaticPath(real, '/a%20b.js')).toBe(path.join(real, 'a b.js'));
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/sub/../../secret.txt', '/link.txt', '/nope', '/%E0%A4%A', '/a%00b']) {
      expect(resolveStaticPath(real, p), p).toBeNull();
    }
  });

  it('a process: --port 0 --json says where; files with their types, 404 above the folder, 405 for POST; SIGTERM stops it', async () => {
    const { child, firstLine, exited } = await startKd(['serve', '--static', root, '--port', '0', '--json']);
    const info = JSON.parse(firstLine);
    expect(info).toMatchObject({ event: 'listening', host: '127.0.0.1', dir: fs.realpathSync(root) });
    const url = `http://127.0.0.1:${info.port}`;
    expect(info.url).toBe(url + '/');
    expect(await get(url, '/')).toEqual({ status: 200, type: 'text/html; charset=utf-8', body: '<!doctype html><p>home</p>' });
    expect(await get(url, '/a%20b.js')).toMatchObject({ status: 200, type: 'text/javascript; charset=utf-8' }); // module scripts need it
    expect((await get(url, '/../secret.txt')).status).toBe(404);
    expect((await get(url, '/sub/../../secret.txt')).status).toBe(404);
    expect((await get(url, '/sub/../a%20b.js')).status).toBe(200);
    expect((await get(url, '/favicon.ico')).status).toBe(204);
    expect((await get(url, '/', 'POST')).status).toBe(405);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('a folder that is not there is one clear line and exit 1', () => {
    const r = kd(['serve', '--static', path.join(root, 'nope'), '--port', '0']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^kd: missing-file: --static .*nope: no such directory/);
    const both = kd(['serve', '--static', root, '--checkpoint', 'x']);
    expect(both.status).toBe(1);
    expect(both.stderr.trim().split('\n')).toHaveLength(1);
  });
});
