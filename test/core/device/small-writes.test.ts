/**
 * Writes of up to 64 KiB are made on the calling thread (image-file-device.ts), larger ones through the thread
 * pool: both land the same bytes, in any mix, and a small write the host file system cannot take fails with
 * ENOSPC naming its VBN, leaving every block written before it readable. The full-host case needs a tmpfs mounted
 * here (root only; skipped otherwise).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ImageFileDevice } from '../../../core/device/image-file-device.js';
import { SnapplaneError } from '../../../core/common/errors.js';
import { pattern } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { canMountTmpfs, mountTmpfs, unmountTmpfs } from '../../helpers/tmpfs.js';

const B = 4096;
const dir = useTempDir('small-writes');

afterAll(() => unmountTmpfs());

describe('small writes', () => {
  it('land the same bytes as pooled ones, single buffers or parts, and survive a close and reopen', async () => {
    const path = join(dir(), 'mix.img');
    const dev = await ImageFileDevice.create(path, 4096);
    // [vbn, blocks, parts]: 1 and 16 blocks go on the calling thread, 17 and 300 through the pool.
    const writes: [number, number, number][] = [
      [5, 1, 1],
      [40, 16, 1],
      [80, 16, 4],
      [200, 17, 1],
      [300, 300, 3],
      [1000, 3, 3],
    ];
    const expected = new Map<number, Buffer>();
    const inFlight: Promise<void>[] = [];
    writes.forEach(([vbn, count, parts], k) => {
      const data = pattern(count * B, 100 + k);
      const per = Math.ceil(count / parts) * B;
      const pieces = Array.from({ length: parts }, (_, p) => data.subarray(p * per, Math.min(data.length, (p + 1) * per))).filter((b) => b.length > 0);
      expected.set(vbn, data);
      // Started together, as a receive keeps several in flight.
      inFlight.push(dev.writeBlocks(vbn, parts === 1 ? data : pieces));
    });
    await Promise.all(inFlight);
    for (const [vbn, data] of expected) expect((await dev.readBlocks(vbn, data.length / B)).equals(data)).toBe(true);
    // A later small write over part of a pooled one replaces just its blocks.
    const over = pattern(2 * B, 999);
    await dev.writeBlocks(301, over);
    await dev.flush();
    await dev.close();
    const again = await ImageFileDevice.open(path);
    try {
      const run = await again.readBlocks(300, 300);
      const want = Buffer.from(expected.get(300)!);
      over.copy(want, B);
      expect(run.equals(want)).toBe(true);
      expect((await again.readBlocks(5, 1)).equals(expected.get(5)!)).toBe(true);
      expect((await again.readBlocks(1000, 3)).equals(expected.get(1000)!)).toBe(true);
    } finally {
      await again.close();
    }
  });

  it.skipIf(!canMountTmpfs())('a small write on a full host fails with ENOSPC and its VBN; blocks written before it read back', async () => {
    const at = mountTmpfs(join(dir(), 'tiny'), 1);
    // A sparse image of 16 MiB on a 1 MiB file system: single blocks, 7 apart, until the host is full.
    const dev = await ImageFileDevice.create(join(at, 'full.img'), 4096);
    const landed: number[] = [];
    let failure: unknown = null;
    for (let vbn = 0; vbn < 4096 && !failure; vbn += 7) {
      try {
        await dev.writeBlocks(vbn, pattern(B, vbn));
        landed.push(vbn);
      } catch (e) {
        failure = e;
        expect(e).toBeInstanceOf(SnapplaneError);
        const err = e as SnapplaneError;
        expect(err.code).toBe('ENOSPC');
        expect(err.vbn).toBe(vbn);
        expect(err.message).toContain(`write at VBN ${vbn} failed on '${join(at, 'full.img')}'`);
      }
    }
    expect(failure).not.toBeNull();
    // About 1 MiB of blocks went in before the host was full.
    expect(landed.length).toBeGreaterThan(100);
    for (const vbn of landed) expect((await dev.readBlocks(vbn, 1)).equals(pattern(B, vbn))).toBe(true);
    await dev.close();
  });
});
