/**
 * A replication endpoint keeps the volumes it serves open between requests for a while: readers on the host still
 * get in, writers are told who holds the volume, and the volume is released once idle, or at once by a break.
 */
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnapplaneService } from '../../../core/service/index.js';
import { Volume } from '../../../core/fs/volume.js';
import { expectSameTree, pattern } from '../../helpers/model.js';
import { makeKey, treeOf } from '../../helpers/replication.js';

let dir: string;
let key: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-hold-'));
  key = await makeKey(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function newMaster(src: string, name: string, seed: number): Promise<void> {
  const v = await Volume.open(src, { cpIntervalMs: 0 });
  await v.writeFile(`/${name}.bin`, pattern(200_000, seed));
  await v.createSnapshot(name);
  await v.setSnapshotFlags(name, { master: true });
  await v.close();
}

async function writable(path: string): Promise<void> {
  const v = await Volume.open(path, { cpIntervalMs: 0 });
  await v.close();
}

/** A source volume, and an endpoint serving `root` (in this process, so its hold is visible to `writable`). */
async function endpoint(name: string, holdMs: number) {
  const src = join(dir, `${name}-src.img`);
  const root = join(dir, `${name}-root`);
  await mkdir(root);
  const client = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, `${name}-client.json`) });
  const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, `${name}-server.json`) });
  await client.createVolume(src, 16 << 20);
  await client.closeAll();
  const ep = await server.serve({ port: 0, root, keyFile: key, holdMs });
  return {
    src,
    root,
    client,
    ep,
    /** Replicates the source's newest master to `vol` on the endpoint (the client keeps nothing open after). */
    replicate: async (vol: string) => {
      const r = await client.replicate(src, `127.0.0.1:${ep.port}/${vol}`, { keyFile: key });
      await client.closeAll();
      return r;
    },
    stop: async () => {
      await ep.close();
      await client.closeAll();
      await server.closeAll();
    },
  };
}

describe('volumes held open by a replication endpoint', () => {
  it('stay open between updates, let readers in, name their holder to writers, and close when idle', async () => {
    const holdMs = 1500;
    const e = await endpoint('h', holdMs);
    const { src } = e;
    const dest = join(e.root, 'h');
    try {
      await newMaster(src, 'm1', 1);
      expect((await e.replicate('h')).kind).toBe('full');
      // Held: a writer on this host is refused with the holder's name; a reader gets in and sees the update.
      await expect(writable(dest)).rejects.toMatchObject({ code: 'LOCKED', message: expect.stringContaining(`process ${process.pid}`) });
      expectSameTree(await treeOf(dest), await treeOf(src, 'm1'), 'read while held');
      // The next update finds the volume open.
      await newMaster(src, 'm2', 2);
      expect((await e.replicate('h')).kind).toBe('incremental');
      expectSameTree(await treeOf(dest), await treeOf(src, 'm2'), 'second update');
      await expect(writable(dest)).rejects.toMatchObject({ code: 'LOCKED' });
      // Idle for the hold time: released, committed, clean.
      await new Promise((r) => setTimeout(r, holdMs + 500));
      await writable(dest);
      const check = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'check.json') });
      expect((await check.fsck(dest)).clean).toBe(true);
      await check.closeAll();
    } finally {
      await e.stop();
    }
  }, 60_000);

  it('reopens a held volume whose image was replaced meanwhile, and tells the source what the new file holds', async () => {
    const e = await endpoint('r', 60_000);
    const { src } = e;
    const dest = join(e.root, 'r');
    try {
      await newMaster(src, 'r1', 5);
      await e.replicate('r');
      await copyFile(dest, join(dir, 'r-at-r1.img'));
      await newMaster(src, 'r2', 6);
      await e.replicate('r');
      // The administrator puts back the older copy while the endpoint holds the volume: a new file at r1.
      await rm(dest);
      await copyFile(join(dir, 'r-at-r1.img'), dest);
      const again = await e.replicate('r');
      expect(again).toMatchObject({ kind: 'incremental', from: 'r1', to: 'r2' });
      expectSameTree(await treeOf(dest), await treeOf(src, 'r2'), 'after the older copy came back');
      // Or removes the image file alone: the next replication makes a new full copy.
      await rm(dest);
      await newMaster(src, 'r3', 7);
      const fresh = await e.replicate('r');
      expect(fresh).toMatchObject({ kind: 'full', to: 'r3' });
      expectSameTree(await treeOf(dest), await treeOf(src, 'r3'), 'after the image was removed');
    } finally {
      await e.stop();
    }
  }, 60_000);

  it('releases a mirror at once when the relationship is broken, so it can be written', async () => {
    const e = await endpoint('m', 60_000);
    const { src, root, client, ep } = e;
    try {
      await newMaster(src, 'w1', 3);
      await client.mirrorCreate('remote-m', src, `127.0.0.1:${ep.port}/m`, { kind: 'full', keyFile: key });
      await client.mirrorUpdate('remote-m');
      await client.closeAll();
      await expect(writable(join(root, 'm'))).rejects.toMatchObject({ code: 'LOCKED' });
      const br = await client.mirrorBreak('remote-m');
      expect(br.writable).toBe(true);
      await writable(join(root, 'm'));
    } finally {
      await e.stop();
    }
  }, 60_000);

  it('closes every held volume when the endpoint stops', async () => {
    const e = await endpoint('s', 60_000);
    await newMaster(e.src, 's1', 4);
    await e.replicate('s');
    await expect(writable(join(e.root, 's'))).rejects.toMatchObject({ code: 'LOCKED' });
    await e.ep.close();
    await writable(join(e.root, 's'));
    await e.stop();
  }, 60_000);
});
