/**
 * A minimal TensorFlow GraphDef writer in the JSON form tfjs's GraphModel loads (`format:
 * "graph-model"`): nodes {name, op, input, attr} and a weightsManifest whose
 * entries are the graph's Const nodes, by name. Only what the exporter needs: float32/int32 constants,
 * int8 constants and the ops it uses (attrs in the protobuf-JSON shape tfjs-converter reads).
 *
 * int8 constants: tfjs weights have no int8 dtype, but the manifest's affine `quantization`
 * {dtype: "uint8", min, scale} is dequantized by plain tfjs at load. We store q + 128 as uint8 with
 * min −128 and scale 1, so the loaded tensor holds exactly the integers q (as float32); the graph
 * then multiplies by the per-channel float32 scales. On disk: 1 byte per weight.
 */

export type TfDtype = 'DT_FLOAT' | 'DT_INT32' | 'DT_BOOL';

export interface GraphNode {
  name: string;
  op: string;
  input: string[];
  attr: Record<string, unknown>;
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  quantization?: { dtype: 'uint8'; min: number; scale: number };
}

const shapeAttr = (shape: number[]) => ({ dim: shape.map((s) => ({ size: String(s) })) });

export class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  readonly specs: WeightSpec[] = [];
  readonly buffers: Uint8Array[] = [];
  private readonly used = new Set<string>();
  private n = 0;

  private unique(name: string): string {
    let u = name;
    while (this.used.has(u)) u = `${name}_${++this.n}`;
    this.used.add(u);
    return u;
  }

  /** Add a node; returns its name (the tensor it outputs). */
  op(op: string, input: string[], attr: Record<string, unknown> = {}, name = op): string {
    const n = this.unique(name);
    this.nodes.push({ name: n, op, input, attr });
    return n;
  }

  placeholder(name: string, dtype: TfDtype, shape: number[]): string {
    return this.op('Placeholder', [], { dtype: { type: dtype }, shape: { shape: shapeAttr(shape) } }, name);
  }

  private constant(name: string, dtype: TfDtype, spec: Omit<WeightSpec, 'name'>, bytes: Uint8Array): string {
    // No `value` attr: tfjs takes a Const's value from the weights manifest by name (saves ~40 bytes a node)
    const n = this.op('Const', [], { dtype: { type: dtype } }, name);
    this.specs.push({ name: n, ...spec });
    this.buffers.push(bytes);
    return n;
  }

  f32(name: string, data: Float32Array | number[], shape: number[]): string {
    const a = Float32Array.from(data);
    return this.constant(name, 'DT_FLOAT', { shape, dtype: 'float32' }, new Uint8Array(a.buffer));
  }

  i32(name: string, data: number[], shape = [data.length]): string {
    const a = Int32Array.from(data);
    return this.constant(name, 'DT_INT32', { shape, dtype: 'int32' }, new Uint8Array(a.buffer));
  }

  /** int8 values q, loaded by tfjs as float32 integers (see the header). */
  int8(name: string, q: Int8Array, shape: number[]): string {
    const bytes = Uint8Array.from(q, (v) => v + 128);
    return this.constant(name, 'DT_FLOAT', { shape, dtype: 'float32', quantization: { dtype: 'uint8', min: -128, scale: 1 } }, bytes);
  }

  /** The weights as one buffer, in manifest order. */
  weightData(): Uint8Array {
    const total = this.buffers.reduce((s, b) => s + b.length, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const b of this.buffers) { out.set(b, off); off += b.length; }
    return out;
  }
}

/** Attr helpers in protobuf-JSON form. */
export const attr = {
  T: (t: TfDtype = 'DT_FLOAT') => ({ T: { type: t } }),
  b: (v: boolean) => ({ b: v }),
  type: (t: TfDtype) => ({ type: t }),
};
