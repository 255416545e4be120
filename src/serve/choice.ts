/**
 * One generated choice as it grows, token by token: stop strings, text deltas, and which tokens'
 * log-probs are reported. Streaming and non-streaming responses both use it, so they always agree.
 *
 * Rules (as OpenAI and vLLM behave):
 *  - the text ends just before the first stop string, which is not included;
 *  - while streaming, bytes that could be the start of a stop string are held back until resolved,
 *    and text deltas contain whole UTF-8 characters only (a token may hold part of one);
 *  - log-probs are reported for the tokens that start before the cut (a token straddling the cut is
 *    kept, tokens wholly inside the stop string are not); usage counts every token generated.
 */
import type { Alt } from './sampling.js';

export type FinishReason = 'stop' | 'length';

export interface GenToken {
  id: number;
  /** the model's log-prob of this token */
  logprob: number;
  /** the top alternatives, best first (empty when not asked for) */
  top: Alt[];
  /** byte offset of the token in the generated text */
  start: number;
}

export interface Emission {
  text: string;
  tokens: GenToken[];
  finish: FinishReason | null;
}

export class Choice {
  private buf = Buffer.alloc(0);
  private readonly all: GenToken[] = [];
  private emittedBytes = 0;
  private emittedTokens = 0;
  private readonly decoder = new TextDecoder('utf-8');
  private readonly stops: Buffer[];
  private readonly maxStop: number;
  text = '';
  finishReason: FinishReason | null = null;
  /** tokens generated, reported or not */
  generated = 0;

  constructor(private readonly vocab: Uint8Array[], stops: string[]) {
    this.stops = stops.map((s) => Buffer.from(s, 'utf8')).filter((b) => b.length > 0);
    this.maxStop = Math.max(0, ...this.stops.map((b) => b.length));
  }

  get done(): boolean {
    return this.finishReason !== null;
  }

  /** Tokens whose log-probs are reported (after the stop rule). */
  get tokens(): GenToken[] {
    return this.all.slice(0, this.emittedTokens);
  }

  push(t: Omit<GenToken, 'start'>): Emission {
    if (this.done) throw new Error('push after the choice finished');
    const start = this.buf.length;
    this.buf = Buffer.concat([this.buf, this.vocab[t.id]!]);
    this.all.push({ ...t, start });
    this.generated++;
    const cut = this.findStop(start);
    if (cut >= 0) {
      this.finishReason = 'stop';
      return this.emit(cut, true);
    }
    return this.emit(this.buf.length - this.holdback(), false);
  }

  /** End the choice (token limit reached): flush what was held back. */
  finish(reason: FinishReason): Emission {
    if (this.done) return { text: '', tokens: [], finish: null };
    this.finishReason = reason;
    return this.emit(this.buf.length, true);
  }

  /** Earliest stop string occurrence that may involve the newest token's bytes, or -1. */
  private findStop(newStart: number): number {
    let best = -1;
    const from = Math.max(0, newStart - this.maxStop + 1);
    for (const s of this.stops) {
      const at = this.buf.indexOf(s, from);
      if (at >= 0 && (best < 0 || at < best)) best = at;
    }
    return best;
  }

  /** Length of the longest suffix of the text that is a proper prefix of a stop string. */
  private holdback(): number {
    const n = this.buf.length;
    for (let k = Math.min(this.maxStop - 1, n - this.emittedBytes); k > 0; k--) {
      const tail = this.buf.subarray(n - k);
      if (this.stops.some((s) => s.length > k && s.subarray(0, k).equals(tail))) return k;
    }
    return 0;
  }

  private emit(limit: number, final: boolean): Emission {
    const text = this.decoder.decode(this.buf.subarray(this.emittedBytes, limit), { stream: !final });
    this.emittedBytes = limit;
    const from = this.emittedTokens;
    while (this.emittedTokens < this.all.length && this.all[this.emittedTokens]!.start < limit) this.emittedTokens++;
    this.text += text;
    return { text, tokens: this.all.slice(from, this.emittedTokens), finish: final ? this.finishReason : null };
  }
}
