/**
 * The raw input of the golden build: real-text chat (n = 2) and score records from ./fixtures.ts
 * plus hand-made quirks (tokens with neither bytes nor a string, OpenAI's "bytes:\x.." notation,
 * null and short top-k lists, −9999 sentinels, NaN, score chunks with text offsets, no prompt,
 * no model). `golden/v1-build.json` holds what `kd dataset build` produced from it before the
 * columnar build existed (issue 17): the columnar build must write the same bytes.
 *
 * Regenerate (only when the v1 format deliberately changes): npx tsx test/dataset/golden.ts
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { RawRecord } from '../../src/schema/raw.js';
import { paragraphs, rawRecords, tmpDir, writeRaw } from './fixtures.js';

const b = (s: string) => Uint8Array.from(Buffer.from(s, 'utf8'));

function quirk(id: string, over: Partial<RawRecord>): RawRecord {
  return {
    input_id: id, request_hash: `h-${id}`, mode: 'chat', choice_index: 0, chunk_index: 0, chunk_count: 1, chunk_start: null, score_from: null,
    tokens: [], token_bytes: [], token_logprobs: [], top_ids: null, top_tokens: [], top_bytes: [], top_logprobs: [], text_offsets: null,
    finish_reason: 'stop', prompt_tokens: null, completion_tokens: null, cached_tokens: null, model: null, system_fingerprint: null,
    latency_ms: 0, attempts: 1, completed_at: 0, ...over,
  };
}

export function goldenRecords(): RawRecord[] {
  const texts = paragraphs(40);
  const recs = [
    ...rawRecords(texts.slice(0, 20), { choices: 2, k: 20, seed: 5 }),
    ...rawRecords(texts.slice(20), { mode: 'score', seed: 6, k: 8 }).map((r) => ({ ...r, input_id: `score-${r.input_id}` })),
  ];
  const quirks: RawRecord[] = [
    quirk('q-escaped', {
      prompt: 'user: say it\n', model: 'other-model',
      tokens: ['Hi', 'bytes:\\xe2\\x80', 'bytes:\\x9c', ' there', null, ''], token_bytes: [null, null, null, b(' there'), null, null],
      token_logprobs: [-0.1, -0.2, -0.3, -0.4, null, null],
      top_tokens: [['Hi', 'Hello', 'bytes:\\xe2'], ['bytes:\\xe2\\x80', 'x'], ['bytes:\\x9c', 'bytes:\\x9d', 'y'], [' there', ' the', ' th', ' t'], ['z'], null],
      top_bytes: [[null, b('Hello'), null], null, [null, null, b('y')], [b(' there'), b(' the'), null, b(' t')], [null], null],
      top_logprobs: [[-0.1, -2.5, -3], [-0.2, -9999], [-0.3, Number.NaN, -1.25], [-0.4, -1.1, -1.1, -30], [-0.5], null],
    }),
    quirk('q-short-lists', {
      tokens: ['a', 'b', 'c', 'd'], token_bytes: [b('a'), b('b'), b('c'), b('d')], token_logprobs: [-1, -1, -1, -1],
      top_tokens: [['a', 'q'], ['b'], ['c', 'w', 'e'], ['d', 'x']],
      top_bytes: [[b('a'), b('q')], [b('b'), b('bb'), b('bbb')], [b('c')], [b('d'), b('x')]],
      top_logprobs: [[-0.7, -0.9, -1.5], [-0.01, -5, -6], [-0.2, -0.3, -0.4], [-9999, -9999]],
    }),
    quirk('q-empty', { tokens: ['a'], token_bytes: [b('a')], token_logprobs: [-1], top_tokens: [['a']], top_bytes: [[b('a')]], top_logprobs: [[-1]] }),
    quirk('q-score-offsets', {
      mode: 'score', chunk_index: 1, chunk_count: 2, chunk_start: 10, score_from: 12, text_offsets: [10, 11, 12, 14],
      tokens: ['ab', 'c', 'de', 'f'], token_bytes: [null, null, null, null], token_logprobs: [null, -1, -1, -1],
      top_tokens: [[], ['c', 'cd'], ['de', 'd', 'é'], ['f', 'g']], top_bytes: [[], [null, null], [null, null, null], [b('f'), b('g')]],
      top_logprobs: [[], [-0.3, -1.4], [-0.2, -2, -2.5], [-0.05, -3]],
    }),
  ];
  return [...recs, ...quirks];
}

/** Writes the golden raw directory (3 shards) under a new temp dir; returns it. */
export function goldenRaw(): string {
  return writeRaw(path.join(tmpDir('kd-golden-'), 'raw'), goldenRecords(), 30);
}

export const GOLDEN_OPTIONS = { vocabSize: 600, valFraction: 0.2, seed: 4, shardBytes: 40_000, batchTokens: 900 };

export interface GoldenBuild {
  files: Record<string, string>;
  manifest: Record<string, unknown>;
}

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** sha256 of every file of a built dataset, and its manifest without the fields that vary by run or machine. */
export function describeBuild(out: string): GoldenBuild {
  const files: Record<string, string> = {};
  for (const f of fs.readdirSync(out).sort()) if (f !== 'manifest.json' && !f.startsWith('.')) files[f] = sha(path.join(out, f));
  const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  const { createdAt: _c, kdVersion: _k, source: _s, ...rest } = m;
  return { files, manifest: rest };
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const { buildDataset } = await import('../../src/dataset/build.js');
  const raw = goldenRaw();
  const out = path.join(path.dirname(raw), 'ds');
  buildDataset({ from: raw, out, ...GOLDEN_OPTIONS, formatVersion: 1 } as Parameters<typeof buildDataset>[0]);
  const dir = path.join(path.dirname(new URL(import.meta.url).pathname), 'golden');
  fs.writeFileSync(path.join(dir, 'v1-build.json'), JSON.stringify(describeBuild(out), null, 1) + '\n');
  console.log(`wrote ${path.join(dir, 'v1-build.json')} from ${out}`);
}
