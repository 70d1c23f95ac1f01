import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { Raid4Device } from '../../../core/raid/raid4-device.js';
import { openDeviceAt } from '../../../core/raid/open-device.js';
import { SnapplaneService } from '../../../core/service/index.js';
import { cloneTree, expectSameTree, pattern, readTree, type Tree } from '../../helpers/model.js';
import { rng } from '../../helpers/recording-device.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-drill-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Overwrites a whole member image with zeros in place (its label too), as a dead disk would read. */
async function zeroMember(path: string): Promise<void> {
  const { size } = await stat(path);
  const fh = await open(path, 'r+');
  const zeros = Buffer.alloc(1 << 20);
  for (let o = 0; o < size; o += zeros.length) await fh.write(zeros, 0, Math.min(zeros.length, size - o), o);
  await fh.close();
}

describe('RAID-4 fault drills', () => {
  for (let seed = 1; seed <= 40; seed++) {
    it(`seed ${seed}: lose a member at a random point of a random workload, keep working, replace, rebuild`, async () => {
      const random = rng(seed * 104729);
      const group = join(dir, `g${seed}`);
      const dev = await Raid4Device.create(group, 3, 6 * 2 ** 20);
      await Volume.format(dev);
      await dev.close();
      let v = await Volume.open(group, { cpIntervalMs: 0, openDevice: openDeviceAt });
      const tree: Tree = new Map();
      const snaps = new Map<string, Tree>();
      const steps = 30;
      const failAt = 5 + Math.floor(random() * 20);
      const victim = Math.floor(random() * 4); // data members 0..2 or parity 3
      const zero = random() < 0.5;
      for (let step = 0; step < steps; step++) {
        if (step === failAt) {
          if (zero) {
            await v.sync();
            await zeroMember(join(group, victim === 3 ? 'parity.img' : `data-${victim}.img`));
          } else {
            await v.exclusive(() => (v.device as Raid4Device).failMember(victim));
          }
        }
        const r = random();
        const f = `/f${Math.floor(random() * 8)}`;
        if (r < 0.6) {
          const data = pattern(Math.floor(random() * 150_000), step * 31 + seed);
          await v.writeFile(f, data);
          tree.set(f, data);
        } else if (r < 0.75 && tree.has(f)) {
          await v.remove(f);
          tree.delete(f);
        } else if (r < 0.9) {
          await v.createSnapshot(`s${step}`);
          snaps.set(`s${step}`, cloneTree(tree));
        } else {
          await v.sync();
        }
        // The active tree always reads back right, healthy or not.
        if (step % 5 === 0) expectSameTree(await readTree(v), tree, `seed ${seed} step ${step}`);
      }
      await v.close();
      // Reopen (a zeroed member is no longer recognised), replace and rebuild it, then check everything.
      const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
      const before = await s.volumeInfo({ volume: group });
      expect(before.device.degraded, `seed ${seed}`).toBe(true);
      const after = await s.raidReplace(group, victim, `replacement-${victim}.img`);
      expect(after.device.degraded).toBe(false);
      const scrub = await s.raidScrub(group);
      expect(scrub.unrepairable).toEqual([]);
      expect(scrub.parityStripesRepaired, `seed ${seed}: parity was consistent after the rebuild`).toBe(0);
      expect(scrub.dataBlocksRepaired).toBe(0);
      await s.closeAll();
      v = await Volume.open(group, { cpIntervalMs: 0, openDevice: openDeviceAt });
      expectSameTree(await readTree(v), tree, `seed ${seed} after rebuild`);
      for (const [name, t] of snaps) {
        const view = await Volume.open(group, { snapshot: name, openDevice: openDeviceAt });
        expectSameTree(await readTree(view), t, `seed ${seed} snapshot ${name}`);
        await view.close();
      }
      expect((await v.fsck()).issues).toEqual([]);
      await v.close();
    }, 120_000);
  }
});
