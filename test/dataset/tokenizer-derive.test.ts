import { describe, expect, it } from 'vitest';
import type { RawRecord } from '../../src/schema/raw.js';
import { TeacherMap, VocabCounter, deriveVocab, firstLabelled, teacherBytes } from '../../src/tokenizer/derive.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { paragraphs, rawRecords, teacherTokens } from './fixtures.js';

const b = (s: string) => Uint8Array.from(Buffer.from(s, 'utf8'));

function chat(tokens: string[], alts: [string, number][][]): RawRecord {
  return {
    input_id: 'x', request_hash: 'h', mode: 'chat', choice_index: 0, chunk_index: 0, chunk_count: 1, chunk_start: null, score_from: null,
    tokens, token_bytes: tokens.map(b), token_logprobs: tokens.map(() => -1), top_ids: null,
    top_tokens: alts.map((a) => a.map((x) => x[0])), top_bytes: alts.map((a) => a.map((x) => b(x[0]))), top_logprobs: alts.map((a) => a.map((x) => x[1])),
    text_offsets: null, finish_reason: null, prompt_tokens: null, completion_tokens: null, cached_tokens: null, model: 'teacher-1', system_fingerprint: null,
    latency_ms: 0, attempts: 1, completed_at: 0,
  };
}

describe('student vocabulary from teacher tokens', () => {
  it('keeps the most useful multi-byte tokens: emitted count + top-k probability mass', () => {
    const c = new VocabCounter();
    // " the" emitted 3×; " of" emitted once but holds lots of top-k mass; " zz" only a little mass
    c.add(chat([' the', ' the', ' the', ' of'], [[[' the', Math.log(0.9)]], [[' the', Math.log(0.5)], [' of', Math.log(0.4)]], [[' of', Math.log(0.9)]], [[' of', Math.log(0.9)], [' zz', Math.log(0.05)]]]));
    const { tokenizer, massKept, candidates } = deriveVocab(c, 258);
    expect(candidates).toBe(3);
    expect(tokenizer.vocabSize).toBe(258);
    expect(tokenizer.decode([256])).toBe(' the'); // 3 + 1.4 = 4.4
    expect(tokenizer.decode([257])).toBe(' of'); // 1 + 2.2 = 3.2 (beats " zz": 0.05)
    expect(tokenizer.idOf(b(' zz'))).toBeUndefined();
    expect(massKept).toBeCloseTo((0.9 + 0.5 + 0.4 + 0.9 + 0.9) / (0.9 + 0.5 + 0.4 + 0.9 + 0.9 + 0.05), 12);
    expect(tokenizer.meta).toMatchObject({ teacherModels: ['teacher-1'], massKept });
    // a bigger budget than candidates just keeps them all
    expect(deriveVocab(c, 8192).tokenizer.vocabSize).toBe(259);
  });

  it('is deterministic and survives JSON (hash included)', () => {
    const recs = rawRecords(paragraphs(20));
    const make = () => { const c = new VocabCounter(); recs.forEach((r) => c.add(r)); return deriveVocab(c, 400).tokenizer; };
    const t1 = make();
    expect(make().hash()).toBe(t1.hash());
    expect(Tokenizer.fromJSON(JSON.parse(JSON.stringify(t1.toJSON()))).hash()).toBe(t1.hash());
  });

  it('encodes any text losslessly (byte fallback), and kept teacher tokens are single ids', () => {
    const texts = paragraphs(30);
    const c = new VocabCounter();
    rawRecords(texts).forEach((r) => c.add(r));
    const { tokenizer } = deriveVocab(c, 500);
    const map = new TeacherMap(tokenizer);
    for (const t of [...texts, 'never seen: Ωμέγα ∮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0000\xff', '']) {
      expect(tokenizer.decode(tokenizer.encode(t))).toBe(t);
      // teacher-aligned split: concatenating each teacher token's student ids gives the same bytes
      const ids = teacherTokens(t).flatMap((tt) => map.split(tt));
      expect(Buffer.from(tokenizer.decodeBytes(ids)).equals(Buffer.from(t, 'utf8'))).toBe(true);
    }
    for (let id = 256; id < tokenizer.vocabSize; id++) expect(map.split(tokenizer.tokens[id])).toEqual([id]);
  });

  it('teacher bytes: reported, else "bytes:\\x.." notation, else UTF-8 of the string', () => {
    const st = { reported: 0, escaped: 0, fromString: 0 };
    expect([...teacherBytes('x', Uint8Array.of(1, 2), st)!]).toEqual([1, 2]);
    expect([...teacherBytes('bytes:\\xe2\\x80', null, st)!]).toEqual([0xe2, 0x80]);
    expect([...teacherBytes('é', null, st)!]).toEqual([0xc3, 0xa9]);
    expect(teacherBytes(null, null, st)).toBeNull();
    expect(st).toEqual({ reported: 1, escaped: 1, fromString: 1 });
  });

  it('firstLabelled: chat from 0; score chunks from the first token at or after score_from', () => {
    const r = chat(['ab', 'cd', 'ef'], [[], [], []]);
    expect(firstLabelled(r)).toBe(0);
    expect(firstLabelled({ ...r, mode: 'score', chunk_index: 1, chunk_start: 100, score_from: 102 })).toBe(1);
    expect(firstLabelled({ ...r, mode: 'score', chunk_index: 1, chunk_start: 100, score_from: 110 })).toBe(3);
  });
});
