import { describe, expect, it } from 'vitest';
import { convertRecord, entropy, logAddExp, newConvertStats, splitOf } from '../../src/dataset/convert.js';
import type { RawRecord } from '../../src/schema/raw.js';
import { TeacherMap } from '../../src/tokenizer/derive.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';

const b = (s: string) => Uint8Array.from(Buffer.from(s, 'utf8'));
// bytes + "ab" (256) + " c" (257)
const tok = new Tokenizer([...Array.from({ length: 256 }, (_, i) => Uint8Array.of(i)), b('ab'), b(' c')]);
const map = new TeacherMap(tok);

function record(over: Partial<RawRecord>): RawRecord {
  return {
    input_id: 'x', request_hash: 'h', mode: 'chat', choice_index: 0, chunk_index: 0, chunk_count: 1, chunk_start: null, score_from: null,
    tokens: [], token_bytes: [], token_logprobs: [], top_ids: null, top_tokens: [], top_bytes: [], top_logprobs: [], text_offsets: null,
    finish_reason: 'stop', prompt_tokens: null, completion_tokens: null, cached_tokens: null, model: 'm', system_fingerprint: null,
    latency_ms: 0, attempts: 1, completed_at: 0, ...over,
  };
}

describe('convertRecord', () => {
  it('chat: prompt is context, split teacher tokens, labels on the position before each token, projection with merged mass', () => {
    const r = record({
      prompt: 'u:\n',
      tokens: ['ab', 'xy', ' c'], token_bytes: [b('ab'), b('xy'), b(' c')], token_logprobs: [-0.5, -0.1, -0.2],
      top_tokens: [['ab', 'abz', 'q'], ['xy', 'x', ' c', 'é'], [' c', ' cat']],
      top_bytes: [[b('ab'), b('abz'), b('q')], [b('xy'), b('x'), b(' c'), null], [b(' c'), b(' cat')]],
      top_logprobs: [[-0.5, -1.5, -2], [-0.1, -3, -9999, -4], [-0.2, -2]],
    });
    const st = newConvertStats();
    const q = convertRecord(r, map, st)!;
    // "u:\n" → 117 58 10; "ab" kept → 256; "xy" not kept → x y; " c" kept → 257
    expect(q.ids).toEqual([117, 58, 10, 256, 120, 121, 257]);
    expect(q.targetFrom).toBe(2); // the last prompt position predicts the answer's first token
    expect([...q.mask]).toEqual([0, 0, 1, 1, 0, 1, 0]); // "y" (inside "xy") gets no soft label
    expect(q.topCounts).toEqual([2, 2, 1]);
    expect(q.topIds).toEqual([256, 113, 120, 195, 257]); // "abz" → "ab"; "xy" → "x"; "é" (no bytes) → UTF-8 first byte 0xc3
    const want = [logAddExp(-0.5, -1.5), -2, logAddExp(-0.1, -3), -4, logAddExp(-0.2, -2)];
    q.topLogprobs.forEach((lp, i) => expect(lp).toBeCloseTo(want[i], 12));
    expect(st.labelled).toBe(3);
    expect(st.bytes.fromString).toBe(1);
    const one = Math.exp(-0.5) + Math.exp(-2) + Math.exp(-3) + Math.exp(-0.2);
    const all = one + Math.exp(-1.5) + Math.exp(-0.1) + Math.exp(-4) + Math.exp(-2);
    expect(st.oneToOneMass / st.topMass).toBeCloseTo(one / all, 12);
    expect(st.maxK).toBe(2);
    expect(tok.decode(q.ids)).toBe('u:\nabxy c'); // lossless
  });

  it('score: positions before score_from are context only (no targets, no labels)', () => {
    const alts = (s: string) => ({ t: [s, 'z'], b: [b(s), b('z')], l: [-0.3, -2] });
    const a = ['a', 'b', 'c', 'd'].map(alts);
    const r = record({
      mode: 'score', chunk_index: 1, chunk_count: 2, chunk_start: 10, score_from: 12,
      tokens: ['a', 'b', 'c', 'd'], token_bytes: [null, null, null, null], token_logprobs: [null, -1, -1, -1],
      top_tokens: a.map((x) => x.t), top_bytes: a.map((x) => x.b), top_logprobs: a.map((x) => x.l),
    });
    const q = convertRecord(r, map)!;
    expect(q.ids).toEqual([97, 98, 99, 100]);
    expect(q.targetFrom).toBe(1); // "b" predicts "c", the first new token
    expect([...q.mask]).toEqual([0, 1, 1, 0]);
    // the same offsets from text_offsets instead of token lengths
    const q2 = convertRecord({ ...r, chunk_start: 0, text_offsets: [5, 7, 12, 13] }, map)!;
    expect([...q2.mask]).toEqual([0, 1, 1, 0]);
  });

  it('a first token with no predecessor loses its label; an empty record is dropped', () => {
    const st = newConvertStats();
    const q = convertRecord(record({ tokens: ['a', 'b'], token_bytes: [b('a'), b('b')], token_logprobs: [-1, -1], top_tokens: [['a'], ['b']], top_bytes: [[b('a')], [b('b')]], top_logprobs: [[-1], [-1]] }), map, st)!;
    expect([...q.mask]).toEqual([1, 0]);
    expect(q.targetFrom).toBe(0);
    expect(st.noPredecessor).toBe(1);
    expect(convertRecord(record({ tokens: ['a'], token_bytes: [b('a')], token_logprobs: [-1], top_tokens: [['a']], top_bytes: [[b('a')]], top_logprobs: [[-1]] }), map, st)).toBeNull();
    expect(st.emptySequences).toBe(1);
  });
});

describe('helpers', () => {
  it('logAddExp and entropy match direct formulas', () => {
    expect(logAddExp(-1, -2)).toBeCloseTo(Math.log(Math.exp(-1) + Math.exp(-2)), 14);
    expect(logAddExp(-1000, -1001)).toBeCloseTo(-1000 + Math.log1p(Math.exp(-1)), 10);
    expect(entropy([Math.log(0.5), Math.log(0.5)])).toBeCloseTo(Math.log(2), 14);
    expect(entropy([Math.log(0.2), Math.log(0.2)])).toBeCloseTo(Math.log(2), 14); // renormalised
  });

  it('splitOf is deterministic, seed-dependent and near the requested fraction', () => {
    const ids = Array.from({ length: 4000 }, (_, i) => `row-${i}`);
    const a = ids.map((id) => splitOf(id, 1, 0.1));
    expect(ids.map((id) => splitOf(id, 1, 0.1))).toEqual(a);
    const val = a.filter((s) => s === 'val').length / ids.length;
    expect(val).toBeGreaterThan(0.08);
    expect(val).toBeLessThan(0.12);
    expect(ids.map((id) => splitOf(id, 2, 0.1))).not.toEqual(a);
    expect(ids.every((id) => splitOf(id, 1, 0) === 'train')).toBe(true);
  });
});
