import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { corpusBatches, encodeDocs, readCorpus, splitDocs } from '../../src/data/corpus.js';
import { trainBpe } from '../../src/tokenizer/bpe.js';
import { openData } from '../../src/data/open.js';

describe('text corpora and BPE', () => {
  const sotu = readCorpus('sotu');

  it('ships the State of the Union corpus and splits it by document', () => {
    expect(sotu.docs.length).toBeGreaterThan(200);
    expect(sotu.docs[0].text).toMatch(/^Fellow-Citizens of the Senate/);
    const train = splitDocs(sotu, 'train'), val = splitDocs(sotu, 'val');
    expect(train.length + val.length).toBe(sotu.docs.length);
    const ids = new Set(train.map((d) => d.id));
    expect(val.some((d) => ids.has(d.id))).toBe(false);
  });

  it('learns frequent English pieces, encodes losslessly and deterministically', () => {
    const texts = sotu.docs.slice(0, 20).map((d) => d.text);
    const tok = trainBpe(texts, { vocabSize: 600 });
    expect(tok.vocabSize).toBe(600);
    const strings = tok.tokens.slice(256).map((t) => Buffer.from(t).toString());
    expect(strings).toContain(' the');
    expect(strings).toContain(' of');
    const sample = sotu.docs[30].text.slice(0, 2000);
    const ids = tok.encode(sample);
    expect(tok.decode(ids)).toBe(sample);
    expect(ids.length).toBeLessThan(Buffer.byteLength(sample) / 2.5); // compresses English text
    expect(trainBpe(texts, { vocabSize: 600 }).hash()).toBe(tok.hash());
  });

  it('serves windows whose targets are the next tokens, reproducibly', () => {
    const tok = trainBpe(sotu.docs.slice(0, 5).map((d) => d.text), { vocabSize: 300 });
    const tokens = encodeDocs(sotu.docs.slice(0, 5), tok);
    const f = corpusBatches(tokens, { batchSize: 3, seqLen: 16, seed: 1, name: 'sotu', split: 'train' });
    const a = f.open().next();
    expect(a.K).toBe(0);
    expect([...a.mask].every((m) => m === 0)).toBe(true);
    for (let s = 0; s < 3; s++) for (let t = 0; t < 15; t++) expect(a.targets[s * 16 + t]).toBe(a.inputIds[s * 16 + t + 1]);
    const src = f.open(); src.next();
    expect(src.cursor()).toBe(1);
    expect(f.open(1).next().inputIds).toEqual(src.next().inputIds);
  });

  it('reads .jsonl corpora and reports bad lines with file and line', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-corpus-'));
    fs.writeFileSync(path.join(dir, 'c.jsonl'), '{"id": "a", "text": "hello"}\n{"text": 3}\n');
    expect(() => readCorpus(path.join(dir, 'c.jsonl'))).toThrow(/c.jsonl:2: field "text" must be a string/);
    expect(() => readCorpus(path.join(dir, 'nope'))).toThrow(/no such corpus/);
    expect(() => openData('corpus:sotu', { batchSize: 2, seqLen: 8, seed: 0 })).toThrow(/needs --tokenizer/);
  });
});
