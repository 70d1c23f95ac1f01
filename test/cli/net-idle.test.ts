/**
 * A dead link in the middle of a replication (a network partition: nothing closes, nothing arrives). Both ends
 * give up after the idle time instead of waiting for ever; the server lets the volume go, and the next replicate
 * resumes from what landed. A throttled stream is not taken for a dead one.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Volume } from '../../core/fs/volume.js';
import { FaultProxy, makeKey, startServer, treeOf, type ServerProcess } from '../helpers/replication.js';
import { expectSameTree, pattern } from '../helpers/model.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { snapplane, json } from './cli-helpers.js';
import type { ReplicateReport } from '../../core/api/index.js';

const dir = useTempDir('net-idle');
const IDLE = '1500';
let server: ServerProcess | null = null;
let proxy: FaultProxy | null = null;

afterEach(async () => {
  await proxy?.stop();
  proxy = null;
  await server?.kill();
  server = null;
});

async function source(name: string, bytes: number): Promise<string> {
  const src = join(dir(), `${name}.img`);
  const v = await Volume.create(src, { sizeBytes: 32 << 20 });
  await v.writeFile('/payload', pattern(bytes, 5));
  await v.createSnapshot('M1');
  await v.setSnapshotFlags('M1', { master: true });
  await v.close();
  return src;
}

/** The CLI's result, or a note that it was still running after `ms` (the old behaviour: waiting for ever). */
async function within<T>(ms: number, p: Promise<T>): Promise<T | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still running'>((r) => (timer = setTimeout(() => r('still running'), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('a dead connection', () => {
  it('fails both ends after the idle time; the server lets the volume go and the next replicate resumes', async () => {
    process.env.SNAPPLANE_NET_IDLE_MS = IDLE;
    const key = await makeKey(dir(), 'key-stall');
    const root = join(dir(), 'root-stall');
    await mkdir(root);
    const src = await source('stall', 6 << 20);
    server = await startServer(root, key, 0, { ...process.env, SNAPPLANE_RESUME_POINT_MS: '100' });
    proxy = new FaultProxy(server.port);
    await proxy.start();
    proxy.stallAt = 3 << 20;
    const t0 = performance.now();
    // Throttled so that the receiver has made resume points by the time the link dies.
    const r = await within(20_000, snapplane('replicate', src, `127.0.0.1:${proxy.port}/r`, '--key-file', key, '--limit', '2M'));
    expect(r).not.toBe('still running');
    if (r === 'still running') return;
    expect(proxy.stalled).toBe(true);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nothing heard for 1\.5 s \(the peer stopped, or the network between us is down\) during the transfer; what landed on .* is kept: the next replication or mirror update of it resumes from there \(NET\)/);
    expect(performance.now() - t0).toBeLessThan(10_000);
    // The server gave up too: the volume is not held as receiving, and what landed is kept.
    for (let i = 0; i < 50 && !/nothing heard/.test(server.log()); i++) await new Promise((res) => setTimeout(res, 100));
    expect(server.log()).toMatch(/receive r: connection to .* nothing heard for 1\.5 s/);
    const again = await json<ReplicateReport>('replicate', src, `127.0.0.1:${server.port}/r`, '--key-file', key);
    expect(again.kind).toBe('full');
    expect(again.resumedFromVbn).toBeGreaterThan(0);
    await server.kill();
    server = null;
    expectSameTree(await treeOf(join(root, 'r')), await treeOf(src, 'M1'), 'after the resumed replicate');
  });

  it('a stream throttled below a frame a second is paced, and not taken for a dead one', async () => {
    process.env.SNAPPLANE_NET_IDLE_MS = IDLE;
    const key = await makeKey(dir(), 'key-slow');
    const root = join(dir(), 'root-slow');
    await mkdir(root);
    const src = await source('slow', (5 << 20) / 2);
    server = await startServer(root, key, 0, process.env);
    // 512 KiB/s: a 1 MiB frame would leave the receiver 2 s without a byte, longer than its 1.5 s idle time.
    const t0 = performance.now();
    const r = await within(20_000, snapplane('replicate', src, `127.0.0.1:${server.port}/s`, '--key-file', key, '--limit', '512K'));
    expect(r).not.toBe('still running');
    if (r === 'still running') return;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // And the rate held: 2.5 MiB less the first second's burst at 512 KiB/s (a limit below the frame size once let everything through at once).
    expect(performance.now() - t0).toBeGreaterThan(3500);
    await server.kill();
    server = null;
    expectSameTree(await treeOf(join(root, 's')), await treeOf(src, 'M1'), 'throttled replicate');
  });
});
