import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { capture } from '../helpers/capture.js';
import { main } from '../../src/cli.js';
import { collectOptionsFromArgs, formatCollectSummary } from '../../src/cli/collect.js';
import type { CollectSummary } from '../../src/collect/collect.js';
import { recordedOptions, requestShape, resolveCollectOptions } from '../../src/collect/options.js';
import { progressFields } from '../../src/collect/progress.js';
import { startTeacherServer, type TeacherServer } from '../collect/teacher-server.js';
import { makeCheckpoint } from '../serve/fixture.js';

let server: TeacherServer | null = null;
afterEach(async () => {
  vi.restoreAllMocks();
  await server?.close();
  server = null;
});


describe('kd collect flags', () => {
  it('map 1:1 to options (seconds → ms, MiB → bytes) and validate', () => {
    const o = collectOptionsFromArgs({ model: 'm', input: 'i.csv', out: 'o', topK: 5, timeout: 2.5, shardMb: 1, prices: 'p.json', maxCost: 3 });
    expect(o).toMatchObject({ model: 'm', topK: 5, timeoutMs: 2500, shardBytes: 1024 * 1024, pricesFile: 'p.json', maxCost: 3 });
    // only stage options reach the manifest: not the CLI's --json / --probe, nor the flags in their CLI units
    const keys = Object.keys(collectOptionsFromArgs({ model: 'm', input: 'i', out: 'o', json: true, probe: false, timeout: 1, shardMb: 1, prices: 'p' }));
    for (const k of ['json', 'probe', 'timeout', 'shardMb', 'prices']) expect(keys).not.toContain(k);
    expect(resolveCollectOptions(o)).toMatchObject({ mode: 'chat', concurrency: 8, retries: 6, maxTokens: 256 });
    expect(() => resolveCollectOptions({ ...o, topK: 21 })).toThrow('--top-k: 21 is not valid; want an integer in 1..20');
    expect(() => resolveCollectOptions({ ...o, topK: 0 })).toThrow('--top-k: 0 is not valid; want an integer in 1..20');
    expect(() => resolveCollectOptions({ ...o, chunkTokens: 100, chunkOverlap: 60 })).toThrow(/--chunk-overlap: 60/);
    expect(() => resolveCollectOptions({ ...o, concurrency: 0 })).toThrow(/--concurrency/);
  });

  it('request shape holds only what reaches the wire; recorded options hold no URL credentials', () => {
    const score = resolveCollectOptions({ model: 'm', input: 'i', out: 'o', mode: 'score' });
    expect(requestShape({ ...score, temperature: 0.1 })).toEqual(requestShape(score));
    expect(requestShape({ ...score, chunkTokens: 512 })).not.toEqual(requestShape(score));
    const chat = resolveCollectOptions({ model: 'm', input: 'i', out: 'o' });
    expect(requestShape({ ...chat, temperature: 0.1 })).not.toEqual(requestShape(chat));
    const rec = recordedOptions({ ...chat, teacherUrl: 'http://user:pw@host:8000/v1?key=abc' });
    expect(rec.teacherUrl).toBe('http://host:8000/v1');
  });

  it('progress figures: req/s, tok/s, $, ETA', () => {
    const f = progressFields({ total: 100, done: 60, answered: 50, rejected: 0, retries: 3, failures: 0, inFlight: 2, promptTokens: 1000, completionTokens: 1000, costUsd: 0.5, elapsedMs: 10_000 }, 10);
    expect(f).toEqual({ rps: '5.0', tps: '200', cost: '0.5000', etaText: '8s', retries: '3' });
  });

  it('runs end to end on CSV with --json and prints a human summary otherwise', async () => {
    server = await startTeacherServer({});
    const dir = mkdtempSync(join(tmpdir(), 'kd-cli-'));
    const input = join(dir, 'p.csv');
    writeFileSync(input, 'id,q,sys\na,"First, question",Be terse\nb,Second,\nc,,\n');
    const args = ['collect', '--teacher-url', server.url, '--model', 'test', '--input', input, '--out', join(dir, 'raw'), '--column', 'q', '--id-column', 'id', '--system-column', 'sys', '--top-k', '2'];
    let io = capture();
    expect(await main([...args, '--json'])).toBe(0);
    const summary = JSON.parse(io.out());
    expect(summary).toMatchObject({ stopReason: 'complete', answered: 2, rejected: 1, rows: 3 });
    vi.restoreAllMocks();
    io = capture();
    expect(await main(args)).toBe(0);
    expect(io.out()).toMatch(/^collected: 0 answered, 0 rejected, 3 already done, 0 pending of 3 requests \(3 rows\)/);
  });

  it('prints one kd: line naming file and row for a bad input, exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kd-cli-'));
    const input = join(dir, 'bad.jsonl');
    writeFileSync(input, '{"prompt":"a"}\n{"prompt":\n');
    const io = capture();
    expect(await main(['collect', '--teacher-url', 'http://127.0.0.1:1/v1', '--model', 'm', '--input', input, '--out', join(dir, 'raw')])).toBe(1);
    expect(io.err()).toMatch(new RegExp(`^kd: input-jsonl: ${input.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: line 2: malformed JSON`, 'm'));
    expect(io.err()).not.toMatch(/internal error/);
  });

  it('dry run prints tokens and cost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kd-cli-'));
    const input = join(dir, 'p.jsonl');
    writeFileSync(input, '{"prompt":"hello world"}\n');
    const io = capture();
    expect(await main(['collect', '--model', 'gpt-4o', '--input', input, '--out', join(dir, 'raw'), '--dry-run', '--max-tokens', '10'])).toBe(0);
    expect(io.out()).toContain('dry run: 1 rows → 1 requests');
    expect(io.out()).toContain('~8 prompt (tiktoken o200k_base), ≤ 10 completion');
    expect(io.out()).toContain('$0.0000 (prompts only) .. $0.0001');
  });

  it.each(['3/2', '-1/4', '1/0', 'a/b'])('--shard %s: one kd: line, exit 1, nothing sent', async (v) => {
    const dir = mkdtempSync(join(tmpdir(), 'kd-cli-'));
    const input = join(dir, 'p.jsonl');
    writeFileSync(input, '{"prompt":"hello world"}\n');
    const io = capture();
    expect(await main(['collect', '--teacher-url', 'http://127.0.0.1:1/v1', '--model', 'm', '--input', input, '--out', join(dir, 'raw'), '--shard', v])).toBe(1);
    expect(io.err()).toMatch(new RegExp(`^kd: bad-option: --shard: "${v.replace('/', '\\/')}" is not valid \\([^\\n]*\\); want i/n with 0 ≤ i < n, e.g. --shard 0/8 … --shard 7/8\\n$`));
  });

  it('--shard i/n maps to a spec and the dry run names it', async () => {
    expect(collectOptionsFromArgs({ model: 'm', input: 'i', out: 'o', shard: '1/4' }).shard).toEqual({ index: 1, count: 4 });
    const dir = mkdtempSync(join(tmpdir(), 'kd-cli-'));
    const input = join(dir, 'p.jsonl');
    writeFileSync(input, Array.from({ length: 40 }, (_, i) => JSON.stringify({ id: `r${i}`, prompt: 'hi' })).join('\n') + '\n');
    let rows = 0;
    for (const i of [0, 1, 2, 3]) {
      const io = capture();
      expect(await main(['collect', '--model', 'gpt-4o', '--input', input, '--out', join(dir, 'raw'), '--dry-run', '--shard', `${i}/4`, '--json'])).toBe(0);
      const s = JSON.parse(io.out());
      expect(s.shard).toBe(`${i}/4`);
      expect(s.rows).toBeLessThan(40);
      rows += s.rows;
      vi.restoreAllMocks();
    }
    expect(rows).toBe(40);
  });

  it('--select disagreement with a repeated --student: the pick by two checkpoints; one --student is one kd: line', async () => {
    const [a, b] = [await makeCheckpoint(), await makeCheckpoint(5)];
    expect(collectOptionsFromArgs({ model: 'm', input: 'i', out: 'o', student: [a, b] }).student).toEqual([a, b]);
    server = await startTeacherServer({ keepLog: true });
    const dir = mkdtempSync(join(tmpdir(), 'kd-cli-'));
    const input = join(dir, 't.jsonl');
    writeFileSync(input, Array.from({ length: 8 }, (_, i) => JSON.stringify({ id: `t${i}`, text: `the world ${'hello '.repeat(i + 1)}number ${i}` })).join('\n') + '\n');
    const args = ['collect', '--teacher-url', server.url, '--model', 'test', '--input', input, '--out', join(dir, 'raw'), '--mode', 'score', '--top-k', '2', '--budget-tokens', '30', '--select', 'disagreement'];
    let io = capture();
    expect(await main([...args, '--student', a, '--student', b, '--json'])).toBe(0);
    const s = JSON.parse(io.out()) as CollectSummary;
    expect(s.stopReason).toBe('complete');
    expect(s.selection).toMatchObject({ strategy: 'disagreement', candidates: 8 });
    expect(s.selection!.selected).toBeGreaterThan(0);
    expect(s.selection!.selectedTokens).toBeLessThanOrEqual(30);
    expect(server.log.length).toBe(s.selection!.selected);
    vi.restoreAllMocks();
    io = capture();
    expect(await main([...args, '--out', join(dir, 'raw2'), '--student', a])).toBe(1);
    expect(io.err()).toBe('kd: bad-option: --select disagreement: give at least two checkpoints to compare (--student A --student B), got 1\n');
    expect(server.log.length).toBe(s.selection!.selected);
  }, 120_000);

  it('formats a stopped run with its reason', () => {
    const summary: CollectSummary = {
      out: '/o', mode: 'chat', model: 'm', dryRun: false, shard: null, stopReason: 'budget', stopDetail: 'stopped before passing --max-cost $1', rows: 2, requestsTotal: 2,
      alreadyDone: 0, answered: 1, rejected: 0, pending: 1, sent: 1, retries: 0, failedRequests: 0, records: 1, tokens: { prompt: 5, completion: 3, method: 'x' },
      costUsd: 0.9, totalCostUsd: 0.9, price: { input: 1, output: 2, source: 'flags' }, elapsedMs: 1000, reqPerSec: 1, systemFingerprints: [], repairs: [],
      parseStats: { positions: 3, sentinels: 0, shortTopK: 0, missingBytes: 0 },
    };
    const text = formatCollectSummary(summary);
    expect(text).toMatch(/^stopped \(budget\): 1 answered/);
    expect(formatCollectSummary({ ...summary, shard: '1/4' })).toMatch(/^stopped \(budget\) shard 1\/4: 1 answered/);
    expect(text).toContain('why      stopped before passing --max-cost $1');
    expect(text).toContain('cost     $0.9000 this run');
  });
});
