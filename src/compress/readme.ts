/**
 * The README.md written next to an exported model: how to run it with kd-student.js or plain
 * @tensorflow/tfjs. Every code block in it is run as written by test/compress/readme.test.ts.
 */
import type { ModelConfig } from '../model/config.js';
import { TFJS_BUNDLE } from './web.js';

export function exportReadme(c: ModelConfig, quantized: boolean, tokenizer: boolean): string {
  const prompt = tokenizer ? `'The'` : '[1, 2, 3]'; // without a tokenizer, prompts are token ids
  return `# kd student (TensorFlow.js GraphModel)

A GPT-style student exported by \`kd export\`: ${c.nLayers} blocks, width ${c.dModel}, vocabulary ${c.vocabSize},
context up to ${c.seqLen} tokens; weights ${quantized ? 'int8 with per-channel float32 scales' : 'float32'}.
It needs only \`@tensorflow/tfjs\` (its browser bundle \`${TFJS_BUNDLE}\` is in this folder).

- \`index.html\`: a page that generates text token by token, offline. Browsers do not run it from file://:
  serve the folder, e.g. \`kd serve --static .\` (or any static server), and open the address printed.
- \`kd-student.js\`: one ES module for browsers and Node: \`loadStudent()\`, the tokenizer's \`encode\`/\`decode\`,
  \`generate(prompt, {maxTokens, temperature, topK, seed, onToken})\` (each step runs the last ${c.seqLen} tokens).
- \`model.json\` + shards: input \`ids\` int32 [B, T], T ≤ ${c.seqLen}; output \`logits\` float32 [B, T, ${c.vocabSize}],
  next-token logits at every position
${tokenizer ? '- `tokenizer.json`: the kd tokenizer (ids 0–255 are single bytes; tokens are hex byte strings, encode by greedy longest match)\n' : '- no tokenizer: the model was trained on synthetic token ids, so prompts are ids\n'}
## Browser

A page in this folder (from elsewhere, prefix the three relative paths with this folder's):

\`\`\`html
<script type="importmap">{ "imports": { "@tensorflow/tfjs": "./${TFJS_BUNDLE}" } }</script>
<pre id="out"></pre>
<script type="module">
  import { loadStudent, startBackend } from './kd-student.js';
  await startBackend(); // WebGL, or cpu where the browser has no GPU
  const student = await loadStudent(); // files beside kd-student.js
  const out = document.getElementById('out');
  const options = { maxTokens: 20, temperature: 0.8, topK: 40, seed: 1 };
  await student.generate(${prompt}, { ...options, onToken: (t) => { out.textContent += t.text; } });
</script>
\`\`\`

The graph alone, with tfjs only. Write \`'./model.json'\`: tfjs fetches the shards from the folder of the URL it
is given, and for a bare \`'model.json'\` that is the site root.

\`\`\`html
<script type="importmap">{ "imports": { "@tensorflow/tfjs": "./${TFJS_BUNDLE}" } }</script>
<script type="module">
  import * as tf from '@tensorflow/tfjs';
  const model = await tf.loadGraphModel('./model.json');
  const logits = model.predict(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32')); // [1, 3, ${c.vocabSize}]
  document.body.append(logits.shape.join(' × '));
</script>
\`\`\`

## Node

In a project with \`@tensorflow/tfjs\` installed (\`npm install @tensorflow/tfjs\`), a file in this folder:

\`\`\`js
import { loadStudent } from './kd-student.js';
const student = await loadStudent();
const { text } = await student.generate(${prompt}, { maxTokens: 20, temperature: 0.8, topK: 40, seed: 1 });
console.log(text);
\`\`\`

The graph alone: plain tfjs has no file loader, so read the files and use \`tf.io.fromMemory\`:

\`\`\`js
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
const file = (name) => new URL(name, import.meta.url);
const json = JSON.parse(fs.readFileSync(file('model.json'), 'utf8'));
const m = json.weightsManifest[0];
const data = Buffer.concat(m.paths.map((p) => fs.readFileSync(file(p))));
const model = await tf.loadGraphModel(tf.io.fromMemory({
  modelTopology: json.modelTopology, format: json.format, weightSpecs: m.weights,
  weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
}));
console.log(model.predict(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32')).shape);
\`\`\`
`;
}
