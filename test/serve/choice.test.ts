import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/core/rng.js';
import { Choice, type Emission } from '../../src/serve/choice.js';
import { argmax, sampleToken, topK } from '../../src/serve/sampling.js';

const utf8 = (s: string) => Uint8Array.from(Buffer.from(s, 'utf8'));
// a small vocabulary: 0 'a', 1 'b', 2 '\n', 3 'user', 4 ':', 5 '€'[0..2], 6 '€'[2], 7 'é', 8 'b\nuser:x'
const vocab = [utf8('a'), utf8('b'), utf8('\n'), utf8('user'), utf8(':'), Uint8Array.of(0xe2, 0x82), Uint8Array.of(0xac), utf8('é'), utf8('b\nuser:x')];

function run(ids: number[], stops: string[], limit = ids.length) {
  const ch = new Choice(vocab, stops);
  const events: Emission[] = [];
  for (const id of ids) {
    if (ch.done) break;
    events.push(ch.push({ id, logprob: -1, top: [] }));
    if (!ch.done && ch.generated >= limit) events.push(ch.finish('length'));
  }
  return { ch, events, streamed: events.map((e) => e.text).join('') };
}

describe('Choice: stop strings and streaming deltas', () => {
  it('cuts before a stop string spanning several tokens, and holds back its prefix while streaming', () => {
    const { ch, events, streamed } = run([0, 2, 3, 4, 1], ['\nuser:']);
    expect(ch.text).toBe('a');
    expect(streamed).toBe('a');
    expect(ch.finishReason).toBe('stop');
    expect(events[1]!.text).toBe(''); // "\n" might start the stop string: held back
    expect(ch.generated).toBe(4);
    expect(ch.tokens.map((t) => t.id)).toEqual([0]); // tokens wholly inside the stop string are not reported
  });

  it('releases held-back bytes when the stop string does not follow', () => {
    const { ch, streamed } = run([0, 2, 1, 0], ['\nuser:']);
    expect(ch.text).toBe('a\nba');
    expect(streamed).toBe('a\nba');
    expect(ch.finishReason).toBe('length');
    expect(ch.tokens.map((t) => t.id)).toEqual([0, 2, 1, 0]);
  });

  it('a stop string inside one token cuts that token\'s text but keeps the token', () => {
    const { ch } = run([0, 8, 1], ['\nuser:']);
    expect(ch.text).toBe('ab');
    expect(ch.tokens.map((t) => t.id)).toEqual([0, 8]);
    expect(ch.generated).toBe(2);
  });

  it('streams whole UTF-8 characters only, reporting a cut character\'s token as soon as it is generated', () => {
    const { ch, events } = run([0, 5, 6, 7], []);
    expect(events.map((e) => e.text)).toEqual(['a', '', '€', 'é', '']);
    expect(events[1]!.tokens.map((t) => t.id)).toEqual([5]);
    expect(ch.text).toBe('a€é');
  });

  it('an invalid trailing byte becomes U+FFFD when the choice ends', () => {
    const { ch } = run([0, 5], [], 2);
    expect(ch.text).toBe('a\ufffd');
  });

  it('non-streamed text equals the streamed deltas for many random sequences', () => {
    const r = new Rng(9);
    for (let i = 0; i < 200; i++) {
      const ids = Array.from({ length: 1 + r.int(10) }, () => r.int(vocab.length));
      const { ch, streamed } = run(ids, ['\nuser:', 'ab', '€']);
      expect(streamed).toBe(ch.text);
      const all = Buffer.concat(ids.slice(0, ch.generated).map((id) => vocab[id]!)).toString('utf8');
      if (ch.finishReason === 'stop') expect(all.startsWith(ch.text)).toBe(true);
      for (const s of ['\nuser:', 'ab', '€']) expect(ch.text.includes(s)).toBe(false);
    }
  });
});

describe('sampling', () => {
  const lp = Float32Array.from([-3, -0.2, -2, -0.2, -5].map((x) => x));

  it('topK: best first, lower id first on ties, k capped by the vocabulary', () => {
    expect(topK(lp, 3).map((a) => a.id)).toEqual([1, 3, 2]);
    expect(topK(lp, 10).map((a) => a.id)).toEqual([1, 3, 2, 0, 4]);
    expect(topK(lp, 0)).toEqual([]);
    expect(argmax(lp)).toBe(1);
  });

  it('temperature 0 is greedy; a seed reproduces draws; top_p keeps only the nucleus', () => {
    expect(sampleToken(lp, { temperature: 0, topP: 1 }, new Rng(1))).toBe(1);
    const draw = (seed: number, topP: number) => { const r = new Rng(seed); return Array.from({ length: 50 }, () => sampleToken(lp, { temperature: 1, topP }, r)); };
    expect(draw(5, 1)).toEqual(draw(5, 1));
    expect(new Set(draw(5, 1)).size).toBeGreaterThan(2);
    expect(new Set(draw(5, 0.5))).toEqual(new Set([1, 3])); // the two tied best tokens hold > 50% of the mass
  });

  it('draws in proportion to the probabilities', () => {
    const p = Float32Array.from([Math.log(0.7), Math.log(0.2), Math.log(0.1)]);
    const r = new Rng(3);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20000; i++) counts[sampleToken(p, { temperature: 1, topP: 1 }, r)]!++;
    expect(counts[0]! / 20000).toBeCloseTo(0.7, 1);
    expect(counts[2]! / 20000).toBeCloseTo(0.1, 1);
  });
});
