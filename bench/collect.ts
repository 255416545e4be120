/**
 * Throughput of `kd collect` against a local teacher with a fixed 50 ms latency (from each request's
 * arrival to its answer) at concurrency 32.
 * The ideal is 32 / 0.05 s = 640 req/s. Prints one JSON object:
 * - `req_per_s` / `fraction_of_ideal`: requests answered per second from the first request sent to
 *   the last answer (taken from the records' own timestamps), for the default case (top-k 20, 16
 *   generated tokens with bytes: ~17 KB per response); `wall_*` are the same over the whole
 *   collect() call (input planning, ledger scan, manifest included);
 * - `light`: the same for a small answer (top-k 5, 4 tokens);
 * - `floor`: plain fetch() (no SDK, no parsing, no writing) against the same server: what this
 *   machine's Node HTTP stack reaches at all, the honest ceiling for the figures above; `floor_http`
 *   the same with node:http (what kd collect's client runs on).
 * Steady state: a warm-up collect (not measured) runs first, so the JIT and the server are warm.
 * The server runs in its own process so it does not share the collector's event loop.
 */
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collect } from '../src/collect/index.js';
import { readRawDir } from '../src/schema/raw.js';
import { spawnBenchServer } from './spawn-server.js';

const LATENCY_MS = 50;
const CONCURRENCY = 32;
const REQUESTS = Number(process.env.KD_BENCH_REQUESTS ?? 3000);
const IDEAL = CONCURRENCY / (LATENCY_MS / 1000);

const { url, child } = await spawnBenchServer(LATENCY_MS);
const dir = mkdtempSync(join(tmpdir(), 'kd-bench-'));

const floorBody = (i: number) => JSON.stringify({ model: 'bench-teacher', messages: [{ role: 'user', content: `floor ${i}` }], logprobs: true, top_logprobs: 20, max_tokens: 16 });
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const post = {
  fetch: async (body: string) => {
    const r = await fetch(`${url}/chat/completions`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    await r.text();
  },
  http: (body: string) => new Promise<void>((res, rej) => {
    const req = http.request(`${url}/chat/completions`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => res(void Buffer.concat(chunks).toString('utf8')));
      r.on('error', rej);
    });
    req.on('error', rej);
    req.end(body);
  }),
};

async function floor(n: number, via: keyof typeof post): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < n) await post[via](floorBody(next++));
  }));
  return n / ((performance.now() - t0) / 1000);
}

async function run(name: string, topK: number, maxTokens: number, requests = REQUESTS) {
  const input = join(dir, `${name}.jsonl`);
  writeFileSync(input, Array.from({ length: requests }, (_, i) => JSON.stringify({ id: `${name}${i}`, prompt: `Benchmark prompt number ${i}: say something.` })).join('\n') + '\n');
  const out = join(dir, name);
  const t0 = performance.now();
  const s = await collect({ teacherUrl: url, model: 'bench-teacher', input, out, concurrency: CONCURRENCY, topK, maxTokens });
  const wall = (performance.now() - t0) / 1000;
  let first = Infinity;
  let last = 0;
  for (const r of readRawDir(out)) {
    first = Math.min(first, r.completed_at - r.latency_ms);
    last = Math.max(last, r.completed_at);
  }
  const steady = s.answered / ((last - first) / 1000);
  return {
    top_k: topK, tokens_per_answer: maxTokens, answered: s.answered, stop_reason: s.stopReason,
    req_per_s: round(steady), fraction_of_ideal: round(steady / IDEAL, 3),
    wall_s: round(wall, 3), wall_req_per_s: round(s.answered / wall), wall_fraction_of_ideal: round(s.answered / wall / IDEAL, 3),
  };
}

const round = (v: number, d = 1) => Number(v.toFixed(d));

try {
  await floor(CONCURRENCY * 4, 'fetch'); // warm the server and its connections
  await floor(CONCURRENCY * 4, 'http');
  const floorRps = await floor(REQUESTS, 'fetch');
  const floorHttpRps = await floor(REQUESTS, 'http');
  await run('warmup', 20, 16, Math.min(REQUESTS, 1000));
  const main = await run('default', 20, 16);
  const light = await run('light', 5, 4);
  process.stdout.write(JSON.stringify({
    bench: 'collect', requests: REQUESTS, concurrency: CONCURRENCY, latency_ms: LATENCY_MS, ideal_req_per_s: IDEAL,
    ...main,
    light,
    floor: { what: 'plain fetch, no SDK/parsing/writing', req_per_s: round(floorRps), fraction_of_ideal: round(floorRps / IDEAL, 3) },
    floor_http: { what: 'plain node:http, no SDK/parsing/writing', req_per_s: round(floorHttpRps), fraction_of_ideal: round(floorHttpRps / IDEAL, 3) },
    fraction_of_floor: round(main.req_per_s / Math.max(floorRps, floorHttpRps), 3),
  }) + '\n');
} finally {
  child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
