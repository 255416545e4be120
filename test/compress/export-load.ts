/** Load an export directory with plain @tensorflow/tfjs only (what a user without kd does). */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

export async function loadExport(dir: string): Promise<tf.GraphModel> {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const m = json.weightsManifest[0];
  const data = Buffer.concat(m.paths.map((p: string) => fs.readFileSync(path.join(dir, p))));
  return tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, format: json.format, weightSpecs: m.weights,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
  }));
}
