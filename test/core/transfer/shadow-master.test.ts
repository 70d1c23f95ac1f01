/**
 * Replication from a shadow master whose blocks the source reused (the seed's "destination file systems are taken
 * off-line during update of the master shadow snapshot"): the incremental lands in place over the destination's
 * copy of that master, with the destination off-line from before the first block until the commit; an interrupted
 * update leaves it off-line, and the next replication finishes it.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnapplaneService } from '../../../core/service/index.js';
import { Volume } from '../../../core/fs/volume.js';
import { readOffline } from '../../../core/transfer/sidecars.js';
import { expectSameTree, pattern } from '../../helpers/model.js';
import { FaultProxy, makeKey, treeOf } from '../../helpers/replication.js';

let dir: string;
let key: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-shadow-master-'));
  key = await makeKey(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A source whose master `S` is a shadow snapshot, replicated in full to `dest`. */
async function sourceWithShadowMaster(s: SnapplaneService, name: string, dest: string): Promise<string> {
  const src = join(dir, `${name}.img`);
  await s.createVolume(src, 24 << 20);
  await s.closeAll();
  const v = await Volume.open(src, { cpIntervalMs: 0 });
  for (let f = 0; f < 4; f++) await v.writeFile(`/old${f}.bin`, pattern(1 << 20, f));
  await v.writeFile('/kept.bin', pattern(300_000, 9));
  await v.createSnapshot('S', { shadow: true });
  await v.setSnapshotFlags('S', { master: true });
  await v.close();
  // The key is for a remote destination; a local one refuses it.
  expect((await s.replicate(src, dest, dest.startsWith('127.0.0.1:') ? { keyFile: key } : {})).kind).toBe('full');
  await s.closeAll();
  return src;
}

/**
 * Deletes files only `S` still holds and writes new ones until the source reuses S's blocks (the allocator takes
 * the volume's fresh space first), so S goes stale.
 */
async function reuseShadowBlocks(src: string, next: string, seed: number): Promise<void> {
  const v = await Volume.open(src, { cpIntervalMs: 0 });
  for (let f = 0; f < 4; f++) await v.remove(`/old${f}.bin`).catch(() => undefined);
  await v.sync();
  for (let f = 0; f < 3 || (f < 24 && !(await v.listSnapshots()).find((x) => x.name === 'S')!.flags.stale); f++) {
    await v.writeFile(`/${next}-${f}.bin`, pattern(1 << 20, seed + f));
    await v.sync();
  }
  await v.createSnapshot(next);
  await v.setSnapshotFlags(next, { master: true });
  await v.close();
  const check = await Volume.open(src, { readOnly: true, cpIntervalMs: 0 });
  expect((await check.listSnapshots()).find((x) => x.name === 'S')!.flags).toMatchObject({ shadow: true, stale: true });
  await check.close();
}

describe('replication from a shadow master', () => {
  it('updates the destination in place, off-line meanwhile; its copy of the master becomes a stale shadow', async () => {
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'a.json') });
    const dest = join(dir, 'a-dest.img');
    const src = await sourceWithShadowMaster(s, 'a', dest);
    await reuseShadowBlocks(src, 'N', 100);
    // A stale shadow may only be subtracted: its lost blocks would otherwise go missing from an image.
    await expect(s.imageEval(src, 'N + S')).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('can only be subtracted') });
    await expect(s.imageEval(src, 'N - (N - S)')).rejects.toMatchObject({ code: 'INVALID' });
    expect((await s.imageEval(src, 'N - S')).blocks).toBeGreaterThan(0);
    await s.closeAll();
    const offlineSeen: (string | null)[] = [];
    const r = await s.replicate(src, dest, {}, (p) => {
      if (p.done > 0 && offlineSeen.length < 3) void readOffline(dest).then((o) => offlineSeen.push(o));
    });
    await s.closeAll();
    expect(r).toMatchObject({ kind: 'incremental', from: 'S', to: 'N', offline: "being updated from shadow master 'S'" });
    expect(offlineSeen.length).toBeGreaterThan(0);
    expect(offlineSeen.every((o) => o !== null && o.includes("shadow master 'S'"))).toBe(true);
    expect(await readOffline(dest)).toBeNull();
    expectSameTree(await treeOf(dest), await treeOf(src, 'N'), 'after the off-line update');
    const v = await Volume.open(dest, { readOnly: true, cpIntervalMs: 0 });
    expect((await v.listSnapshots()).find((x) => x.name === 'S')!.flags).toMatchObject({ shadow: true, stale: true });
    await v.close();
    expect((await s.fsck(dest)).issues).toEqual([]);
    // On-line again: the next update is an ordinary incremental.
    const w = await Volume.open(src, { cpIntervalMs: 0 });
    await w.writeFile('/later.bin', pattern(100_000, 7));
    await w.createSnapshot('N2');
    await w.setSnapshotFlags('N2', { master: true });
    await w.close();
    expect(await s.replicate(src, dest, {})).toMatchObject({ kind: 'incremental', from: 'N', to: 'N2' });
    await s.closeAll();
    expectSameTree(await treeOf(dest), await treeOf(src, 'N2'), 'after the next update');
    expect((await s.fsck(dest)).issues).toEqual([]);
    await s.closeAll();
  });

  it('stays off-line after a dropped connection, refuses readers, and the next replication finishes the update', async () => {
    const client = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'b-client.json') });
    const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'b-server.json') });
    const root = join(dir, 'b-root');
    await mkdir(root);
    const ep = await server.serve({ port: 0, root, keyFile: key, holdMs: 0 });
    const proxy = new FaultProxy(ep.port);
    await proxy.start();
    const dest = join(root, 'm');
    try {
      const src = await sourceWithShadowMaster(client, 'b', `127.0.0.1:${ep.port}/m`);
      await reuseShadowBlocks(src, 'N', 200);
      // Cut the connection half-way through the blocks.
      proxy.cutAt = proxy.passed + (2 << 20);
      await expect(client.replicate(src, `127.0.0.1:${proxy.port}/m`, { keyFile: key })).rejects.toMatchObject({ code: 'NET' });
      await client.closeAll();
      // The server notices the drop a moment later; its receive keeps what landed and stays off-line.
      for (let i = 0; i < 100 && !(await readOffline(dest))?.includes('interrupted'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(await readOffline(dest)).toMatch(/shadow master 'S', interrupted/);
      // Off-line: browsing is refused with the reason, not served from a half-overwritten base.
      const reader = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'b-reader.json') });
      await expect(reader.ls({ volume: dest }, '/')).rejects.toMatchObject({ code: 'BUSY', message: expect.stringContaining('off-line') });
      await reader.closeAll();
      // The next replication finishes the same update (resuming where the blocks stopped) and brings it back.
      const r = await client.replicate(src, `127.0.0.1:${ep.port}/m`, { keyFile: key });
      await client.closeAll();
      await server.closeAll();
      expect(r).toMatchObject({ kind: 'incremental', from: 'S', to: 'N' });
      expect(r.resumedFromVbn).not.toBeNull();
      expect(await readOffline(dest)).toBeNull();
      expectSameTree(await treeOf(dest), await treeOf(src, 'N'), 'after the finished update');
      expect((await server.fsck(dest)).issues).toEqual([]);
    } finally {
      await proxy.stop();
      await ep.close();
      await client.closeAll();
      await server.closeAll();
    }
  });
});
