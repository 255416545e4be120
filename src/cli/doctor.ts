import type { CommandModule } from 'yargs';

interface DoctorArgs { backend?: string; json?: boolean; teacherUrl?: string; teacherModel?: string; apiKeyEnv?: string }

export const doctorCommand: CommandModule<object, DoctorArgs> = {
  command: 'doctor',
  describe: 'Show the compute backend chosen, why the others were not, threads and versions; with --teacher-url, what a teacher can score',
  builder: (y) => y
    .option('backend', { type: 'string', describe: 'force a backend: tensorflow-gpu, tensorflow, wasm, cpu (or KD_BACKEND)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
    .option('teacher-url', { type: 'string', describe: 'probe this OpenAI-compatible teacher instead: does it score given text (score mode, --select, kd onpolicy) or only its own answers? Sends 3 tiny requests' })
    .option('teacher-model', { type: 'string', describe: 'teacher model for the probe (default: the first of GET /models)' })
    .option('api-key-env', { type: 'string', describe: 'environment variable holding the teacher key (default OPENAI_API_KEY)' })
    .example('$0 doctor', 'the backend kd train would use, its threads and matmul kernels')
    .example('$0 doctor --backend cpu --json', 'force a backend; one JSON object')
    .example('$0 doctor --teacher-url http://127.0.0.1:8000/v1 --teacher-model kd-teacher', 'can this teacher score given text, or only its own answers?'),
  handler: async (argv) => {
    if (argv.teacherUrl !== undefined) {
      const { printProbe } = await import('./probe.js');
      return printProbe({ teacherUrl: argv.teacherUrl, model: argv.teacherModel, apiKeyEnv: argv.apiKeyEnv, json: argv.json });
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
  },
};
