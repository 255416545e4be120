import { describe, expect, it } from 'vitest';
import { backoffMs, classifyStatus, Pacer, parseDuration, retryAfterMs } from '../../src/collect/pacing.js';

const headers = (h: Record<string, string>) => new Headers(h);

describe('rate-limit header parsing', () => {
  it('reads Go-style durations', () => {
    expect(parseDuration('12ms')).toBe(12);
    expect(parseDuration('6m0s')).toBe(360_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('1h2m3s')).toBe(3_723_000);
    expect(parseDuration('2')).toBe(2000);
    expect(parseDuration('soon')).toBeNull();
    expect(parseDuration('')).toBeNull();
  });
  it('prefers retry-after-ms, then retry-after seconds or HTTP date', () => {
    expect(retryAfterMs(headers({ 'retry-after-ms': '250', 'retry-after': '9' }))).toBe(250);
    expect(retryAfterMs(headers({ 'retry-after': '2' }))).toBe(2000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs(headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }), now)).toBe(3000);
    expect(retryAfterMs(headers({}))).toBeNull();
  });
  it('backs off exponentially up to 8 s with at most 25% jitter', () => {
    expect(backoffMs(0, 500, 8000, () => 0)).toBe(500);
    expect(backoffMs(3, 500, 8000, () => 0)).toBe(4000);
    expect(backoffMs(10, 500, 8000, () => 0)).toBe(8000);
    expect(backoffMs(1, 500, 8000, () => 1)).toBe(750);
  });
});

describe('failure classification', () => {
  it('retries 408/409/429/5xx, rejects 400/413/422, stops on auth and not-found', () => {
    expect([408, 409, 429, 500, 502, 503].map((s) => classifyStatus(s))).toEqual(Array(6).fill('retry'));
    expect([400, 413, 422].map((s) => classifyStatus(s))).toEqual(['reject', 'reject', 'reject']);
    expect([401, 403, 404].map((s) => classifyStatus(s))).toEqual(['fatal', 'fatal', 'fatal']);
  });
  it('honours x-should-retry and treats an exhausted quota as fatal', () => {
    expect(classifyStatus(400, headers({ 'x-should-retry': 'true' }))).toBe('retry');
    expect(classifyStatus(503, headers({ 'x-should-retry': 'false' }))).toBe('fatal');
    expect(classifyStatus(429, undefined, 'insufficient_quota')).toBe('fatal');
  });
});

describe('Pacer', () => {
  it('holds requests while paused and when the request window is used up', () => {
    let now = 1000;
    const p = new Pacer(() => now);
    expect(p.delayFor(10)).toBe(0);
    p.pause(500);
    expect(p.delayFor(10)).toBe(500);
    now += 500;
    expect(p.delayFor(10)).toBe(0);
    p.observe(headers({ 'x-ratelimit-remaining-requests': '2', 'x-ratelimit-reset-requests': '1s' }));
    expect(p.delayFor(1)).toBe(0);
    expect(p.delayFor(1)).toBe(0);
    expect(p.delayFor(1)).toBe(1000); // reserved both remaining requests
    now += 1000;
    expect(p.delayFor(1)).toBe(0); // window reset
  });
  it('holds a request bigger than the remaining token budget until the tokens reset', () => {
    let now = 0;
    const p = new Pacer(() => now);
    p.observe(headers({ 'x-ratelimit-remaining-tokens': '100', 'x-ratelimit-reset-tokens': '6m0s' }));
    expect(p.delayFor(60)).toBe(0);
    expect(p.delayFor(60)).toBe(360_000);
    now = 360_000;
    expect(p.delayFor(60)).toBe(0);
  });
});
