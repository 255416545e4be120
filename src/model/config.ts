import { KdError } from '../core/errors.js';

/** Student transformer sizes. Same meaning as bench/torch_reference.py. */
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
  /** attention head size; absent = dModel / nHeads (set by structured pruning, which keeps it) */
  headDim?: number;
  /**
   * Per-block head count and MLP width after structured pruning (kd prune --method heads|neurons);
   * absent = nHeads heads and ffnMult·dModel neurons in every block, as trained.
   */
  layers?: BlockShape[];
}

export interface BlockShape {
  nHeads: number;
  ffnDim: number;
}

/** Sizes of block i: heads, head size and MLP width. */
export function blockShape(c: ModelConfig, i: number): { nHeads: number; headDim: number; ffnDim: number } {
  const l = c.layers?.[i];
  return { nHeads: l?.nHeads ?? c.nHeads, headDim: c.headDim ?? c.dModel / c.nHeads, ffnDim: l?.ffnDim ?? c.ffnMult * c.dModel };
}

export const REFERENCE_CONFIG: ModelConfig = {
  vocabSize: 8192, seqLen: 128, dModel: 128, nLayers: 2, nHeads: 4, ffnMult: 4, lnEps: 1e-5,
};

const INT_FIELDS = ['vocabSize', 'seqLen', 'dModel', 'nLayers', 'nHeads', 'ffnMult'] as const;

/** Fill defaults and check every size; throws KdError naming the field, the value and the fix. */
export function resolveModelConfig(partial: Partial<ModelConfig>, source = 'model config'): ModelConfig {
  const known = new Set<string>([...INT_FIELDS, 'lnEps', 'headDim', 'layers']);
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
  if (c.headDim !== undefined && !(Number.isInteger(c.headDim) && c.headDim >= 1)) {
    throw new KdError('bad-config', `${source}: headDim must be a positive integer, got ${JSON.stringify(c.headDim)}`);
  }
  if (c.layers !== undefined) {
    if (!Array.isArray(c.layers) || c.layers.length !== c.nLayers) {
      throw new KdError('bad-config', `${source}: layers must list ${c.nLayers} blocks {nHeads, ffnDim}, got ${JSON.stringify(c.layers)}`);
    }
    c.layers.forEach((l, i) => {
      const ok = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;
      if (!l || typeof l !== 'object' || !ok(l.nHeads) || !ok(l.ffnDim) || Object.keys(l).length !== 2) {
        throw new KdError('bad-config', `${source}: layers[${i}] must be {nHeads, ffnDim} with positive integers, got ${JSON.stringify(l)}`);
      }
    });
  }
  return c;
}

/** Parameter count: embeddings (tied head) + per block (2 LN + qkv + proj + fc + out) + final LN. */
export function parameterCount(c: ModelConfig): number {
  const d = c.dModel;
  let blocks = 0;
  for (let i = 0; i < c.nLayers; i++) {
    const { nHeads: H, headDim: hd, ffnDim: f } = blockShape(c, i);
    blocks += 4 * d + 3 * d * H * hd + H * hd * d + 2 * d * f;
  }
  return c.vocabSize * d + c.seqLen * d + blocks + 2 * d;
}

/**
 * Forward FLOPs per token for training-throughput accounting (2·MACs): the matmuls, the attention
 * score/value products and the tied output head. A training step costs ≈ 3× this.
 */
export function flopsPerToken(c: ModelConfig, seqLen = c.seqLen): number {
  const d = c.dModel;
  let layers = 0;
  for (let i = 0; i < c.nLayers; i++) {
    const { nHeads: H, headDim: hd, ffnDim: f } = blockShape(c, i);
    const a = H * hd; // attention width
    layers += 2 * (3 * d * a + a * d + 2 * d * f) + 2 * 2 * seqLen * a;
  }
  return layers + 2 * d * c.vocabSize;
}
