import { KdError } from '../errors.js';

/** Student transformer sizes. Same meaning as ../shared/bench/torch_reference.py. */
export interface ModelConfig {
  vocabSize: number;
  /** maximum sequence length (size of the position embedding) */
  seqLen: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  /** MLP width = ffnMult · dModel */
  ffnMult: number;
  /** LayerNorm epsilon (torch default 1e-5) */
  lnEps: number;
}

export const REFERENCE_CONFIG: ModelConfig = {
  vocabSize: 8192, seqLen: 128, dModel: 128, nLayers: 2, nHeads: 4, ffnMult: 4, lnEps: 1e-5,
};

const INT_FIELDS = ['vocabSize', 'seqLen', 'dModel', 'nLayers', 'nHeads', 'ffnMult'] as const;

/** Fill defaults and check every size; throws KdError naming the field, the value and the fix. */
export function resolveModelConfig(partial: Partial<ModelConfig>, source = 'model config'): ModelConfig {
  const known = new Set<string>([...INT_FIELDS, 'lnEps']);
  for (const k of Object.keys(partial)) {
    if (!known.has(k)) throw new KdError('bad-config', `${source}: unknown field "${k}" (known: ${[...known].join(', ')})`);
  }
  const c: ModelConfig = { ...REFERENCE_CONFIG, ...partial };
  for (const f of INT_FIELDS) {
    const v = c[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new KdError('bad-config', `${source}: ${f} must be a positive integer, got ${JSON.stringify(v)}`);
    }
  }
  if (!(typeof c.lnEps === 'number' && c.lnEps > 0)) {
    throw new KdError('bad-config', `${source}: lnEps must be a positive number, got ${JSON.stringify(c.lnEps)}`);
  }
  if (c.dModel % c.nHeads !== 0) {
    throw new KdError('bad-config', `${source}: nHeads (${c.nHeads}) must divide dModel (${c.dModel})`);
  }
  return c;
}

/** Parameter count: embeddings (tied head) + per block (2 LN + qkv + proj + fc + out) + final LN. */
export function parameterCount(c: ModelConfig): number {
  const d = c.dModel;
  const f = c.ffnMult * d;
  const block = 4 * d + 3 * d * d + d * d + 2 * d * f;
  return c.vocabSize * d + c.seqLen * d + c.nLayers * block + 2 * d;
}

/**
 * Forward FLOPs per token for training-throughput accounting (2·MACs): the matmuls, the attention
 * score/value products and the tied output head. A training step costs ≈ 3× this.
 */
export function flopsPerToken(c: ModelConfig, seqLen = c.seqLen): number {
  const d = c.dModel;
  const f = c.ffnMult * d;
  const perLayer = 2 * (3 * d * d + d * d + 2 * d * f) + 2 * 2 * seqLen * d;
  return c.nLayers * perLayer + 2 * d * c.vocabSize;
}
