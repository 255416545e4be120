/**
 * kd onpolicy against kd serve on a tiny checkpoint (a real teacher that scores given text) and a
 * fake chat-only teacher: the probe stops a teacher that cannot score before anything is spent; two
 * rounds sample, score (exactly once per sequence), mix at λ and train on with the student's own
 * tokenizer; an interrupted run resumes without resending; --max-cost stops at the budget.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../src/collect/collect.js';
import { readRawDir } from '../../src/schema/raw.js';
import { loadCheckpoint } from '../../src/schema/checkpoint.js';
import { offPolicyPick, offRowsFor, onPolicy, resolveOnPolicyOptions } from '../../src/onpolicy/onpolicy.js';
import { openDataset } from '../../src/data/dataset.js';
import { makeCheckpoint, serveTiny, type TinyServer } from '../serve/fixture.js';

let tiny: TinyServer;
let student: string;
let offpolicy: string;
let chatOnly: { url: string; requests: number; close: () => void };
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kd-onpolicy-'));
let prompts: string;

beforeAll(async () => {
  tiny = await serveTiny();
  student = await makeCheckpoint();
  const dir = tmp();
  prompts = path.join(dir, 'prompts.jsonl');
  fs.writeFileSync(prompts, ['the world', 'hello th', 'ab the', 'é the w', 'the the'].map((p, i) => JSON.stringify({ id: `p${i}`, prompt: p })).join('\n') + '\n');
  const texts = path.join(dir, 'texts.jsonl');
  fs.writeFileSync(texts, Array.from({ length: 12 }, (_, i) => JSON.stringify({ id: `t${i}`, text: `hello world the ${i} ab` })).join('\n') + '\n');
  offpolicy = path.join(dir, 'raw-off');
  const c = await collect({ teacherUrl: `${tiny.h.url}/v1`, model: 'tiny-student', input: texts, out: offpolicy, mode: 'score', topK: 4, concurrency: 2 });
  expect(c.stopReason).toBe('complete');
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => {
      if (req.url?.endsWith('/chat/completions')) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: 'Hi' }, logprobs: { content: [{ token: 'Hi', logprob: -0.1, top_logprobs: [{ token: 'Hi', logprob: -0.1 }] }] } }] }));
      } else res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'Not found' } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  chatOnly = { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`, get requests() { return requests; }, close: () => server.close() };
}, 180_000);
afterAll(async () => {
  chatOnly?.close();
  await tiny?.close();
});

const common = () => ({ model: 'tiny-student', prompts, student, maxNewTokens: 4, stepsPerRound: 3, topK: 4, concurrency: 2, workers: 1, rounds: 2 });

describe('kd onpolicy', () => {
  it('a teacher that cannot score given text stops before anything is sampled, written or sent', async () => {
    const out = path.join(tmp(), 'op');
    await expect(onPolicy({ ...common(), teacherUrl: chatOnly.url, offpolicy, out })).rejects.toThrow(/cannot score given text.*nothing was spent beyond the probe/);
    expect(chatOnly.requests).toBe(3); // the probe's three requests, nothing else
    expect(fs.existsSync(out)).toBe(false);
  });

  it('two rounds: samples, teacher scores on the student\'s prefixes, λ mix, training on with the same tokenizer', async () => {
    const out = path.join(tmp(), 'op');
    const s = await onPolicy({ ...common(), teacherUrl: `${tiny.h.url}/v1`, offpolicy, out, lambda: 0.5, divergence: 'jsd' });
    expect(s.stopReason).toBe('complete');
    expect(s.probe.scoreApi).toBe('echo');
    expect(s.rounds).toHaveLength(2);
    for (const r of s.rounds) {
      expect(r.onRows).toBe(5);
      expect(r.offRows).toBe(5); // λ 0.5: as many off-policy rows as on-policy ones
      expect(r.teacherTokens).toBeGreaterThan(0);
      expect(r.steps).toBe(3);
    }
    // the samples: each prompt's text followed by the student's continuation; the teacher scored exactly those
    const samples = fs.readFileSync(path.join(out, 'round-1', 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; text: string; prompt_chars: number });
    expect(samples.map((x) => x.id)).toEqual(['p0@r1', 'p1@r1', 'p2@r1', 'p3@r1', 'p4@r1']);
    expect(samples.some((x) => x.text.length > x.prompt_chars)).toBe(true);
    const recs = [...readRawDir(path.join(out, 'raw-onpolicy'))];
    expect(recs).toHaveLength(10); // 5 prompts × 2 rounds, each once
    const byId = new Map(recs.map((r) => [r.input_id, r]));
    for (const x of samples) {
      const scored = byId.get(x.id)!.tokens.map((t) => t ?? '').join('');
      // the prompt part verbatim; the continuation too unless the student emitted a cut UTF-8 character (U+FFFD in the sample)
      expect(scored.startsWith(x.text.slice(0, x.prompt_chars))).toBe(true);
      if (!x.text.includes('\ufffd')) expect(scored).toBe(x.text);
    }
    // round 2 started from round 1's weights and kept the student's tokenizer
    const ck = loadCheckpoint(s.student);
    expect(ck.header.meta?.onpolicy_from).toBe(path.join(out, 'round-0', 'run'));
    expect(JSON.stringify(ck.header.tokenizer)).toBe(JSON.stringify(loadCheckpoint(student).header.tokenizer));
    // --divergence: the rounds trained on JSD; everything else of the student's loss kept
    const own = (loadCheckpoint(student).header.train as { loss: Record<string, unknown> }).loss;
    expect(own.divergence).not.toBe('jsd');
    expect((ck.header.train as { loss: unknown }).loss).toEqual({ ...own, divergence: 'jsd' });
    const ds = openDataset(path.join(out, 'round-1', 'data'));
    expect(ds.manifest.counts.records).toBe(10);
  }, 300_000);

  it('interrupted mid-round, the same call resumes: nothing scored twice, the round finished', async () => {
    const out = path.join(tmp(), 'op');
    const ac = new AbortController();
    const first = await onPolicy({ ...common(), teacherUrl: `${tiny.h.url}/v1`, offpolicy, out, rounds: 2 }, { signal: ac.signal, onTrainStep: (p) => { if (p.step === 2) ac.abort(); } });
    expect(first.stopReason).toBe('interrupted');
    expect(fs.existsSync(path.join(out, 'round-0', 'done.json'))).toBe(false);
    const scored = [...readRawDir(path.join(out, 'raw-onpolicy'))].length;
    expect(scored).toBe(5);
    const again = await onPolicy({ ...common(), teacherUrl: `${tiny.h.url}/v1`, offpolicy, out, rounds: 2 });
    expect(again.stopReason).toBe('complete');
    const recs = [...readRawDir(path.join(out, 'raw-onpolicy'))];
    expect(recs).toHaveLength(10);
    expect(new Set(recs.map((r) => r.request_hash)).size).toBe(10);
    expect(again.rounds[0]!.steps).toBe(3);
  }, 300_000);

  it('--max-cost stops the scoring at the budget and the run says so', async () => {
    const out = path.join(tmp(), 'op');
    // $1 per 1M tokens. This teacher's vocabulary is mostly bytes, so bytes / 4 would undercount it:
    // the guard admits a sequence only while its upper bound (a token per UTF-8 byte + 2) still fits.
    // A sequence is ≤ 9 prompt bytes + 4 tokens of ≤ 6 bytes: its bound ≤ 35 tokens, so one always fits
    const maxCost = 3.6e-5;
    const s = await onPolicy({ ...common(), teacherUrl: `${tiny.h.url}/v1`, offpolicy, out, priceIn: 1, priceOut: 1, maxCost, rounds: 2, concurrency: 1 });
    expect(s.stopReason).toBe('budget');
    expect(s.totalCostUsd).toBeLessThanOrEqual(maxCost);
    const billed = [...readRawDir(path.join(out, 'raw-onpolicy'))].reduce((a, r) => a + (r.prompt_tokens ?? 0) + (r.completion_tokens ?? 0), 0);
    expect(billed / 1e6).toBeLessThanOrEqual(maxCost);
    expect(s.rounds.length).toBeLessThanOrEqual(1);
    const scored = [...readRawDir(path.join(out, 'raw-onpolicy'))].length;
    expect(scored).toBeGreaterThan(0);
    expect(scored).toBeLessThan(5);
    expect(s.totalCostUsd).toBeGreaterThan(0);
  }, 300_000);

  it('the mix: λ sets the off-policy rows; the pick is seeded', () => {
    expect(offRowsFor(10, 1)).toBe(0);
    expect(offRowsFor(10, 0.5)).toBe(10);
    expect(offRowsFor(10, 0.25)).toBe(30);
    const ids = Array.from({ length: 20 }, (_, i) => `x${i}`);
    expect(offPolicyPick(ids, 5, 0, 0)).toEqual(offPolicyPick(ids, 5, 0, 0));
    expect(offPolicyPick(ids, 5, 1, 0)).not.toEqual(offPolicyPick(ids, 5, 0, 0));
    expect(offPolicyPick(ids, 50, 0, 0)).toHaveLength(20);
    // a divergence kd's loss does not have: one clear line naming the flag
    expect(() => resolveOnPolicyOptions({ ...common(), offpolicy, out: tmp(), divergence: 'l2' as never })).toThrow(/--divergence: "l2" is not valid; want forward-kl, reverse-kl, jsd/);
  });
});

describe('kd onpolicy (CLI)', () => {
  it('a chat-only teacher: one line saying why, non-zero exit, no stack', async () => {
    const { spawn } = await import('node:child_process');
    const { KD_ARGS, ROOT } = await import('../helpers/kd.js');
    const out = path.join(tmp(), 'op');
    const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [...KD_ARGS, 'onpolicy', '--teacher-url', chatOnly.url, '--model', 'gpt-4o-mini', '--prompts', prompts, '--student', student, '--lambda', '1', '--out', out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (status) => resolve({ status, stderr }));
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot score given text/);
    expect(r.stderr).not.toMatch(/at .*\.ts:\d+/);
  }, 120_000);
});
