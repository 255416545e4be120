/** Human-readable summaries of kd prune / quantize / export (the CLI prints these, or JSON with --json). */
import type { ExportSummary } from './export.js';
import type { PruneSummary } from './prune.js';
import type { QuantizeSummary } from './quantize.js';

const n = (x: number) => x.toLocaleString('en-US');
const kl = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(5));
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}%`;
const kb = (x: number) => `${(x / 1024).toFixed(1)} KiB`;

export function formatPrune(s: PruneSummary): string {
  const lines = [`kd prune: ${s.method}, sparsity ${s.sparsity}${s.method === 'magnitude' ? `, ${s.schedule}` : ''}, ${s.finetuneSteps} KD fine-tuning steps`];
  for (const l of s.layers ?? []) lines.push(`  ${l.name.padEnd(16)} ${(100 * l.sparsity).toFixed(1).padStart(5)}% zero  (${n(l.zeros)} of ${n(l.size)})`);
  for (const b of s.blocks ?? []) lines.push(`  block ${b.block}: heads ${b.headsBefore} → ${b.headsAfter}, MLP ${b.ffnBefore} → ${b.ffnAfter}`);
  lines.push(`parameters: ${n(s.paramsBefore)} → ${n(s.paramsAfter)} (non-zero ${n(s.nonzeroBefore)} → ${n(s.nonzeroAfter)})`);
  lines.push(`validation KL to the teacher: ${kl(s.valKlBefore)} → ${kl(s.valKlPruned)} pruned → ${kl(s.valKlAfter)} fine-tuned (${pct(s.valKlRelChange)})`);
  lines.push(`checkpoint: ${s.checkpoint}`);
  return lines.join('\n');
}

export function formatQuantize(s: QuantizeSummary): string {
  return [
    `kd quantize: int${s.bits === 8 ? 8 : `${s.bits} (in int8 containers)`}, ${s.scheme}, ${s.quantizedTensors} tensors`,
    `size: ${kb(s.bytesBefore)} float32 → ${kb(s.bytesAfter)} (${s.sizeRatio.toFixed(3)}×); weights ${kb(s.weightBytesBefore)} → ${kb(s.weightBytesAfter)}`,
    `max |w − ŵ|: ${s.maxAbsError.toExponential(2)}`,
    s.valKlBefore !== undefined ? `validation KL to the teacher: ${kl(s.valKlBefore)} → ${kl(s.valKlAfter)} (${pct(s.valKlRelChange!)})` : 'validation KL: not measured (pass --data)',
    `checkpoint: ${s.checkpoint}`,
  ].join('\n');
}

export function formatExport(s: ExportSummary): string {
  return [
    `kd export: TensorFlow.js GraphModel, ${n(s.params)} parameters, ${s.quantized ? 'int8' : 'float32'} weights, ${kb(s.bytes)}`,
    `files: ${s.files.join(', ')}${s.tokenizer ? '' : ' (no tokenizer: trained on synthetic ids)'}`,
    `directory: ${s.dir}`,
    `in a browser: kd serve --static ${s.dir}, then open the address it prints`,
  ].join('\n');
}
