/** Starting an http server for `kd serve` (the API and --static): one clear error when the port is taken. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KdError } from '../core/errors.js';

/** Listen on host:port (0 = any free port); resolves to the address clients use. */
export async function listen(server: Server, host: string, port: number): Promise<{ url: string; port: number }> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new KdError('listen', `cannot listen on ${host}:${port} (${err.code ?? err.message})`);
  }
  const actual = (server.address() as AddressInfo).port;
  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`, port: actual };
}
