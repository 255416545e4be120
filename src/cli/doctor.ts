import type { CommandModule } from 'yargs';

interface DoctorArgs { backend?: string; json?: boolean }

export const doctorCommand: CommandModule<object, DoctorArgs> = {
  command: 'doctor',
  describe: 'Show the compute backend chosen, why the others were not, threads and versions',
  builder: (y) => y
    .option('backend', { type: 'string', describe: 'force a backend: tensorflow-gpu, tensorflow, wasm, cpu (or KD_BACKEND)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
    .example('$0 doctor', 'the backend kd train would use, its threads and matmul kernels')
    .example('$0 doctor --backend cpu --json', 'force a backend; one JSON object'),
  handler: async (argv) => {
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
