/**
 * `kd serve --static DIR`: the files of a folder over http on loopback, so an export's index.html opens in
 * a browser with no server of the user's own (browsers refuse module scripts and fetches from file://).
 * GET and HEAD only; paths are confined to the folder; "/" and any folder serve their index.html; a
 * missing /favicon.ico is 204 (no icon), not an error in the page's console.
 * `cache-control: no-cache` so that a re-export is never mixed with cached weights of the last one.
 */
import fs from 'node:fs';
import { type Server, createServer } from 'node:http';
import path from 'node:path';
import { KdError } from '../core/errors.js';
import { listen } from './listen.js';
import { DEFAULT_HOST, DEFAULT_PORT } from './options.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json', '.css': 'text/css; charset=utf-8', '.md': 'text/markdown; charset=utf-8', '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm', '.png': 'image/png', '.svg': 'image/svg+xml', '.bin': 'application/octet-stream',
};

export interface StaticOptions {
  dir: string;
  /** default 127.0.0.1 */
  host?: string;
  /** default 8080; 0 = any free port */
  port?: number;
  /** one line per request (default: none) */
  log?: (line: string) => void;
}

export interface StaticHandle {
  url: string;
  host: string;
  port: number;
  dir: string;
  close(): Promise<void>;
}

/** The file a request path names inside `root`, or null when it names nothing there. */
export function resolveStaticPath(root: string, urlPath: string): string | null {
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath.split('?')[0]!.split('#')[0]!);
  } catch {
    return null;
  }
  if (rel.includes('\0')) return null;
  const file = path.resolve(root, '.' + path.posix.normalize('/' + rel));
  if (file !== root && !file.startsWith(root + path.sep)) return null;
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (stat?.isDirectory()) return resolveStaticPath(root, path.relative(root, path.join(file, 'index.html')).split(path.sep).join('/'));
  if (!stat?.isFile()) return null;
  const real = fs.realpathSync(file); // a link inside the folder may not lead out of it
  return real.startsWith(root + path.sep) ? file : null;
}

export async function serveStatic(o: StaticOptions): Promise<StaticHandle> {
  const dir = path.resolve(o.dir);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new KdError('missing-file', `--static ${o.dir}: no such directory`);
  const root = fs.realpathSync(dir);
  const server: Server = createServer((req, res) => {
    const file = req.method === 'GET' || req.method === 'HEAD' ? resolveStaticPath(root, req.url ?? '/') : null;
    const noIcon = !file && req.url === '/favicon.ico';
    const status = req.method !== 'GET' && req.method !== 'HEAD' ? 405 : file ? 200 : noIcon ? 204 : 404;
    o.log?.(`${req.method} ${req.url} ${status}`);
    if (status === 204) {
      res.writeHead(204).end();
      return;
    }
    if (!file) {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...(status === 405 ? { allow: 'GET, HEAD' } : {}) });
      res.end(status === 405 ? 'method not allowed\n' : 'not found\n');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': fs.statSync(file).size, 'cache-control': 'no-cache',
    });
    if (req.method === 'HEAD') res.end();
    else fs.createReadStream(file).on('error', () => res.destroy()).pipe(res);
  });
  const host = o.host ?? DEFAULT_HOST;
  const { url, port } = await listen(server, host, o.port ?? DEFAULT_PORT);
  let closed: Promise<void> | undefined;
  return {
    url, host, port, dir: root,
    close: () => (closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    })),
  };
}
