import { BACKEND_OPTION, type OptionsSpec, TEACHER_OPTIONS, flag } from '../core/options.js';
import { specCommand } from './command.js';

/** `kd doctor`'s flags; --model was --teacher-model (still accepted, as in collect, eval and onpolicy). */
export const DOCTOR_OPTIONS = {
  backend: { ...BACKEND_OPTION, describe: 'force a backend: tensorflow-gpu, tensorflow, wasm, cpu' },
  json: flag('print one JSON object'),
  teacherUrl: { type: 'string', describe: 'probe this OpenAI-compatible teacher instead: does it score given text (score mode, --select, kd onpolicy) or only its own answers? Sends 3 tiny requests' },
  model: { ...TEACHER_OPTIONS.model, describe: 'teacher model for the probe', defaultText: 'the first of GET /models' },
  apiKeyEnv: TEACHER_OPTIONS.apiKeyEnv,
} as const satisfies OptionsSpec;

export const doctorCommand = specCommand({
  command: 'doctor',
  describe: 'Show the compute backend chosen, why the others were not, threads and versions; with --teacher-url, what a teacher can score',
  options: DOCTOR_OPTIONS,
  examples: [
    ['$0 doctor', 'the backend kd train would use, its threads and matmul kernels'],
    ['$0 doctor --backend cpu --json', 'force a backend; one JSON object'],
    ['$0 doctor --teacher-url http://127.0.0.1:8000/v1 --model kd-teacher', 'can this teacher score given text, or only its own answers?'],
  ],
  handler: async (argv) => {
    if (argv.teacherUrl !== undefined) {
      const { printProbe } = await import('./probe.js');
      return printProbe(argv);
    }
    const [{ initBackend }, { defaultWorkers, DEFAULT_TRAIN }] = await Promise.all([import('../backend/index.js'), import('../train/config.js')]);
    const info = await initBackend({ backend: argv.backend });
    // what kd train runs by default: data-parallel workers, each with the kernels' threads above
    const trainWorkers = defaultWorkers(info.backend, DEFAULT_TRAIN.batchSize);
    if (argv.json) {
      process.stdout.write(JSON.stringify({ ...info, trainWorkers }) + '\n');
      return;
    }
    const lines = [
      `backend   ${info.backend}${info.tfBackend !== info.backend ? ` (tfjs '${info.tfBackend}')` : ''}`,
      `threads   ${info.threads} per kernel (of ${info.cpus} cores)`,
      `workers   ${trainWorkers} for kd train and prune: data-parallel, ${trainWorkers > 1 ? 'one per core' : 'the kernels use the threads'} (--workers)`,
      `matmul    ${info.matmul}`,
      `tfjs      ${info.tfjsVersion}`,
      `node      ${info.nodeVersion}`,
      'tried:',
      ...info.attempts.map((a) => `  ${a.ok ? 'ok  ' : 'no  '} ${a.name.padEnd(15)} ${a.reason}`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  },});
