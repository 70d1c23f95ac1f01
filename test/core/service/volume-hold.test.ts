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

describe('volumes held open by a replication endpoint', () => {
  it('stay open between updates, let readers in, name their holder to writers, and close when idle', async () => {
    const src = join(dir, 'src.img');
    const root = join(dir, 'root');
    await mkdir(root);
    const client = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'client.json') });
    const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'server.json') });
    await client.createVolume(src, 16 << 20);
    await client.closeAll();
    const holdMs = 1500;
    const ep = await server.serve({ port: 0, root, keyFile: key, holdMs });
    const dest = join(root, 'h');
    try {
      await newMaster(src, 'm1', 1);
      expect((await client.replicate(src, `127.0.0.1:${ep.port}/h`, { keyFile: key })).kind).toBe('full');
      await client.closeAll();
      // Held: a writer on this host is refused with the holder's name; a reader gets in and sees the update.
      await expect(writable(dest)).rejects.toMatchObject({ code: 'LOCKED', message: expect.stringContaining(`process ${process.pid}`) });
      expectSameTree(await treeOf(dest), await treeOf(src, 'm1'), 'read while held');
      // The next update finds the volume open.
      await newMaster(src, 'm2', 2);
      expect((await client.replicate(src, `127.0.0.1:${ep.port}/h`, { keyFile: key })).kind).toBe('incremental');
      await client.closeAll();
      expectSameTree(await treeOf(dest), await treeOf(src, 'm2'), 'second update');
      await expect(writable(dest)).rejects.toMatchObject({ code: 'LOCKED' });
      // Idle for the hold time: released, committed, clean.
      await new Promise((r) => setTimeout(r, holdMs + 500));
      await writable(dest);
      const check = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'check.json') });
      expect((await check.fsck(dest)).clean).toBe(true);
      await check.closeAll();
    } finally {
      await ep.close();
      await client.closeAll();
      await server.closeAll();
    }
  }, 60_000);

  it('reopens a held volume whose image was replaced meanwhile, and tells the source what the new file holds', async () => {
    const src = join(dir, 'rsrc.img');
    const root = join(dir, 'rroot');
    await mkdir(root);
    const client = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'rclient.json') });
    const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'rserver.json') });
    await client.createVolume(src, 16 << 20);
    await client.closeAll();
    const ep = await server.serve({ port: 0, root, keyFile: key, holdMs: 60_000 });
    const dest = join(root, 'r');
    try {
      await newMaster(src, 'r1', 5);
      await client.replicate(src, `127.0.0.1:${ep.port}/r`, { keyFile: key });
      await client.closeAll();
      await copyFile(dest, join(dir, 'r-at-r1.img'));
      await newMaster(src, 'r2', 6);
      await client.replicate(src, `127.0.0.1:${ep.port}/r`, { keyFile: key });
      await client.closeAll();
      // The administrator puts back the older copy while the endpoint holds the volume: a new file at r1.
      await rm(dest);
      await copyFile(join(dir, 'r-at-r1.img'), dest);
      const again = await client.replicate(src, `127.0.0.1:${ep.port}/r`, { keyFile: key });
      await client.closeAll();
      expect(again).toMatchObject({ kind: 'incremental', from: 'r1', to: 'r2' });
      expectSameTree(await treeOf(dest), await treeOf(src, 'r2'), 'after the older copy came back');
      // Or removes the image file alone: the next replication makes a new full copy.
      await rm(dest);
      await newMaster(src, 'r3', 7);
      const fresh = await client.replicate(src, `127.0.0.1:${ep.port}/r`, { keyFile: key });
      await client.closeAll();
      expect(fresh).toMatchObject({ kind: 'full', to: 'r3' });
      expectSameTree(await treeOf(dest), await treeOf(src, 'r3'), 'after the image was removed');
    } finally {
      await ep.close();
      await client.closeAll();
      await server.closeAll();
    }
  }, 60_000);

  it('releases a mirror at once when the relationship is broken, so it can be written', async () => {
    const src = join(dir, 'msrc.img');
    const root = join(dir, 'mroot');
    await mkdir(root);
    const client = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'mclient.json') });
    const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'mserver.json') });
    await client.createVolume(src, 16 << 20);
    await client.closeAll();
    const ep = await server.serve({ port: 0, root, keyFile: key, holdMs: 60_000 });
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
      await ep.close();
      await client.closeAll();
      await server.closeAll();
    }
  }, 60_000);

  it('closes every held volume when the endpoint stops', async () => {
    const src = join(dir, 'ssrc.img');
    const root = join(dir, 'sroot');
    await mkdir(root);
    const client = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'sclient.json') });
    const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'sserver.json') });
    await client.createVolume(src, 16 << 20);
    await client.closeAll();
    const ep = await server.serve({ port: 0, root, keyFile: key, holdMs: 60_000 });
    await newMaster(src, 's1', 4);
    await client.replicate(src, `127.0.0.1:${ep.port}/s`, { keyFile: key });
    await expect(writable(join(root, 's'))).rejects.toMatchObject({ code: 'LOCKED' });
    await ep.close();
    await writable(join(root, 's'));
    await client.closeAll();
    await server.closeAll();
  }, 60_000);
});
