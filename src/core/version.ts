import { createRequire } from 'node:module';

/** kd's version, from package.json (src/core/ and dist/core/ both sit two levels below it). */
export const KD_VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
