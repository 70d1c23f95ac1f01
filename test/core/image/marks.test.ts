/** The mark-on-allocate images equal the subtraction they stand for: `@moa` = `active - base`, also after a reopen. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { evaluateImage } from '../../../core/image/evaluate.js';
import { pattern } from '../../helpers/model.js';
import { rng } from '../../helpers/recording-device.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-marks-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function same(v: Volume, a: string, b: string): Promise<number> {
  const map = await v.planeMap();
  const x = await evaluateImage(a, map, v.snapshots.list(), 'v');
  const y = await evaluateImage(b, map, v.snapshots.list(), 'v');
  expect(x.blocks, `${a} vs ${b}`).toBe(y.blocks);
  for (const c of y.plane.chunkIndexes()) expect(x.plane.chunk(c), `${a} vs ${b}, chunk ${c}`).toEqual(y.plane.chunk(c));
  return x.blocks;
}

async function randomWork(v: Volume, random: () => number, steps: number, snaps: string[]): Promise<void> {
  for (let i = 0; i < steps; i++) {
    const r = random();
    const f = `/f${Math.floor(random() * 12)}`;
    if (r < 0.45) await v.writeFile(f, pattern(1000 + Math.floor(random() * 200_000), Math.floor(random() * 1e6)));
    else if (r < 0.6) await v.writeAt(f, Math.floor(random() * 100_000), pattern(5000, i)).catch(() => v.writeFile(f, pattern(10, i)));
    else if (r < 0.75) await v.remove(f).catch(() => undefined);
    else if (r < 0.85 && snaps.length > 0) {
      // Restoring from a snapshot shares its blocks: they enter the active file system without being allocated.
      const s = snaps[Math.floor(random() * snaps.length)];
      await v.restoreFromSnapshot(s, '/f0').catch(() => undefined);
    } else await v.sync();
  }
  await v.sync();
}

describe('mark-on-allocate images', () => {
  for (let seed = 1; seed <= 4; seed++) {
    it(`seed ${seed}: @moa = active - base through swaps, random work and a reopen`, async () => {
      const random = rng(seed * 7919);
      const path = join(dir, `v${seed}.img`);
      let v = await Volume.create(path, { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
      const snaps: string[] = [];
      await randomWork(v, random, 30, snaps);
      await v.createSnapshot('b1');
      snaps.push('b1');
      await v.swapMarkImages('b1');
      await randomWork(v, random, 40, snaps);
      expect(await same(v, '@moa', 'active - b1')).toBeGreaterThan(0);
      await v.createSnapshot('b2');
      snaps.push('b2');
      await v.swapMarkImages('b2');
      // The previous image is exactly what changed between the two bases.
      await same(v, '@moa.previous', 'b2 - b1');
      await randomWork(v, random, 40, snaps);
      await same(v, '@moa', 'active - b2');
      await v.close();
      v = await Volume.open(path, { cpIntervalMs: 0 });
      await same(v, '@moa', 'active - b2');
      await same(v, '@moa.previous', 'b2 - b1');
      await randomWork(v, random, 20, snaps);
      await same(v, '@moa', 'active - b2');
      expect((await v.fsck()).issues).toEqual([]);
      await v.close();
    }, 60_000);
  }
});
