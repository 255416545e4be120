/**
 * JSON for responses, with one addition: {@link OrderedObject} keeps its key order. A legacy
 * `top_logprobs` dict is sent best first (as Python servers do), but a plain JavaScript object puts
 * integer-like keys ("7", "42") first in numeric order, which would scramble that order.
 */
import { LOGPROB_SENTINEL } from '../core/logprob.js';
export class OrderedObject {
  constructor(readonly entries: [string, unknown][]) {}
}

export function stringify(v: unknown): string {
  if (v instanceof OrderedObject) {
    return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${stringify(x)}`).join(',')}}`;
  }
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : stringify(x))).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v)) if (x !== undefined) parts.push(`${JSON.stringify(k)}:${stringify(x)}`);
    return `{${parts.join(',')}}`;
  }
  // JSON has no -Infinity/NaN: a log-prob that underflowed is sent as the -9999 sentinel the ecosystem uses.
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? 'null' : v < 0 ? String(LOGPROB_SENTINEL) : String(-LOGPROB_SENTINEL);
  return JSON.stringify(v) ?? 'null';
}
