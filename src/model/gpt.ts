/**
 * The student: a GPT-style decoder, the same definition as bench/torch_reference.py.
 *
 *   x = wte[ids] + wpe[0..T)                                   [B, T, d]
 *   repeat nLayers:  x += proj(causalSelfAttention(LN1(x)))     (pre-LayerNorm)
 *                    x += out(gelu(fc(LN2(x))))
 *   logits = LN_f(x) · wteᵀ                                    [B, T, V]  (output tied to the token embedding)
 *
 * Structured pruning may leave block i with its own head count H_i (head size kept) and MLP width f_i
 * (config.layers, config.headDim); qkv is then [d, 3·H_i·hd] and proj [H_i·hd, d].
 * No biases in the linear layers (LayerNorms keep gain and bias, as torch.nn.LayerNorm does), no dropout.
 * Weights are plain tf.Variables in a name → variable map, so the optimizer, checkpoints and compression
 * all see the same flat list. Activations are kept 2-D ([B·T, d]) wherever possible: 2-D matmuls are the
 * fast path on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import { type ModelConfig, blockShape, parameterCount } from './config.js';
import { fusedAttention, fusedGelu, fusedLayerNorm } from './fused.js';

export type Params = Map<string, tf.Variable>;

export interface Model {
  config: ModelConfig;
  params: Params;
}

/** Names and shapes of every weight, in a fixed order (checkpoints depend on it). */
export function paramShapes(c: ModelConfig): [string, number[]][] {
  const d = c.dModel;
  const shapes: [string, number[]][] = [['wte', [c.vocabSize, d]], ['wpe', [c.seqLen, d]]];
  for (let i = 0; i < c.nLayers; i++) {
    const { nHeads: H, headDim: hd, ffnDim: f } = blockShape(c, i);
    shapes.push(
      [`h${i}.ln1.g`, [d]], [`h${i}.ln1.b`, [d]],
      [`h${i}.attn.qkv`, [d, 3 * H * hd]], [`h${i}.attn.proj`, [H * hd, d]],
      [`h${i}.ln2.g`, [d]], [`h${i}.ln2.b`, [d]],
      [`h${i}.mlp.fc`, [d, f]], [`h${i}.mlp.out`, [f, d]],
    );
  }
  shapes.push(['lnf.g', [d]], ['lnf.b', [d]]);
  return shapes;
}

/**
 * GPT-2 initialisation: N(0, 0.02) for matrices and embeddings, residual projections scaled by
 * 1/√(2·nLayers), LayerNorm gain 1 and bias 0. Deterministic for a seed.
 */
export function initModel(config: ModelConfig, seed = 0): Model {
  const params: Params = new Map();
  paramShapes(config).forEach(([name, shape], i) => {
    const value = tf.tidy(() => {
      if (name.endsWith('.g')) return tf.ones(shape);
      if (name.endsWith('.b')) return tf.zeros(shape);
      const std = /\.(proj|out)$/.test(name) ? 0.02 / Math.sqrt(2 * config.nLayers) : 0.02;
      return tf.randomNormal(shape, 0, std, 'float32', seed * 1000 + i + 1); // tfjs treats seed 0 as "no seed"
    });
    params.set(name, tf.variable(value, true, `${name}#${modelIds++}`));
    value.dispose();
  });
  return { config, params };
}
let modelIds = 0;

/** Build a model from named arrays (checkpoint load, compression). Shapes are checked by the caller. */
export function modelFromArrays(config: ModelConfig, arrays: Map<string, Float32Array>): Model {
  const params: Params = new Map();
  for (const [name, shape] of paramShapes(config)) {
    const data = arrays.get(name);
    if (!data) throw new Error(`missing weight ${name}`);
    const t = tf.tensor(data, shape, 'float32');
    params.set(name, tf.variable(t, true, `${name}#${modelIds++}`));
    t.dispose(); // the variable holds its own reference to the data
  }
  return { config, params };
}

export function disposeModel(m: Model): void {
  for (const v of m.params.values()) v.dispose();
  m.params.clear();
}

export function countParams(m: Model): number {
  let n = 0;
  for (const v of m.params.values()) n += v.size;
  return n;
}
export { parameterCount };

/** A weight by name (the KV-cached forward in kv.ts reads the same ones). */
export function weight(m: Model, name: string): tf.Variable {
  const v = m.params.get(name);
  if (!v) throw new Error(`model has no weight ${name}`);
  return v;
}

/**
 * LayerNorm over the last axis: (x − μ)/√(σ² + ε) · g + b.   x: [N, d]
 * (One fused op when kd's native kernels run on this backend, see fused.ts; the same math.)
 */
export function layerNorm(x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor2D {
  const fused = fusedLayerNorm(x, g, b, eps);
  if (fused) return fused;
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), g), b);
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)) — torch.nn.functional.gelu's default. */
export function gelu(x: tf.Tensor): tf.Tensor {
  const fused = fusedGelu(x);
  if (fused) return fused;
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

const maskCache = new Map<number, tf.Tensor2D>();
/** Additive causal mask [T, T]: 0 on and below the diagonal, −1e9 above. Cached per T, never disposed. */
function causalMask(T: number): tf.Tensor2D {
  let m = maskCache.get(T);
  if (!m || m.isDisposed) {
    m = tf.tidy(() => tf.mul(tf.sub(tf.linalg.bandPart(tf.ones([T, T]), -1, 0), 1), 1e9) as tf.Tensor2D);
    tf.keep(m);
    maskCache.set(T, m);
  }
  return m;
}

/** Causal multi-head self-attention, H heads of size hd.   h: [B·T, d] → [B·T, H·hd] (before the output projection) */
function attention(h: tf.Tensor2D, wqkv: tf.Tensor, B: number, T: number, H: number, hd: number): tf.Tensor2D {
  const qkv = tf.matMul(h, wqkv as tf.Tensor2D) as tf.Tensor2D; // [B·T, 3d]
  const fused = fusedAttention(qkv, B, T, H, hd); // the same math in one op, when kd's native kernels run
  if (fused) return fused;
  const heads = (z: tf.Tensor) => tf.reshape(tf.transpose(tf.reshape(z, [B, T, H, hd]), [0, 2, 1, 3]), [B * H, T, hd]);
  const [q, k, v] = tf.split(qkv, 3, 1).map(heads); // each [B·H, T, hd]
  const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), causalMask(T)); // [B·H, T, T]
  const y = tf.matMul(tf.softmax(scores), v); // [B·H, T, hd]
  return tf.reshape(tf.transpose(tf.reshape(y, [B, H, T, hd]), [0, 2, 1, 3]), [B * T, H * hd]);
}

/**
 * Everything up to the final LayerNorm.   ids: [B, T] int32 (T ≤ seqLen) → hidden [B·T, d].
 * Call inside tf.tidy / variableGrads.
 */
export function forwardHidden(m: Model, ids: tf.Tensor2D): tf.Tensor2D {
  const c = m.config;
  const [B, T] = ids.shape;
  if (T > c.seqLen) throw new Error(`sequence length ${T} exceeds the model's seqLen ${c.seqLen}`);
  const tok = tf.gather(weight(m, 'wte'), tf.reshape(ids, [B * T])); // [B·T, d]
  const pos = tf.slice(weight(m, 'wpe'), [0, 0], [T, c.dModel]); // [T, d]
  let x = tf.reshape(tf.add(tf.reshape(tok, [B, T, c.dModel]), pos), [B * T, c.dModel]) as tf.Tensor2D;
  for (let i = 0; i < c.nLayers; i++) {
    const { nHeads: H, headDim: hd } = blockShape(c, i);
    const a = attention(layerNorm(x, weight(m, `h${i}.ln1.g`), weight(m, `h${i}.ln1.b`), c.lnEps), weight(m, `h${i}.attn.qkv`), B, T, H, hd);
    x = tf.add(x, tf.matMul(a, weight(m, `h${i}.attn.proj`) as tf.Tensor2D));
    const h2 = layerNorm(x, weight(m, `h${i}.ln2.g`), weight(m, `h${i}.ln2.b`), c.lnEps);
    x = tf.add(x, tf.matMul(gelu(tf.matMul(h2, weight(m, `h${i}.mlp.fc`) as tf.Tensor2D)) as tf.Tensor2D, weight(m, `h${i}.mlp.out`) as tf.Tensor2D));
  }
  return layerNorm(x, weight(m, 'lnf.g'), weight(m, 'lnf.b'), c.lnEps);
}

/** Full logits for training or scoring.   ids: [B, T] → [B, T, V] */
export function forwardLogits(m: Model, ids: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, T] = ids.shape;
    const h = forwardHidden(m, ids);
    return tf.reshape(tf.matMul(h, weight(m, 'wte') as tf.Tensor2D, false, true), [B, T, m.config.vocabSize]) as tf.Tensor3D;
  });
}

/**
 * Next-token distribution for generation: log-probabilities at the last position, optionally
 * tempered.   ids: [B, T] → [B, V]. Contexts longer than seqLen keep their last seqLen tokens.
 */
export function nextTokenLogProbs(m: Model, ids: tf.Tensor2D, temperature = 1): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T] = ids.shape;
    const ctx = T > m.config.seqLen ? tf.slice(ids, [0, T - m.config.seqLen], [B, m.config.seqLen]) : ids;
    const Tc = ctx.shape[1];
    const h = tf.reshape(forwardHidden(m, ctx), [B, Tc, m.config.dModel]);
    const last = tf.reshape(tf.slice(h, [0, Tc - 1, 0], [B, 1, m.config.dModel]), [B, m.config.dModel]) as tf.Tensor2D;
    const logits = tf.matMul(last, weight(m, 'wte') as tf.Tensor2D, false, true);
    return tf.logSoftmax(temperature === 1 ? logits : tf.div(logits, temperature)) as tf.Tensor2D;
  });
}
