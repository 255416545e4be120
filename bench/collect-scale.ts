/**
 * `kd collect` at scale: 100,000 requests against the test teacher (test/collect/teacher-server.ts,
 * in its own process) answering each request 200 ms after it arrives, at concurrency 256.
 * The ideal is 256 / 0.2 s = 1,280 req/s (100k requests in 78 s). Prints one JSON line:
 * - `req_per_s` / `fraction_of_ideal`: answers per second from the first request sent to the last
 *   answer, from the records' own timestamps (as bench/collect.ts); `wall_*` over the whole collect()
 *   call (planning, ledger scan and manifest included);
 * - `rss_mb`: the collector process's resident memory (main thread + the records worker) sampled
 *   every second: `start` (before collect()), `peak`, `end` (after it returned), the growth from the
 *   first to the last quarter of the run (`steady_growth_mb`: ≈ 0 when memory is flat), and the
 *   samples themselves (`timeline`, one every ~5 s) so growth over time is visible;
 * - `heap_mb`: V8 heap used, the same way (what a leak of JS objects would show first);
 * - `cpu_ms_per_request`: CPU time (user + system) per answer over the main run, of the collector
 *   process (main thread, records worker, GC threads) and of the teacher server process (Linux only:
 *   read from /proc): on a machine with few cores their sum bounds the rate at about cores / sum.
 * Answers are the bench default (top-k 20, 16 tokens with bytes, ~17 KB each): 1.7 GB of responses
 * pass through, so anything kept per response shows.
 *
 *   npm run bench:collect-scale [-- --requests 100000 --concurrency 256 --latency 200]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collect } from '../src/collect/index.js';
import { listRawShards, readRawColumns } from '../src/schema/raw.js';
import { spawnBenchServer } from './spawn-server.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : dflt; };
const REQUESTS = arg('requests', 100_000);
const CONCURRENCY = arg('concurrency', 256);
const LATENCY_MS = arg('latency', 200);
const IDEAL = CONCURRENCY / (LATENCY_MS / 1000);

const { url, child } = await spawnBenchServer(LATENCY_MS);
const dir = mkdtempSync(join(tmpdir(), 'kd-bench-scale-'));
const round = (v: number, d = 1) => Number(v.toFixed(d));
/** CPU ms (user + system) a process has used so far, from /proc (null where there is none). */
function procCpuMs(pid: number | undefined): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in USER_HZ (100 on Linux)
  } catch {
    return null;
  }
}
const selfCpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const mb = (b: number) => round(b / 2 ** 20);

interface Sample { t_s: number; rss_mb: number; heap_mb: number; done: number }

function writeInput(name: string, n: number): string {
  const input = join(dir, `${name}.jsonl`);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(JSON.stringify({ id: `${name}${i}`, prompt: `Benchmark prompt number ${i}: say something.` }));
  writeFileSync(input, lines.join('\n') + '\n');
  return input;
}

async function run(name: string, n: number, sample: boolean) {
  const input = writeInput(name, n);
  const out = join(dir, name);
  const samples: Sample[] = [];
  let done = 0;
  global.gc?.();
  const cpu0 = selfCpuMs(), server0 = procCpuMs(child.pid);
  const t0 = performance.now();
  const take = () => {
    const m = process.memoryUsage();
    samples.push({ t_s: round((performance.now() - t0) / 1000, 1), rss_mb: mb(m.rss), heap_mb: mb(m.heapUsed), done });
  };
  take();
  const timer = sample ? setInterval(take, 1000) : null;
  let s;
  try {
    s = await collect({ teacherUrl: url, model: 'bench-teacher', input, out, concurrency: CONCURRENCY, topK: 20, maxTokens: 16 }, { onProgress: (p) => { done = p.done; } });
  } finally {
    if (timer) clearInterval(timer);
  }
  const wall = (performance.now() - t0) / 1000;
  const server1 = procCpuMs(child.pid);
  const cpu = { collector: round((selfCpuMs() - cpu0) / n, 3), server: server0 === null || server1 === null ? null : round((server1 - server0) / n, 3) };
  take();
  let first = Infinity, last = 0;
  for (const file of listRawShards(out)) { // two columns only: 100k whole records would not fit the point
    const c = readRawColumns(readFileSync(file), file, ['completed_at', 'latency_ms']);
    c.completed_at.forEach((at, i) => {
      first = Math.min(first, at - c.latency_ms[i]);
      last = Math.max(last, at);
    });
  }
  const steady = s.answered / ((last - first) / 1000);
  return { s, wall, steady, samples, cpu };
}

try {
  await run('warmup', 2000, false); // JIT, server and connections warm
  const { s, wall, steady, samples, cpu } = await run('main', REQUESTS, true);
  const q = Math.max(1, Math.floor(samples.length / 4));
  const avg = (xs: Sample[], k: 'rss_mb' | 'heap_mb') => xs.reduce((a, x) => a + x[k], 0) / xs.length;
  const firstQ = samples.slice(1, 1 + q), lastQ = samples.slice(-1 - q, -1);
  const every = Math.max(1, Math.round(samples.length / 16));
  process.stdout.write(JSON.stringify({
    bench: 'collect-scale', date: new Date().toISOString(), requests: REQUESTS, concurrency: CONCURRENCY, latency_ms: LATENCY_MS,
    ideal_req_per_s: IDEAL, answered: s.answered, rejected: s.rejected, retries: s.retries, stop_reason: s.stopReason,
    req_per_s: round(steady), fraction_of_ideal: round(steady / IDEAL, 3),
    wall_s: round(wall, 1), wall_req_per_s: round(s.answered / wall), wall_fraction_of_ideal: round(s.answered / wall / IDEAL, 3),
    rss_mb: {
      start: samples[0].rss_mb, peak: Math.max(...samples.map((x) => x.rss_mb)), end: samples[samples.length - 1].rss_mb,
      first_quarter_avg: round(avg(firstQ, 'rss_mb')), last_quarter_avg: round(avg(lastQ, 'rss_mb')), steady_growth_mb: round(avg(lastQ, 'rss_mb') - avg(firstQ, 'rss_mb')),
    },
    cpu_ms_per_request: cpu,
    heap_mb: { start: samples[0].heap_mb, peak: Math.max(...samples.map((x) => x.heap_mb)), end: samples[samples.length - 1].heap_mb, steady_growth_mb: round(avg(lastQ, 'heap_mb') - avg(firstQ, 'heap_mb')) },
    timeline: samples.filter((_, i) => i % every === 0 || i === samples.length - 1),
  }) + '\n');
} finally {
  child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
