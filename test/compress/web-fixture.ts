/**
 * The committed teacher (real BPE vocabulary on State of the Union text) exported with its web files,
 * and kd's own answers to compare kd-student.js with: tokenizer ids, next-token logits, greedy text.
 */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { exportModel } from '../../src/compress/export.js';
import { disposeModel, forwardLogits } from '../../src/model/gpt.js';
import { Engine } from '../../src/serve/engine.js';
import { generate } from '../../src/serve/generate.js';
import { type ServedModel, loadServedModel } from '../../src/serve/model.js';
import { ROOT } from '../helpers/kd.js';
import { tmpDir } from './fixture.js';

export const TEACHER = path.join(ROOT, 'checkpoints/teacher');

/**
 * Export the teacher into a fresh folder inside a "project" whose node_modules is kd's (so Node finds
 * @tensorflow/tfjs from the export, as in a user's project with it installed).
 */
export function exportTeacher(): string {
  const project = tmpDir('kd-web-');
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(project, 'node_modules'), 'dir');
  const dir = path.join(project, 'student');
  exportModel({ checkpoint: TEACHER, out: dir });
  return dir;
}

/** Plain `node file` in the file's folder, as a user would run it. */
export function runNode(file: string, args: string[] = []): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [file, ...args], { cwd: path.dirname(file), encoding: 'utf8', timeout: 300_000 }); // generous: the machine may be busy
}

/** kd's side: the served model (the shared loader) for logits and generation. */
export class KdReference {
  readonly served: ServedModel = loadServedModel(TEACHER);
  private readonly engine = new Engine(this.served.model);

  /** next-token logits after `ids` (at most seqLen of them), by kd's forward pass */
  nextLogits(ids: number[]): Float32Array {
    return tf.tidy(() => {
      const logits = forwardLogits(this.served.model, tf.tensor2d(ids, [1, ids.length], 'int32')) as tf.Tensor3D;
      return logits.slice([0, ids.length - 1, 0], [1, 1, -1]).dataSync() as Float32Array;
    });
  }

  /** what kd serve generates greedily (temperature 0), contexts cropped to the last seqLen tokens */
  async greedy(prompt: number[], maxTokens: number): Promise<{ ids: number[]; text: string }> {
    const [c] = await generate(this.engine, this.served.tokenizer.tokens, { prompt, n: 1, maxTokens, temperature: 0, topP: 1, seed: 0, stop: [], topLogprobs: 0 });
    return { ids: c!.tokens.map((t) => t.id), text: c!.text };
  }

  dispose(): void {
    disposeModel(this.served.model);
  }
}

export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
};
