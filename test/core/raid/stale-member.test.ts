import { describe, expect, it } from 'vitest';
import { open, readFile, readdir, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { json, ok, snapplane } from '../../cli/cli-helpers.js';
import { Volume } from '../../../core/fs/volume.js';
import { Raid4Device } from '../../../core/raid/raid4-device.js';
import { openDeviceAt } from '../../../core/raid/open-device.js';
import { blockChecksum } from '../../../core/common/checksum.js';
import type { VolumeInfo } from '../../../core/api/index.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { pattern } from '../../helpers/model.js';

const tmp = useTempDir('raid-stale');

async function makeGroup(name: string): Promise<string> {
  const group = join(tmp(), name);
  const dev = await Raid4Device.create(group, 3, 6 * 2 ** 20);
  await Volume.format(dev);
  await dev.close();
  return group;
}

const openGroup = (group: string, readOnly = false): Promise<Volume> => Volume.open(group, { cpIntervalMs: 0, openDevice: openDeviceAt, readOnly });

describe('a RAID-4 member that was out while the group was written', () => {
  it('comes back stale: failed with the reason, a second failure refused, no data lost; raid replace rebuilds it (CLI)', async () => {
    process.env.SNAPPLANE_HOME = join(tmp(), 'home');
    const group = join(tmp(), 'g');
    await ok('volume', 'create', group, '--raid', '3', '--size', '16M');
    const data = pattern(3_000_000, 5);
    const host = join(tmp(), 'a.bin');
    await writeFile(host, data);
    // The disk is pulled, the group written degraded, the same disk put back.
    await rename(join(group, 'data-1.img'), join(tmp(), 'data-1.away'));
    await ok('put', group, host, '/a.bin');
    await rename(join(tmp(), 'data-1.away'), join(group, 'data-1.img'));

    const info = await json<VolumeInfo>('volume', 'info', group);
    expect(info.device.degraded).toBe(true);
    expect(info.device.members[1]).toMatchObject({
      state: 'failed',
      path: join(group, 'data-1.img'),
      failure: expect.stringMatching(/^missed writes while it was missing; its image data-1\.img is stale: its label is at generation 1, the group at 2$/),
    });
    expect((await ok('volume', 'info', group)).stdout).toMatch(/member 1 failed: missed writes while it was missing; .*`snapplane raid replace` rebuilds it/);

    // Failing another member now would lose data: refused, naming the way out.
    const fail = await snapplane('raid', 'fail', group, '0');
    expect(fail.code).not.toBe(0);
    expect(fail.stderr).toMatch(/cannot fail member 0: member 1 is already failed \(missed writes while it was missing; .*\), and with two members out the group would lose data; rebuild member 1 first \(snapplane raid replace .* 1 <new-image>\) \(INVALID\)/);
    const fsck = await json<{ clean: boolean }>('fsck', group);
    expect(fsck.clean).toBe(true);
    const out = join(tmp(), 'out.bin');
    await ok('get', group, '/a.bin', out);
    expect((await readFile(out)).equals(data)).toBe(true);

    // The stale image's own name is taken: replace says so; another name rebuilds it.
    const same = await snapplane('raid', 'replace', group, '1', 'data-1.img');
    expect(same.stderr).toMatch(/already exists; name a new image, or move that one out of the group folder first \(EXISTS\)/);
    // A path is not quietly taken as a name inside the group folder.
    for (const elsewhere of ['../escape.img', join(tmp(), 'escape.img')]) {
      const r = await snapplane('raid', 'replace', group, '1', elsewhere);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/is not a file name: a new member image is made inside the group folder .*; give a name such as 'data-1b\.img' \(INVALID\)/);
    }
    expect(await readdir(group)).not.toContain('escape.img');
    const replaced = await json<VolumeInfo>('raid', 'replace', group, '1', 'data-1b.img');
    expect(replaced.device.degraded).toBe(false);
    // Now a second member may go, and every block is still there.
    await ok('raid', 'fail', group, '0');
    await rm(out);
    await ok('get', group, '/a.bin', out);
    expect((await readFile(out)).equals(data)).toBe(true);
  }, 60_000);

  it('a missing member whose image comes back before anything is written rejoins; a group opened for writing without writes records nothing', async () => {
    const group = await makeGroup('untouched');
    const v = await openGroup(group);
    await v.writeFile('/f', pattern(200_000, 1));
    await v.close();
    await rename(join(group, 'data-2.img'), join(tmp(), 'untouched-2.away'));
    const w = await openGroup(group);
    expect(w.device.health().members[2]).toMatchObject({ state: 'missing', failure: 'no image in the group folder carries its label' });
    expect((await w.readFile('/f')).equals(pattern(200_000, 1))).toBe(true);
    await w.close();
    await rename(join(tmp(), 'untouched-2.away'), join(group, 'data-2.img'));
    const r = await openGroup(group);
    expect(r.device.health().degraded).toBe(false);
    await r.close();
  });

  it('a replace of a missing member that did not finish leaves its old image stale', async () => {
    const group = await makeGroup('unfinished');
    const v = await openGroup(group);
    await v.writeFile('/f', pattern(500_000, 2));
    await v.close();
    await rename(join(group, 'data-0.img'), join(tmp(), 'unfinished-0.away'));
    const w = await openGroup(group);
    const dev = w.device as Raid4Device;
    await w.exclusive(() => dev.beginReplace(0, 'data-0-new.img'));
    await w.exclusive(() => dev.rebuildStep(1));
    // Written while the new image is half built (it takes the writes; the old image misses them), then stopped.
    await w.writeFile('/g', pattern(400_000, 3));
    await w.close();
    await rm(join(group, 'data-0-new.img'));
    await rename(join(tmp(), 'unfinished-0.away'), join(group, 'data-0.img'));
    const r = await openGroup(group);
    expect(r.device.health().members[0]).toMatchObject({ state: 'failed', failure: expect.stringMatching(/^missed writes while it was missing; .*stale/) });
    expect((await r.readFile('/g')).equals(pattern(400_000, 3))).toBe(true);
    expect((await r.fsck()).issues).toEqual([]);
    await r.close();
  });

  it('says why a member is missing: a cut-short image, a wiped label', async () => {
    const group = await makeGroup('reasons');
    await truncate(join(group, 'data-1.img'), 100 * 4096);
    const r = await openGroup(group, true);
    expect(r.device.health().members[1]).toMatchObject({ state: 'missing', failure: expect.stringMatching(/^its image data-1\.img is cut short \(409600 bytes of the \d+ a member needs\)$/) });
    await r.close();
    await rm(join(group, 'data-1.img'));
    await writeFile(join(group, 'other.img'), Buffer.alloc(8192));
    await rename(join(group, 'parity.img'), join(group, 'p.bin'));
    await writeFile(join(group, 'parity.img'), Buffer.alloc(8192));
    const s = await openGroup(group, true);
    const members = s.device.health().members;
    expect(members[1].failure).toBe('no image in the group folder carries its label');
    expect(members[3].failure).toBe('its image parity.img has no valid member label (wiped, or not a member image)');
    await s.close();
  });

  it('labels written to the documented layout (no failed members, empty reasons) open as a healthy group', async () => {
    const group = await makeGroup('layout');
    const v = await openGroup(group);
    await v.writeFile('/f', pattern(300_000, 4));
    await v.close();
    const names = ['data-0.img', 'data-1.img', 'data-2.img', 'parity.img'];
    const fh0 = await open(join(group, names[0]), 'r');
    const first = Buffer.alloc(4096);
    await fh0.read(first, 0, 4096, 0);
    await fh0.close();
    // Every field at the offsets FORMAT.md §13 gives, built by hand; generation 7, nothing failed.
    for (let i = 0; i < 4; i++) {
      const b = Buffer.alloc(4096);
      b.write('SNAPRAID', 0, 'ascii');
      b.writeUInt32LE(1, 8);
      first.copy(b, 12, 12, 28);
      b.writeUInt32LE(i, 28);
      b.writeUInt32LE(i === 3 ? 1 : 0, 32);
      b.writeUInt32LE(3, 36);
      b.writeBigUInt64LE(first.readBigUInt64LE(40), 40);
      b.writeBigUInt64LE(7n, 48);
      b.writeUInt32LE(blockChecksum(b.subarray(0, 4092)), 4092);
      const fh = await open(join(group, names[i]), 'r+');
      await fh.write(b, 0, 4096, 0);
      await fh.close();
    }
    const w = await openGroup(group);
    expect(w.device.health().degraded).toBe(false);
    expect((await w.readFile('/f')).equals(pattern(300_000, 4))).toBe(true);
    await w.writeFile('/g', pattern(100_000, 6));
    await w.close();
    const r = await openGroup(group, true);
    expect(r.device.health().degraded).toBe(false);
    expect((await r.readFile('/g')).equals(pattern(100_000, 6))).toBe(true);
    await r.close();
  });
});
