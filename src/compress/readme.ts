/** The README.md written next to an exported model: how to run it with plain @tensorflow/tfjs. */
import type { ModelConfig } from '../model/config.js';

export function exportReadme(c: ModelConfig, quantized: boolean, tokenizer: boolean): string {
  return `# kd student (TensorFlow.js GraphModel)

A GPT-style student exported by \`kd export\`: ${c.nLayers} blocks, width ${c.dModel}, vocabulary ${c.vocabSize},
context up to ${c.seqLen} tokens; weights ${quantized ? 'int8 with per-channel float32 scales' : 'float32'}.
It needs only \`@tensorflow/tfjs\`.

- input \`ids\`: int32 [B, T] token ids, T ≤ ${c.seqLen}
- output \`logits\`: float32 [B, T, ${c.vocabSize}], next-token logits at every position
${tokenizer ? '- `tokenizer.json`: the kd tokenizer (ids 0–255 are single bytes; tokens are hex byte strings, encode by greedy longest match)\n' : '- no tokenizer: the model was trained on synthetic token ids\n'}
## Browser

\`\`\`html
<script src="https://cdn.jsdelivr.net/npm/@tensorflow/tfjs@4/dist/tf.min.js"></script>
<script>
  const model = await tf.loadGraphModel('model.json');
  const logits = model.predict(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32')); // [1, 3, V]
</script>
\`\`\`

## Node

Plain tfjs has no file loader; read the files and use \`tf.io.fromMemory\`:

\`\`\`js
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
const json = JSON.parse(fs.readFileSync('model.json', 'utf8'));
const m = json.weightsManifest[0];
const data = Buffer.concat(m.paths.map((p) => fs.readFileSync(p)));
const model = await tf.loadGraphModel(tf.io.fromMemory({
  modelTopology: json.modelTopology, format: json.format, weightSpecs: m.weights,
  weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
}));
const logits = model.predict(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32'));
\`\`\`
`;
}
