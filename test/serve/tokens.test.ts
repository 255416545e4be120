import { describe, expect, it } from 'vitest';
import { OrderedObject, stringify } from '../../src/serve/json.js';
import { textOffsets, tokenBytesOf, tokenString, tokenTable } from '../../src/serve/tokens.js';
import { testTokenizer } from './fixture.js';

const b = (...xs: number[]) => Uint8Array.from(xs);
const utf8 = (s: string) => Uint8Array.from(Buffer.from(s, 'utf8'));

describe('token string form', () => {
  it('valid UTF-8 tokens are their text; others are "bytes:\\xNN…"', () => {
    expect(tokenString(utf8(' the'))).toBe(' the');
    expect(tokenString(utf8('é'))).toBe('é');
    expect(tokenString(b(0xe2, 0x82))).toBe('bytes:\\xe2\\x82');
    expect(tokenString(b(0xff))).toBe('bytes:\\xff');
    expect(tokenString(b(0x0a))).toBe('\n');
  });

  it('text that starts with "bytes:" is escaped, so the form stays reversible', () => {
    expect(tokenString(utf8('bytes:'))).toBe('bytes:\\x62\\x79\\x74\\x65\\x73\\x3a');
    expect(tokenString(utf8('bytes:\\x41'))).toMatch(/^bytes:(\\x[0-9a-f]{2})+$/);
    expect(Buffer.from(tokenBytesOf(tokenString(utf8('bytes:\\x41')))).toString()).toBe('bytes:\\x41');
    expect(tokenString(utf8('bytes'))).toBe('bytes'); // no colon: plain text
  });

  it('round-trips every byte string and is injective over a vocabulary', () => {
    const table = tokenTable(testTokenizer());
    expect(new Set(table.strings).size).toBe(table.strings.length); // no two tokens share a string: top_logprobs keys never collide
    table.tokenizer.tokens.forEach((t, id) => {
      expect(Buffer.from(tokenBytesOf(table.strings[id]!)).equals(Buffer.from(t))).toBe(true);
      expect(table.bytes[id]).toEqual(Array.from(t));
    });
    for (let i = 0; i < 200; i++) {
      const r = Uint8Array.from({ length: 1 + (i % 5) }, (_, j) => (i * 37 + j * 101) & 0xff);
      expect(Buffer.from(tokenBytesOf(tokenString(r))).equals(Buffer.from(r))).toBe(true);
    }
  });
});

describe('textOffsets', () => {
  it('counts code points; a token starting inside a character gets that character', () => {
    const toks = [utf8('a'), utf8('é'), b(0xe2, 0x82), b(0xac), utf8('😀'), utf8('z')];
    expect(textOffsets(toks)).toEqual([0, 1, 2, 2, 3, 4]);
    expect(textOffsets([utf8('x')], 10)).toEqual([10]);
  });
});

describe('stringify', () => {
  it('keeps OrderedObject key order (integer-like keys included) and maps -Infinity to -9999', () => {
    const s = stringify({ a: [new OrderedObject([['x', -0.5], ['42', -1], ['7', -2]])], b: undefined, c: -Infinity, d: null });
    expect(s).toBe('{"a":[{"x":-0.5,"42":-1,"7":-2}],"c":-9999,"d":null}');
    expect(JSON.parse(s).a[0]).toEqual({ x: -0.5, 42: -1, 7: -2 });
  });
});
