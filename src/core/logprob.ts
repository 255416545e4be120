/**
 * The teacher APIs' log-prob sentinel: -9999 stands for "outside the top-k" (OpenAI) or a clamped -inf
 * (vLLM). Collect stores such values as null; the loader pads missing top-k entries with it; losses
 * and metrics skip any entry at or below it.
 */
export const LOGPROB_SENTINEL = -9999;

/** A usable teacher log-prob: finite and above the sentinel. */
export const usableLogprob = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x) && x > LOGPROB_SENTINEL;
