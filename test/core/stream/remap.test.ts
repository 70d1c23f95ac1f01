import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { SnapplaneService } from '../../../core/service/index.js';
import { Raid4Device } from '../../../core/raid/raid4-device.js';
import { openDeviceAt } from '../../../core/raid/open-device.js';
import { expectSameTree, pattern, readTree, type Tree } from '../../helpers/model.js';

let dir: string;
let s: SnapplaneService;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-remap-'));
  s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
});
afterAll(async () => {
  await s.closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe('copy to a volume of another size or geometry', () => {
  it('moves blocks past the smaller target\'s end and fixes every pointer; snapshots share as before', async () => {
    const src = join(dir, 'big.img');
    const v = await Volume.create(src, { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
    await v.writeFile('/filler', pattern(40 * 2 ** 20, 1)); // pushes later blocks high
    await v.mkdir('/keep');
    for (let i = 0; i < 20; i++) await v.writeFile(`/keep/f${i}`, pattern(200_000 + i * 1000, i + 10));
    await v.remove('/filler');
    await v.createSnapshot('s1');
    const t1: Tree = await readTree(v);
    for (let i = 0; i < 5; i++) await v.writeFile(`/keep/f${i}`, pattern(150_000, i + 100));
    await v.symlink('/keep/link', 'f1');
    await v.createSnapshot('s2');
    const t2: Tree = await readTree(v);
    await v.close();

    const small = join(dir, 'small.img');
    await s.createVolume(small, 16 * 2 ** 20); // 4,096 blocks; the source's data sits past VBN 10,000
    const r = await s.copy(src, small, 's2 + s1');
    expect(r.snapshots).toEqual(['s1', 's2']);
    expect((await s.fsck(small)).clean).toBe(true);
    await s.closeAll();
    const d = await Volume.open(small, { readOnly: true });
    expectSameTree(await readTree(d), t2, 'current state of the smaller copy');
    await d.close();
    const d1 = await Volume.open(small, { snapshot: 's1' });
    expectSameTree(await readTree(d1), t1, 's1 of the smaller copy');
    await d1.close();
    // Onto a RAID-4 group of another geometry too.
    const grp = join(dir, 'grp');
    const dev = await Raid4Device.create(grp, 3, 2 * 2 ** 20);
    await Volume.format(dev);
    await dev.close();
    await s.copy(src, grp, 's2 + s1');
    expect((await s.fsck(grp)).clean).toBe(true);
    await s.closeAll();
    const g = await Volume.open(grp, { readOnly: true, openDevice: openDeviceAt });
    expectSameTree(await readTree(g), t2, 'RAID copy');
    await g.close();
    // Too small: refused with the reason, the target untouched.
    const tiny = join(dir, 'tiny.img');
    await s.createVolume(tiny, 2 * 2 ** 20);
    await expect(s.copy(src, tiny, 's2 + s1')).rejects.toThrow(/too few for the \d+ blocks of this image/);
    expect((await s.snapList({ volume: tiny })).length).toBe(0);
  }, 120_000);
});
