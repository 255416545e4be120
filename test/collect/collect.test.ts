import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { collect, type CollectInput } from '../../src/collect/index.js';
import { readRawDir, type RawRecord } from '../../src/schema/raw.js';
import { startTeacherServer, type TeacherServer, type TeacherServerOptions } from './teacher-server.js';

let server: TeacherServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

const tmp = () => mkdtempSync(join(tmpdir(), 'kd-collect-'));

function jsonl(dir: string, rows: object[]): string {
  const f = join(dir, 'in.jsonl');
  writeFileSync(f, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return f;
}

const prompts = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `p${i}`, prompt: `Question number ${i}?` }));

async function setup(opts: TeacherServerOptions, rows: object[] = prompts(12)) {
  server = await startTeacherServer(opts);
  const dir = tmp();
  const base: CollectInput = { teacherUrl: server.url, model: 'test-teacher', input: jsonl(dir, rows), out: join(dir, 'raw'), topK: 3, concurrency: 4 };
  return { dir, base, server };
}

function rejects(out: string): { id: string; reason: string; request_hash: string }[] {
  try {
    return readFileSync(join(out, 'rejects.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

/** Every request hash in the output exactly once, over records and rejects. */
function outputHashes(out: string): Map<string, number> {
  const m = new Map<string, number>();
  const seen = new Set<string>();
  for (const r of readRawDir(out)) {
    const key = `${r.request_hash}/${r.choice_index}`;
    if (seen.has(key)) m.set(r.request_hash, (m.get(r.request_hash) ?? 0) + 1);
    seen.add(key);
    if (!m.has(r.request_hash)) m.set(r.request_hash, 1);
  }
  for (const r of rejects(out)) m.set(r.request_hash, (m.get(r.request_hash) ?? 0) + 1);
  return m;
}

describe('collect: chat mode', () => {
  it('collects every row, rejects the empty one, writes a manifest, and resumes without sending anything', async () => {
    const { base, server: srv } = await setup({}, [...prompts(12), { id: 'empty', prompt: '' }]);
    const s = await collect(base);
    expect(s).toMatchObject({ stopReason: 'complete', rows: 13, answered: 12, rejected: 1, pending: 0, sent: 12, records: 12 });
    expect(srv.total()).toBe(12);
    const recs = [...readRawDir(base.out)];
    expect(recs.map((r) => r.input_id).sort()).toEqual(prompts(12).map((p) => p.id).sort());
    const r0 = recs[0]!;
    expect(r0.tokens[0]).toBe('é');
    expect(r0.token_bytes[0]).toEqual(Uint8Array.from([0xc3, 0xa9]));
    expect(r0.top_tokens.every((t) => t!.length === 3)).toBe(true);
    expect(r0.system_fingerprint).toBe('fp_test');
    expect(r0.latency_ms).toBeGreaterThan(0);
    expect(rejects(base.out)).toMatchObject([{ id: 'empty', reason: 'empty_prompt' }]);
    const manifest = JSON.parse(readFileSync(join(base.out, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ format: 'kd-collect-manifest', status: 'complete', counts: { records: 12, rejects: 1, requests_total: 13, pending: 0 }, teacher: { system_fingerprints: ['fp_test'] } });
    expect(manifest.shards).toHaveLength(1);
    expect(manifest.tokens.completion).toBe(12 * 4); // the server generates 4 tokens

    const again = await collect(base);
    expect(again).toMatchObject({ stopReason: 'complete', alreadyDone: 13, answered: 0, rejected: 0, sent: 0 });
    expect(srv.total()).toBe(12);
    expect([...outputHashes(base.out).values()].every((c) => c === 1)).toBe(true);
    expect(JSON.parse(readFileSync(join(base.out, 'manifest.json'), 'utf8')).runs).toHaveLength(2);
  });

  it('retries 429 (retry-after), 500, 503, resets, timeouts and non-JSON bodies, each answer received once', async () => {
    const faults = ['429', '500', '503', 'reset', 'hang', 'badjson'] as const;
    const { base, server: srv } = await setup({
      retryAfterMs: '30',
      // row i < 6 fails its first attempt with faults[i]; row 6 fails twice with 503
      fault: (c) => {
        const i = Number(/number (\d+)/.exec(JSON.stringify(c.body.messages))![1]);
        if (i < faults.length && c.attempt === 1) return faults[i]!;
        if (i === 6 && c.attempt <= 2) return '503';
        return null;
      },
    });
    const s = await collect({ ...base, timeoutMs: 1500 }, { backoffBaseMs: 5 });
    expect(s).toMatchObject({ stopReason: 'complete', answered: 12, rejected: 0, retries: 8, failedRequests: 0 });
    expect(s.sent).toBe(12 + 8);
    expect(srv.total()).toBe(12 + 8);
    for (const [hash, n] of srv.answered) expect([hash, n]).toEqual([hash, 1]);
    expect(srv.answered.size).toBe(12);
    expect([...outputHashes(base.out).values()]).toEqual(Array(12).fill(1));
  });

  it('rejects a row answered without log-probs or with HTTP 400, and goes on', async () => {
    const { base } = await setup({ fault: (c) => (c.seq === 2 ? 'nologprobs' : c.seq === 5 ? '400' : null) });
    const s = await collect({ ...base, concurrency: 1 });
    expect(s).toMatchObject({ stopReason: 'complete', answered: 10, rejected: 2 });
    expect(rejects(base.out).map((r) => [r.id, r.reason])).toEqual([['p1', 'no_logprobs'], ['p4', 'http_400']]);
    expect(outputHashes(base.out).size).toBe(12);
  });

  it('rejects prompts over --max-prompt-tokens before sending them, and rolls shards by size', async () => {
    const long = { id: 'long', prompt: 'word '.repeat(400) };
    const { base, server: srv } = await setup({}, [...prompts(30), long]);
    const s = await collect({ ...base, maxPromptTokens: 100, shardBytes: 20_000 });
    expect(s).toMatchObject({ stopReason: 'complete', answered: 30, rejected: 1 });
    expect(rejects(base.out)).toMatchObject([{ id: 'long', reason: 'over_context' }]);
    expect(srv.total()).toBe(30);
    const manifest = JSON.parse(readFileSync(join(base.out, 'manifest.json'), 'utf8'));
    expect(manifest.shards.length).toBeGreaterThan(1);
    expect(manifest.shards.reduce((a: number, x: { records: number }) => a + x.records, 0)).toBe(30);
    expect(readdirSync(base.out).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });

  it('refuses repeated ids before sending anything', async () => {
    const { base, server: srv } = await setup({}, [{ id: 'a', prompt: 'x' }, { id: 'b', prompt: 'y' }, { id: 'a', prompt: 'z' }]);
    await expect(collect(base)).rejects.toThrow(/in\.jsonl: row 3: id "a" repeats row 1/);
    expect(srv.total()).toBe(0);
  });

  it('stops cleanly after --max-failures consecutive failed requests and says why', async () => {
    const { base } = await setup({ fault: () => '503' });
    const s = await collect({ ...base, retries: 1, maxFailures: 3, concurrency: 1 }, { backoffBaseMs: 1 });
    expect(s.stopReason).toBe('max_failures');
    expect(s.stopDetail).toMatch(/stopped after 3 consecutive failures \(last: HTTP 503: injected 503\)/);
    expect(s).toMatchObject({ answered: 0, rejected: 0, pending: 12, sent: 6 });
    expect(JSON.parse(readFileSync(join(base.out, 'manifest.json'), 'utf8'))).toMatchObject({ status: 'stopped', stop_reason: 'max_failures' });
  });

  it('stops at once on 401 without leaking the key anywhere', async () => {
    const { base } = await setup({ fault: () => '401' });
    const env = { KD_TEST_KEY: 'sk-test-SECRETSECRET1234' };
    const s = await collect({ ...base, apiKeyEnv: 'KD_TEST_KEY' }, { env });
    expect(s.stopReason).toBe('fatal');
    expect(s.stopDetail).toMatch(/HTTP 401.*check the API key/);
    const files = ['manifest.json'].map((f) => readFileSync(join(base.out, f), 'utf8')).join('') + JSON.stringify(s);
    expect(files).not.toContain('SECRETSECRET');
    expect(files).toContain('KD_TEST_KEY');
    await expect(collect({ ...base, apiKeyEnv: 'KD_MISSING_KEY' }, { env })).rejects.toThrow(/KD_MISSING_KEY is not set/);
  });

  it('refuses to resume with other request options', async () => {
    const { base } = await setup({});
    await collect(base);
    await expect(collect({ ...base, temperature: 0.2 })).rejects.toThrow(/other request options \(temperature differ/);
  });

  it('paces on rate-limit headers and still finishes', async () => {
    const { base } = await setup({ rateLimit: { remainingRequests: 0, resetRequests: '20ms' } });
    const s = await collect(base);
    expect(s).toMatchObject({ stopReason: 'complete', answered: 12 });
  });
});

describe('collect: money', () => {
  it('dry run estimates tokens and cost without calling the teacher', async () => {
    const { base, server: srv } = await setup({});
    const s = await collect({ ...base, model: 'gpt-4o-mini', maxTokens: 100, dryRun: true });
    expect(srv.total()).toBe(0);
    // OpenAI's chat count: 3 to prime the reply + 3 per message + the content's o200k tokens
    const { Tiktoken } = await import('js-tiktoken/lite');
    const o200k = new Tiktoken((await import('js-tiktoken/ranks/o200k_base')).default);
    const promptTokens = prompts(12).reduce((a, p) => a + 6 + o200k.encode(p.prompt).length, 0);
    expect(promptTokens).toBeGreaterThan(12 * 8);
    expect(s.estimate).toEqual({ promptTokens, maxCompletionTokens: 12 * 100, minCostUsd: expect.any(Number), maxCostUsd: expect.any(Number) });
    expect(s.estimate!.minCostUsd).toBeCloseTo((promptTokens * 0.15) / 1e6, 12);
    expect(s.estimate!.maxCostUsd).toBeCloseTo((promptTokens * 0.15 + 1200 * 0.6) / 1e6, 12);
    expect(s.tokens.method).toBe('tiktoken o200k_base');
  });

  it('--max-cost stops before the budget would be passed, counting requests in flight', async () => {
    const { base, server: srv } = await setup({ latencyMs: 20 }, prompts(40));
    // each request: ≤ 16 tokens out at $1000/1M = $0.016 upper bound; real cost ≈ 4 out + ~10 in
    const opts = { ...base, maxTokens: 16, priceIn: 100, priceOut: 1000, maxCost: 0.1, concurrency: 8 };
    const s = await collect(opts);
    expect(s.stopReason).toBe('budget');
    expect(s.totalCostUsd).toBeLessThanOrEqual(0.1);
    expect(s.answered).toBeGreaterThan(0);
    expect(s.answered).toBeLessThan(40);
    expect(srv.total()).toBe(s.answered);
    // the budget covers everything in --out: a rerun with the same budget sends (almost) nothing more
    const again = await collect(opts);
    expect(again.totalCostUsd).toBeLessThanOrEqual(0.1);
    expect(again.stopReason).toBe('budget');
  });
});

describe('collect: --max-cost when the estimate undercounts', () => {
  const bytes = (t: string) => Buffer.byteLength(t, 'utf8');
  const texts = Array.from({ length: 30 }, (_, i) => ({ id: `t${i}`, text: `The ${i}th text, with some words é€ in it: ${'abc '.repeat(i % 7 + 3)}` }));

  it('a byte-level teacher (a token per byte, 4× the bytes/4 estimate) never takes the run past the cap', async () => {
    const { base, server: srv } = await setup({ latencyMs: 5, billPromptTokens: bytes, keepLog: true }, texts);
    // $1000 per 1M prompt tokens: a token is $0.001. The cap is half what the texts really cost,
    // while the estimate says all of them cost less than that
    const real = texts.reduce((a, t) => a + bytes(t.text), 0) / 1000;
    const estimated = texts.reduce((a, t) => a + Math.ceil(bytes(t.text) / 4), 0) / 1000;
    const maxCost = real / 2;
    expect(estimated).toBeLessThan(maxCost); // an estimate-based guard would send every text
    const opts = { ...base, mode: 'score' as const, priceIn: 1000, priceOut: 1000, maxCost, concurrency: 4 };
    const s = await collect(opts);
    expect(s.stopReason).toBe('budget');
    expect(s.stopDetail).toMatch(/stopped before passing --max-cost/);
    const recs = [...readRawDir(base.out)];
    const billed = recs.reduce((a, r) => a + (r.prompt_tokens ?? 0) + (r.completion_tokens ?? 0), 0) / 1000;
    expect(billed).toBeCloseTo(s.totalCostUsd, 9);
    expect(billed).toBeLessThanOrEqual(maxCost);
    expect(recs.length).toBeGreaterThan(texts.length / 4); // spends most of the cap: only the last bounds were left unsent
    expect(recs.length).toBeLessThan(texts.length);
    expect(srv.log.length).toBe(recs.length);
    // a rerun into the same --out: still within the cap
    const again = await collect(opts);
    expect(again.totalCostUsd).toBeLessThanOrEqual(maxCost);
    expect([...readRawDir(base.out)].reduce((a, r) => a + (r.prompt_tokens ?? 0) + (r.completion_tokens ?? 0), 0) / 1000).toBeLessThanOrEqual(maxCost);
  });

  it('a chat template longer than the bound\'s slack is learned from the first answer', async () => {
    // 200 tokens of template (a long default system prompt) on top of a token per byte
    const { base } = await setup({ billPromptTokens: (p) => bytes(p) + 200, genTokens: 4 }, texts.map((t) => ({ id: t.id, prompt: t.text })));
    const perRequest = (t: string) => (bytes(t) + 200) / 1000; // $1000/1M in, completions free
    const maxCost = perRequest(texts[0]!.text) * 8.5;
    const s = await collect({ ...base, maxTokens: 4, priceIn: 1000, priceOut: 0, maxCost, concurrency: 1 });
    expect(s.stopReason).toBe('budget');
    expect(s.totalCostUsd).toBeLessThanOrEqual(maxCost);
    expect(s.answered).toBeGreaterThan(3);
  });
});

describe('collect: score mode', () => {
  const text = Array.from({ length: 80 }, (_, i) => `word${i}`).join(' ');

  it('echo: chunks with overlap, absolute offsets, first position null', async () => {
    const { base } = await setup({}, [{ id: 'doc1', text }, { id: 'doc2', text: 'A short one.' }]);
    const s = await collect({ ...base, mode: 'score', chunkTokens: 32, chunkOverlap: 8, topK: 20 });
    expect(s.stopReason).toBe('complete');
    const recs = [...readRawDir(base.out)].sort((a, b) => a.input_id.localeCompare(b.input_id) || a.chunk_index - b.chunk_index);
    const doc1 = recs.filter((r) => r.input_id === 'doc1');
    expect(doc1.length).toBeGreaterThan(3);
    expect(doc1.every((r) => r.chunk_count === doc1.length)).toBe(true);
    for (const r of recs) {
      expect(r.token_logprobs[0]).toBeNull();
      expect(r.top_tokens[0]).toBeNull();
      expect(r.top_tokens[1]!.length).toBeGreaterThan(5); // not capped at 5 for a non-OpenAI model
      // offsets point into the whole text
      const full = r.input_id === 'doc1' ? text : 'A short one.';
      r.tokens.forEach((t, i) => expect(full.slice(r.text_offsets![i]!, r.text_offsets![i]! + t!.length)).toBe(t));
    }
    // new text (from score_from) is covered exactly once across chunks
    const covered = doc1.map((r) => text.slice(r.score_from!, r.chunk_start! + r.tokens.join('').length)).join('');
    expect(covered).toBe(text);
  });

  it('vLLM prompt_logprobs: token ids kept, prompt token taken from the first key', async () => {
    const { base } = await setup({}, [{ id: 'd', text: 'Hello big world' }]);
    const s = await collect({ ...base, mode: 'score', scoreApi: 'vllm', topK: 2 });
    expect(s.stopReason).toBe('complete');
    const [r] = [...readRawDir(base.out)] as RawRecord[];
    expect(r!.tokens).toEqual([null, ' big', ' world']);
    expect(r!.top_ids).toEqual([null, [7, 14], [7, 14]]);
    expect(r!.text_offsets).toEqual([0, 5, 9]);
  });
});

describe('collect: the record worker', () => {
  it('writes the same records, rejects and counts as the calling thread', async () => {
    // Faults keyed on the prompt, so both runs meet the same ones: a reject and a retried bad body.
    const fault = (c: { attempt: number; body: Record<string, unknown> }) => {
      const prompt = JSON.stringify(c.body.messages);
      if (prompt.includes('number 3?')) return 'nologprobs' as const;
      if (prompt.includes('number 5?') && c.attempt === 1) return 'badjson' as const;
      return null;
    };
    const runs = [];
    for (const recordWorker of [false, true]) {
      await server?.close(); // a fresh server each time: it counts attempts per request
      const { base } = await setup({ fault, genTokens: 6 }, prompts(40));
      const out = base.out;
      const s = await collect({ ...base, n: 2, concurrency: 8, shardBytes: 20_000 }, { recordWorker, backoffBaseMs: 1 });
      const timing = (r: RawRecord) => ({ ...r, latency_ms: 0, completed_at: 0 });
      const records = [...readRawDir(out)].map(timing).sort((a, b) => a.input_id.localeCompare(b.input_id) || a.choice_index - b.choice_index);
      const rej = rejects(out).map((r) => ({ ...r, at: '' }));
      // How answers group into batches (so where shards roll) depends on timing: not compared.
      expect(readdirSync(out).filter((f) => f.endsWith('.arrows')).length).toBeGreaterThan(1);
      runs.push({ records, rej, s: { answered: s.answered, rejected: s.rejected, records: s.records, retries: s.retries, tokens: s.tokens, costUsd: s.costUsd, parseStats: s.parseStats, fp: s.systemFingerprints } });
    }
    expect(runs[0]!.records.length).toBe(78);
    expect(runs[0]!.rej).toHaveLength(1);
    expect(runs[0]!.s).toMatchObject({ answered: 39, rejected: 1, retries: 1, fp: ['fp_test'] });
    expect(runs[1]).toEqual(runs[0]);
  });
});

describe.each([false, true])('collect: interruption (record worker: %s)', (recordWorker) => {
  it('an abort mid-run loses nothing and a rerun completes every request exactly once', async () => {
    const controller = new AbortController();
    // the server pulls the plug when the 20th request arrives: some answered, some in flight
    const { base, server: srv } = await setup({ latencyMs: 15, fault: (c) => { if (c.seq === 20) controller.abort(); return null; } }, prompts(60));
    const first = collect({ ...base, concurrency: 6 }, { signal: controller.signal, recordWorker });
    const s1 = await first;
    expect(s1.stopReason).toBe('interrupted');
    expect(s1.answered).toBeLessThan(60);
    const done1 = new Set(outputHashes(base.out).keys());
    const sentBefore = new Set(srv.log.map((l) => l.hash));
    const logLength = srv.log.length;
    const s2 = await collect({ ...base, concurrency: 6 }, { recordWorker });
    expect(s2.stopReason).toBe('complete');
    const resent = srv.log.slice(logLength).map((l) => l.hash);
    for (const h of resent) expect(done1.has(h)).toBe(false); // nothing completed is sent again
    expect(sentBefore.size).toBeGreaterThan(0);
    const counts = outputHashes(base.out);
    expect(counts.size).toBe(60);
    expect([...counts.values()].every((c) => c === 1)).toBe(true);
  });
});
