import { describe, expect, it } from 'vitest';
import { Tokenizer } from '../src/tokenizer/tokenizer.js';

const withTokens = (...extra: string[]) => new Tokenizer([...Tokenizer.bytes().tokens, ...extra.map((s) => Uint8Array.from(Buffer.from(s, 'utf8')))]);

describe('Tokenizer', () => {
  it('encodes by greedy longest match with byte fallback and decodes losslessly', () => {
    const t = withTokens('the', 'th', ' the', 'é');
    expect(t.vocabSize).toBe(260);
    const ids = t.encode('the théâtre the');
    expect(ids.slice(0, 1)).toEqual([256]);
    expect(ids).toContain(259); // é as one token
    expect(ids).toContain(258); // " the"
    expect(t.decode(ids)).toBe('the théâtre the');
    const weird = Uint8Array.of(0xff, 0xfe, 0x00, 0xc3); // not UTF-8 at all
    expect(Buffer.from(t.decodeBytes(t.encode(weird)))).toEqual(Buffer.from(weird));
  });

  it('round-trips through JSON with a stable hash', () => {
    const t = withTokens('ab', 'abc');
    const u = Tokenizer.fromJSON(JSON.parse(JSON.stringify(t.toJSON())));
    expect(u.hash()).toBe(t.hash());
    expect(u.encode('abcab')).toEqual([257, 256]);
    expect(withTokens('ab').hash()).not.toBe(t.hash());
  });

  it('rejects malformed tokenizers with a clear error', () => {
    expect(() => Tokenizer.fromJSON({ format: 'other' }, 'x.json')).toThrow(/x.json: not a kd tokenizer/);
    expect(() => Tokenizer.fromJSON({ format: 'kd-tokenizer', version: 9, tokens: [] }, 'x.json')).toThrow(/version 9/);
    expect(() => Tokenizer.fromJSON({ format: 'kd-tokenizer', version: 1, tokens: ['00'] }, 'x.json')).toThrow(/256 byte tokens/);
    expect(() => withTokens('a')).toThrow(/repeats token 97/);
    expect(() => Tokenizer.bytes().decode([300])).toThrow(/outside the vocabulary/);
  });
});
