/**
 * Pacing and retries for `kd collect`.
 *
 * We set the SDK's maxRetries to 0 and retry here, because a retry must be shared knowledge: one
 * 429's retry-after pauses every worker (not just the one that saw it), each retry is counted for the
 * progress bar and manifest, budget and stop checks run between attempts, and --max-failures counts
 * requests that exhausted their retries.
 *
 * Rules (those of the official OpenAI SDKs): retry 408, 409, 429, ≥ 500, connection errors, timeouts and bodies
 * that are not JSON; honour `x-should-retry`, then `retry-after-ms`, then `retry-after` (seconds or an
 * HTTP date), else back off min(base·2^n, 8 s) with jitter. Rate-limit headers
 * `x-ratelimit-remaining-{requests,tokens}` / `x-ratelimit-reset-{requests,tokens}` hold new requests
 * back until the window resets when the remaining budget would not cover them.
 */

/** Parses Go-style durations as OpenAI sends them: `12ms`, `6m0s`, `1.5s`, `1h2m`; null if unreadable. */
export function parseDuration(s: string | null | undefined): number | null {
  if (!s) return null;
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/g;
  let total = 0;
  let consumed = 0;
  for (const m of t.matchAll(re)) {
    const v = Number(m[1]);
    const unit = m[2];
    total += unit === 'h' ? v * 3_600_000 : unit === 'm' ? v * 60_000 : unit === 's' ? v * 1000 : unit === 'ms' ? v : unit === 'ns' ? v / 1e6 : v / 1000;
    consumed += m[0].length;
  }
  return consumed === t.length && consumed > 0 ? total : null;
}

export interface HeaderSource {
  get(name: string): string | null;
}

/** The server's requested wait in ms from retry-after-ms / retry-after (seconds or HTTP date), else null. */
export function retryAfterMs(headers: HeaderSource | undefined, now = Date.now()): number | null {
  if (!headers) return null;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '' && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const ra = headers.get('retry-after');
  if (ra === null || ra.trim() === '') return null;
  if (Number.isFinite(Number(ra))) return Math.max(0, Number(ra) * 1000);
  const date = Date.parse(ra);
  return Number.isFinite(date) ? Math.max(0, date - now) : null;
}

/** Exponential backoff with jitter: min(base·2^attempt, cap) · (1 − 0.25·random), as the SDK does. */
export function backoffMs(attempt: number, baseMs = 500, capMs = 8000, random: () => number = Math.random): number {
  const d = Math.min(baseMs * 2 ** attempt, capMs);
  return d * (1 - 0.25 * random());
}

export type FailureKind = 'retry' | 'reject' | 'fatal';

/**
 * What to do with an HTTP status: retry (408, 409, 429, ≥ 500), reject the row (400, 413, 422: the
 * request itself is bad), or stop the run (401, 403, 404 and other 4xx: every row would fail the same way).
 * `x-should-retry` overrides, and a 429 for an exhausted quota is fatal (retrying cannot help).
 */
export function classifyStatus(status: number, headers?: HeaderSource, errorCode?: string | null): FailureKind {
  const should = headers?.get('x-should-retry');
  if (should === 'true') return 'retry';
  if (status === 429 && errorCode === 'insufficient_quota') return 'fatal';
  if (should === 'false') return status === 400 || status === 413 || status === 422 ? 'reject' : 'fatal';
  if (status === 408 || status === 409 || status === 429 || status >= 500) return 'retry';
  if (status === 400 || status === 413 || status === 422) return 'reject';
  return 'fatal';
}

export interface RateLimitState {
  remainingRequests: number | null;
  remainingTokens: number | null;
  resetRequestsAt: number;
  resetTokensAt: number;
}

/**
 * Shared by all workers: a global pause (retry-after, 429s) and the last rate-limit window the server
 * reported. `acquire` resolves when a request of `tokens` may be sent.
 */
export class Pacer {
  private pauseUntil = 0;
  readonly state: RateLimitState = { remainingRequests: null, remainingTokens: null, resetRequestsAt: 0, resetTokensAt: 0 };
  /** Total ms workers spent waiting here (for the summary). */
  waitedMs = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Pause every worker for at least `ms` from now. */
  pause(ms: number): void {
    this.pauseUntil = Math.max(this.pauseUntil, this.now() + ms);
  }

  /** Reads rate-limit headers from any response (success or error). */
  observe(headers: HeaderSource | undefined): void {
    if (!headers) return;
    const now = this.now();
    const num = (name: string) => {
      const v = headers.get(name);
      return v !== null && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : null;
    };
    const rr = num('x-ratelimit-remaining-requests');
    const rt = num('x-ratelimit-remaining-tokens');
    const resetR = parseDuration(headers.get('x-ratelimit-reset-requests'));
    const resetT = parseDuration(headers.get('x-ratelimit-reset-tokens'));
    if (rr !== null) {
      this.state.remainingRequests = rr;
      this.state.resetRequestsAt = now + (resetR ?? 1000);
    }
    if (rt !== null) {
      this.state.remainingTokens = rt;
      this.state.resetTokensAt = now + (resetT ?? 1000);
    }
  }

  /** How long a request of `tokens` must wait now (0 = go); reserves it when it may go. */
  delayFor(tokens: number): number {
    const now = this.now();
    if (this.pauseUntil > now) return this.pauseUntil - now;
    const s = this.state;
    if (s.remainingRequests !== null) {
      if (s.resetRequestsAt <= now) s.remainingRequests = null;
      else if (s.remainingRequests < 1) return s.resetRequestsAt - now;
    }
    if (s.remainingTokens !== null) {
      if (s.resetTokensAt <= now) s.remainingTokens = null;
      else if (s.remainingTokens < tokens) return s.resetTokensAt - now;
    }
    // Reserve optimistically until the next response reports the real figures.
    if (s.remainingRequests !== null) s.remainingRequests -= 1;
    if (s.remainingTokens !== null) s.remainingTokens -= tokens;
    return 0;
  }

  async acquire(tokens: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted) return;
      const d = this.delayFor(tokens);
      if (d <= 0) return;
      const t0 = this.now();
      await sleep(Math.min(d, 5000), signal);
      this.waitedMs += this.now() - t0;
    }
  }
}

/** setTimeout as a promise that an AbortSignal ends early (resolves, never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** At most `size` holders at once; waiters are served first come, first served. */
export class Semaphore {
  private held = 0;
  private readonly waiters: (() => void)[] = [];
  constructor(private readonly size: number) {}
  get inUse(): number {
    return this.held;
  }
  acquire(): Promise<void> {
    if (this.held < this.size) {
      this.held++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  /** Hands the slot to the next waiter, if any. */
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.held--;
  }
}
