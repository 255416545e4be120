/**
 * kd export: the student as a TensorFlow.js GraphModel that plain @tensorflow/tfjs loads and runs in
 * Node and in the browser — no kd code. The graph is model/gpt.ts's forward
 * pass written as TF ops:
 *   input  "ids":    int32 [B, T], T ≤ seqLen (any B and T: shapes are computed in the graph)
 *   output "logits": float32 [B, T, V]
 * Quantized checkpoints export int8 weights (1 byte each, see graph.ts) times per-channel scales;
 * float32 ones export float32. The directory gets model.json, weight shards, tokenizer.json (when
 * the checkpoint has one), manifest.json (format "kd-export": shapes, provenance, files), a README.md,
 * and what runs it with no code of the user's (web.ts): kd-student.js, index.html and tfjs's browser bundle.
 */
import fs from 'node:fs';
import path from 'node:path';
import { replaceDir, tempDirBeside, writeFileAtomic, writeJsonAtomic } from '../core/atomic.js';
import { KdError } from '../core/errors.js';
import { type ModelConfig, blockShape, parameterCount } from '../model/config.js';
import { modelConfigOf, weightArrays } from '../model/load.js';
import { type NamedArray, loadCheckpoint } from '../schema/checkpoint.js';
import { GraphBuilder, attr } from './graph.js';
import { sha256File } from '../core/hash.js';
import { exportReadme } from './readme.js';
import { copyWebFiles } from './web.js';

export const EXPORT_FORMAT = 'kd-export';
const SHARD_BYTES = 4 * 1024 * 1024; // tfjs converter's default shard size


export interface ExportOptions {
  checkpoint: string;
  out: string;
  force?: boolean;
}

export interface ExportSummary {
  dir: string;
  files: string[];
  /** model.json + weight shards */
  bytes: number;
  weightBytes: number;
  quantized: boolean;
  params: number;
  tokenizer: boolean;
}

/** A weight as stored: float32, or int8 with scales (one, or one per index along `axis`). */
type Source = { shape: number[]; f32?: Float32Array; q?: Int8Array; scales?: Float32Array; axis?: number };

/** Columns [from, to) of a row-major [rows, n] weight (q, k, v out of qkv). */
function sliceCols(s: Source, from: number, to: number): Source {
  const [rows, n] = s.shape;
  const w = to - from;
  const take = <A extends Float32Array | Int8Array>(a: A, make: (len: number) => A): A => {
    const out = make(rows * w);
    for (let r = 0; r < rows; r++) out.set(a.subarray(r * n + from, r * n + to), r * w);
    return out;
  };
  if (s.f32) return { shape: [rows, w], f32: take(s.f32, (l) => new Float32Array(l)) };
  const perCol = s.scales!.length > 1 && s.axis === 1;
  return { shape: [rows, w], q: take(s.q!, (l) => new Int8Array(l)), scales: perCol ? s.scales!.slice(from, to) : s.scales, axis: s.axis };
}

/** The weight as a graph tensor: a Const, or int8 Const × scale Const. */
function weight(g: GraphBuilder, name: string, s: Source): string {
  if (s.f32) return g.f32(name, s.f32, s.shape);
  const q = g.int8(`${name}/q`, s.q!, s.shape);
  const perTensor = s.scales!.length === 1 && s.axis === undefined;
  const scaleShape = perTensor ? [] : s.axis === 0 ? [s.shape[0], 1] : [1, s.shape[1]];
  return g.op('Mul', [q, g.f32(`${name}/scale`, s.scales!, scaleShape)], attr.T(), name);
}

/** The forward pass of model/gpt.ts as a graph. */
export function buildGraph(c: ModelConfig, src: (name: string) => Source): GraphBuilder {
  const g = new GraphBuilder();
  const T = attr.T();
  const d = c.dModel;
  const ids = g.placeholder('ids', 'DT_INT32', [-1, -1]);
  const idsShape = g.op('Shape', [ids], { out_type: attr.type('DT_INT32'), ...attr.T('DT_INT32') }, 'ids_shape'); // [B, T]
  const t1 = g.op('Slice', [idsShape, g.i32('one', [1]), g.i32('one_len', [1])], {}, 'T'); // [T]
  const axis0 = g.i32('axis0', [0], []);
  const shapeWith = (tail: number[], name: string) => g.op('ConcatV2', [idsShape, g.i32(`${name}/tail`, tail), axis0], { N: { i: '2' }, ...attr.T('DT_INT32') }, name);
  const rows = (x: string, w: number) => g.op('Reshape', [x, g.i32(`rows${w}`, [-1, w])], T, 'flat');
  const mul = (a: string, b: string) => g.op('Mul', [a, b], T);
  const add = (a: string, b: string) => g.op('AddV2', [a, b], T);
  const matMul = (a: string, b: string, transposeB = false) => g.op('MatMul', [a, b], { transpose_a: attr.b(false), transpose_b: attr.b(transposeB), ...T });
  const meanLast = (x: string) => g.op('Mean', [x, g.i32('last_axis', [-1])], { keep_dims: attr.b(true), Tidx: attr.type('DT_INT32'), ...T });
  const eps = g.f32('ln_eps', [c.lnEps], []);
  const layerNorm = (x: string, p: string) => { // (x − μ)·rsqrt(σ² + ε)·g + b, as tf.moments computes σ²
    const mu = meanLast(x);
    const v = meanLast(g.op('SquaredDifference', [x, mu], T));
    const y = mul(mul(g.op('Sub', [x, mu], T), g.op('Rsqrt', [add(v, eps)], T)), weight(g, `${p}.g`, src(`${p}.g`)));
    return add(y, weight(g, `${p}.b`, src(`${p}.b`)));
  };

  const wte = weight(g, 'wte', src('wte'));
  const tok = g.op('GatherV2', [wte, g.op('Reshape', [ids, g.i32('flat_shape', [-1])], attr.T('DT_INT32')), axis0],
    { batch_dims: { i: '0' }, Taxis: attr.type('DT_INT32'), Tindices: attr.type('DT_INT32'), Tparams: attr.type('DT_FLOAT') }, 'tok'); // [B·T, d]
  const pos = g.op('Slice', [weight(g, 'wpe', src('wpe')), g.i32('zero2', [0, 0]),
    g.op('ConcatV2', [t1, g.i32('all', [-1]), axis0], { N: { i: '2' }, ...attr.T('DT_INT32') }, 'pos_size')], T, 'pos'); // [T, d]
  let x = rows(add(g.op('Reshape', [tok, shapeWith([d], 'btd')], T), pos), d); // [B·T, d]

  // Causal mask [T, T]: 0 on and below the diagonal, −1e9 above (as gpt.ts's causalMask).
  const r = g.op('Range', [g.i32('r0', [0], []), t1, g.i32('r1', [1], [])], { Tidx: attr.type('DT_INT32') }, 'range');
  const above = g.op('Greater', [g.op('Reshape', [r, g.i32('row_vec', [1, -1])], attr.T('DT_INT32')), g.op('Reshape', [r, g.i32('col_vec', [-1, 1])], attr.T('DT_INT32'))], attr.T('DT_INT32'), 'above');
  const mask = mul(g.op('Cast', [above], { SrcT: attr.type('DT_BOOL'), DstT: attr.type('DT_FLOAT') }), g.f32('neg_inf', [-1e9], []));

  const perm = g.i32('perm_bhtd', [0, 2, 1, 3]);
  for (let i = 0; i < c.nLayers; i++) {
    const { nHeads: H, headDim: hd } = blockShape(c, i);
    const h = layerNorm(x, `h${i}.ln1`);
    const qkv = src(`h${i}.attn.qkv`);
    const heads = (part: number, nm: string) => { // [B·T, H·hd] → [B, H, T, hd]
      const z = matMul(h, weight(g, `h${i}.attn.${nm}`, sliceCols(qkv, part * H * hd, (part + 1) * H * hd)));
      return g.op('Transpose', [g.op('Reshape', [z, shapeWith([H, hd], `h${i}.bthd`)], T), perm], { Tperm: attr.type('DT_INT32'), ...T });
    };
    const [q, k, v] = [heads(0, 'q'), heads(1, 'k'), heads(2, 'v')];
    const scores = add(mul(g.op('BatchMatMulV2', [q, k], { adj_x: attr.b(false), adj_y: attr.b(true), ...T }), g.f32(`h${i}.scale`, [1 / Math.sqrt(hd)], [])), mask);
    const y = g.op('BatchMatMulV2', [g.op('Softmax', [scores], T), v], { adj_x: attr.b(false), adj_y: attr.b(false), ...T }); // [B, H, T, hd]
    const merged = rows(g.op('Transpose', [y, perm], { Tperm: attr.type('DT_INT32'), ...T }), H * hd); // [B·T, H·hd]
    x = add(x, matMul(merged, weight(g, `h${i}.attn.proj`, src(`h${i}.attn.proj`))));
    const u = matMul(layerNorm(x, `h${i}.ln2`), weight(g, `h${i}.mlp.fc`, src(`h${i}.mlp.fc`))); // [B·T, f]
    const gelu = mul(mul(u, g.f32('half', [0.5], [])), add(g.op('Erf', [mul(u, g.f32('sqrt_half', [Math.SQRT1_2], []))], T), g.f32('one_f', [1], [])));
    x = add(x, matMul(gelu, weight(g, `h${i}.mlp.out`, src(`h${i}.mlp.out`))));
  }
  const logits = matMul(layerNorm(x, 'lnf'), wte, true); // [B·T, V]: the tied head
  g.op('Identity', [g.op('Reshape', [logits, shapeWith([c.vocabSize], 'btv')], T)], T, 'logits');
  return g;
}

function sourcesOf(c: ModelConfig, arrays: Map<string, NamedArray>, file: string): (name: string) => Source {
  const f32 = weightArrays(c, arrays, file); // also checks every name and shape
  return (name) => {
    const a = arrays.get(name)!;
    if (a.dtype === 'int8') return { shape: a.shape, q: a.data as Int8Array, scales: a.scales!, ...(a.scales!.length > 1 ? { axis: a.axis ?? a.shape.length - 1 } : {}) };
    return { shape: a.shape, f32: f32.get(name)! };
  };
}

export function exportModel(o: ExportOptions): ExportSummary {
  const dir = path.resolve(o.out);
  if (fs.existsSync(dir) && !o.force) throw new KdError('would-overwrite', `${o.out} exists: pass --force to replace it, or choose another --out`);
  const { header, arrays, file } = loadCheckpoint(o.checkpoint);
  if (path.resolve(file).startsWith(dir + path.sep)) throw new KdError('would-overwrite', `--out ${o.out} holds the input checkpoint; choose another --out`);
  const c = modelConfigOf(header, file);
  const g = buildGraph(c, sourcesOf(c, arrays, file));
  const quantized = [...arrays.values()].some((a) => a.dtype === 'int8');

  // Write everything into a sibling temp directory, then rename it into place.
  const tmp = tempDirBeside(dir, 'kd-export');
  const data = g.weightData();
  const nShards = Math.max(1, Math.ceil(data.length / SHARD_BYTES));
  const paths = Array.from({ length: nShards }, (_, i) => `group1-shard${i + 1}of${nShards}.bin`);
  paths.forEach((p, i) => writeFileAtomic(path.join(tmp, p), Buffer.from(data.subarray(i * SHARD_BYTES, (i + 1) * SHARD_BYTES))));
  const modelJson = {
    format: 'graph-model', generatedBy: 'kd', convertedBy: 'kd export',
    modelTopology: { node: g.nodes, library: {}, versions: { producer: 1 } },
    weightsManifest: [{ paths, weights: g.specs }],
  };
  writeFileAtomic(path.join(tmp, 'model.json'), JSON.stringify(modelJson)); // compact: the node list is most of its size
  if (header.tokenizer) writeJsonAtomic(path.join(tmp, 'tokenizer.json'), header.tokenizer);
  const web = copyWebFiles(tmp);
  const files = ['model.json', ...paths, ...(header.tokenizer ? ['tokenizer.json'] : []), 'manifest.json', 'README.md', ...web];
  const bytes = fs.statSync(path.join(tmp, 'model.json')).size + data.length;
  writeJsonAtomic(path.join(tmp, 'manifest.json'), {
    format: EXPORT_FORMAT, version: 1, createdAt: new Date().toISOString(),
    input: { name: 'ids', dtype: 'int32', shape: [-1, -1], maxSeqLen: c.seqLen }, output: { name: 'logits', dtype: 'float32', shape: [-1, -1, c.vocabSize] },
    model: c, params: parameterCount(c), quantized, weights: quantized ? 'int8 (uint8 + 128 in the shards) × float32 per-channel scales' : 'float32',
    tokenizer: header.tokenizer ? 'tokenizer.json' : null, source: { checkpoint: file, sha256: sha256File(file), meta: header.meta ?? {} },
    bytes, files,
  });
  writeFileAtomic(path.join(tmp, 'README.md'), exportReadme(c, quantized, Boolean(header.tokenizer)));
  replaceDir(tmp, dir);
  return { dir, files, bytes, weightBytes: data.length, quantized, params: parameterCount(c), tokenizer: Boolean(header.tokenizer) };
}
