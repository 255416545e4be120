/** Child process for bench/collect.ts: the test teacher with a fixed latency, port on stdout. */
import { startTeacherServer } from '../test/collect/teacher-server.js';

const latencyMs = Number(process.argv[2] ?? 50);
const server = await startTeacherServer({ latencyMs, keepLog: false, genTokens: 16 });
process.stdout.write(`${server.port}\n`);
const stop = () => void server.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
// Exit with the bench: its end of our stdin closes when it exits, even if it crashes.
process.stdin.on('end', stop).resume();
