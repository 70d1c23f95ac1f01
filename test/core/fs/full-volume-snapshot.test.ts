/**
 * A volume that file writes have filled must still take snapshots (a scheduled snapshot on a full volume is when one
 * is wanted most): a snapshot costs a plane and a CP's metadata and may use half of the metadata reserve; the other
 * half keeps deletions working. Past that a snapshot is refused with what it needs and what is free.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { pattern } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const temp = useTempDir('full-snap');

/** Writes files of `size` until the volume refuses one with ENOSPC; returns how many fit. */
async function fill(v: Volume, prefix: string, size: number): Promise<number> {
  for (let i = 0; ; i++) {
    try {
      await v.writeFile(`/${prefix}${i}`, pattern(size, i));
      await v.sync();
    } catch (e) {
      expect(e).toMatchObject({ code: 'ENOSPC' });
      return i;
    }
  }
}

describe('snapshots on a full volume', () => {
  it('are taken after writes filled it, until half the reserve is left; deleting one makes room again', async () => {
    const v = await Volume.create(join(temp(), 'g.img'), { sizeBytes: 64 << 20, cpIntervalMs: 0 });
    try {
      expect(await fill(v, 'big', 1 << 20)).toBeGreaterThan(50);
      await fill(v, 'small', 8 << 10);
      const before = (await v.info()).freeBlocks;
      expect(before).toBeLessThan(150);

      await v.createSnapshot('s3');
      expect((await v.readFile('/small0')).equals(pattern(8 << 10, 0))).toBe(true);

      // More snapshots eat into half the reserve, then one is refused naming what it needs.
      let taken = 1;
      let refusal: unknown = null;
      for (; taken < 100; taken++) {
        try {
          await v.createSnapshot(`x${taken}`);
        } catch (e) {
          refusal = e;
          break;
        }
      }
      expect(taken).toBeGreaterThan(3);
      expect(refusal).toMatchObject({ code: 'ENOSPC' });
      expect((refusal as Error).message).toMatch(/snapshot 'x\d+' needs \d+ blocks, the volume has \d+ free and keeps 32 for deleting snapshots/);
      const info = await v.info();
      expect(info.freeBlocks).toBeGreaterThanOrEqual(32);

      // Deletions still work with what is left, and a snapshot fits again after one.
      for (let k = 1; k <= 6; k++) await v.deleteSnapshot(`x${k}`);
      await v.remove('/small1');
      await v.createSnapshot('again');
      const report = await v.fsck();
      expect(report.issues).toEqual([]);
      expect(report.clean).toBe(true);
    } finally {
      await v.close();
    }
  }, 120_000);
});
