/** Child process for bench/collect.ts: the test teacher with a fixed latency, port on stdout. */
import { startTeacherServer } from '../test/collect/teacher-server.js';

const latencyMs = Number(process.argv[2] ?? 50);
const server = await startTeacherServer({ latencyMs, keepLog: false, genTokens: 16 });
process.stdout.write(`${server.port}\n`);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
