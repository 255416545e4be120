/**
 * Seeded, serialisable random numbers (SplitMix32 over a counter): the state is {seed, counter},
 * so checkpoints store it exactly and any stream can be forked by index without shared state.
 */
export interface RngState {
  seed: number;
  counter: number;
}

function mix(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

export class Rng {
  seed: number;
  counter: number;
  constructor(seed: number, counter = 0) {
    this.seed = seed >>> 0;
    this.counter = counter;
  }
  static from(s: RngState): Rng {
    return new Rng(s.seed, s.counter);
  }
  /** a generator for an independent sub-stream, e.g. batch number i */
  fork(index: number): Rng {
    return new Rng(mix(this.seed ^ mix(index)));
  }
  state(): RngState {
    return { seed: this.seed, counter: this.counter };
  }
  /** uniform in [0, 1) */
  next(): number {
    return mix(this.seed ^ mix(this.counter++)) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}
