/**
 * kd quantize: symmetric int8 (or 4-bit) weight quantization of a checkpoint, per output channel by
 * default (see int8.ts for the axes). Matrices and embeddings become int8 + float32 scales;
 * LayerNorm gains/biases and small tensors stay float32. Loading (model/load.ts) dequantizes.
 */
import fs from 'node:fs';
import { disposeModel, modelFromArrays } from '../model/gpt.js';
import { loadModel, weightArrays } from '../model/load.js';
import { type NamedArray, encodeCheckpoint } from '../schema/checkpoint.js';
import { compressedContent, float32Arrays, openCompressData, prepareOut, trainConfigOf, validationKl, writeCompressed } from './io.js';
import { type QuantScheme, channelAxis, checkBits, isQuantizable, quantizeArray } from '../model/int8.js';
import { KdError } from '../core/errors.js';
import { QUANTIZE_DEFAULTS } from './options.js';

export interface QuantizeOptions {
  checkpoint: string;
  out: string;
  bits?: number;
  scheme?: QuantScheme;
  /** dataset for the validation KL before/after; omitted = sizes only */
  data?: string;
  evalBatches?: number;
  force?: boolean;
}

export interface QuantizeSummary {
  checkpoint: string;
  bits: number;
  scheme: QuantScheme;
  /** input checkpoint file (may hold optimizer state) */
  inputBytes: number;
  /** the same model as a float32 weights-only checkpoint, and the quantized one */
  bytesBefore: number;
  bytesAfter: number;
  sizeRatio: number;
  /** weight bytes only (no header): float32 → int8 + scales */
  weightBytesBefore: number;
  weightBytesAfter: number;
  quantizedTensors: number;
  /** max |w − dequantized w| over all weights */
  maxAbsError: number;
  valKlBefore?: number;
  valKlAfter?: number;
  valKlRelChange?: number;
}

/** Quantize float32 weight arrays; already-int8 ones are kept as they are. */
export function quantizeArrays(arrays: NamedArray[], o: { bits: number; scheme: QuantScheme }): NamedArray[] {
  return arrays.map((a) => {
    if (a.dtype !== 'float32' || !isQuantizable(a.shape)) return a;
    const r = quantizeArray(a.data as Float32Array, a.shape, { ...o, axis: channelAxis(a.name, a.shape) });
    return { name: a.name, dtype: 'int8', shape: a.shape, data: r.q, scales: r.scales, ...(r.axis !== undefined ? { axis: r.axis } : {}) };
  });
}

export async function quantize(o: QuantizeOptions): Promise<QuantizeSummary> {
  const bits = checkBits(o.bits ?? QUANTIZE_DEFAULTS.bits);
  const scheme: QuantScheme = o.scheme ?? QUANTIZE_DEFAULTS.scheme;
  if (scheme !== 'per-channel' && scheme !== 'per-tensor') throw new KdError('bad-option', `--scheme ${scheme}: choose per-channel or per-tensor`);
  const out = prepareOut(o.out, o.checkpoint, o.force);
  const input = loadModel(o.checkpoint);
  let after: ReturnType<typeof modelFromArrays> | undefined;
  try {
    const config = input.model.config;
    const c = trainConfigOf(input.header, config);
    const data = o.data ? openCompressData(o.data, input, c, o.evalBatches ?? c.evalBatches) : undefined;
    const before = float32Arrays(input.model);
    const q = quantizeArrays(before, { bits, scheme });
    const deq = weightArrays(config, new Map(q.map((a) => [a.name, a])), out.file);
    let maxAbsError = 0;
    for (const a of before) {
      const d = deq.get(a.name)!;
      for (let i = 0; i < d.length; i++) maxAbsError = Math.max(maxAbsError, Math.abs(d[i] - a.data[i]));
    }
    let kl: Pick<QuantizeSummary, 'valKlBefore' | 'valKlAfter' | 'valKlRelChange'> = {};
    if (data) {
      after = modelFromArrays(config, deq);
      const k0 = validationKl(input.model, data.val, c);
      const k1 = validationKl(after, data.val, c);
      kl = { valKlBefore: k0, valKlAfter: k1, valKlRelChange: (k1 - k0) / k0 };
    }
    const wBytes = (xs: NamedArray[]) => xs.reduce((s, a) => s + a.data.byteLength + 4 * (a.scales?.length ?? 0), 0);
    const summary: QuantizeSummary = {
      checkpoint: out.file, bits, scheme, inputBytes: fs.statSync(input.file).size,
      bytesBefore: encodeCheckpoint(compressedContent(input, config, before)).length, bytesAfter: 0, sizeRatio: 0,
      weightBytesBefore: wBytes(before), weightBytesAfter: wBytes(q), quantizedTensors: q.filter((a) => a.dtype === 'int8').length,
      maxAbsError, ...kl,
    };
    writeCompressed({
      out, input, model: config, arrays: q, stage: 'quantize', parameters: { bits, scheme, data: o.data ?? null },
      figures: (bytes) => ({ ...Object.assign(summary, { bytesAfter: bytes, sizeRatio: bytes / summary.bytesBefore }) }),
    });
    return summary;
  } finally {
    disposeModel(input.model);
    if (after) disposeModel(after);
  }
}
