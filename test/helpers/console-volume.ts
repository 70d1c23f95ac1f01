/** A console engine host on a temp volume with two snapshots (s1: a.bin and docs/b.txt; s2: a.bin deleted, c.bin added). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsoleHost } from '../../core/service/index.js';

export interface ConsoleFixture {
  dir: string;
  host: ConsoleHost;
  vol: string;
  call<T>(method: string, args: unknown): Promise<T>;
  close(): Promise<void>;
}

export async function consoleFixture(extraFiles: Record<string, string> = {}): Promise<ConsoleFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'snapplane-renderer-'));
  const host = await ConsoleHost.start({ transport: 'direct', stateFile: join(dir, 'state.json'), schedulerIntervalMs: 0, cpIntervalMs: 0 });
  const vol = join(dir, 'v.img');
  const call = async <T>(method: string, args: unknown): Promise<T> => {
    const r = await host.router.call(method, args);
    if (!r.ok) throw new Error(`${method}: ${r.error.code} ${r.error.message}`);
    return r.result as T;
  };
  await call('volumeCreate', { path: vol, sizeBytes: 4 * 2 ** 20 });
  await call('writeFile', { volume: vol, path: '/a.bin', base64: Buffer.alloc(100_000, 7).toString('base64') });
  await call('mkdir', { volume: vol, path: '/docs' });
  await call('writeFile', { volume: vol, path: '/docs/b.txt', base64: Buffer.from('b'.repeat(9000)).toString('base64') });
  for (const [path, text] of Object.entries(extraFiles)) await call('writeFile', { volume: vol, path, base64: Buffer.from(text).toString('base64') });
  await call('snapCreate', { volume: vol, name: 's1' });
  await call('rm', { volume: vol, path: '/a.bin' });
  await call('writeFile', { volume: vol, path: '/c.bin', base64: Buffer.alloc(50_000, 3).toString('base64') });
  await call('snapCreate', { volume: vol, name: 's2' });
  return {
    dir,
    host,
    vol,
    call,
    close: async () => {
      await host.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
