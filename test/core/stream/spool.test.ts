/**
 * The receive spool: a resumed receive keeps the file its token was saved with (the held blocks the token names stay
 * on disk whatever happens next), and a fresh one starts empty.
 */
import { describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Spool } from '../../../core/stream/spool.js';
import { pattern } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('spool');
const block = (seed: number): Buffer => pattern(4096, seed);

describe('receive spool', () => {
  it('opened for a resume, the file is left as it was (a torn last record aside) and its records are held where they are', async () => {
    const path = join(tmp(), 'v.receive-token.spool');
    // What an interrupted receive left: three records, the second VBN twice (the later copy counts), and a torn fourth.
    const first = await Spool.open(path, false);
    await first.spool.add(7, block(1));
    await first.spool.add(9, block(2));
    await first.spool.add(9, block(3));
    await first.spool.file.write(Buffer.alloc(100, 0xee), 0, 100, 3 * (8 + 4096));
    await first.spool.file.close();
    const before = await readFile(path);

    const { spool, earlier } = await Spool.open(path, true);
    try {
      // Nothing written yet: a receive killed here leaves the spool its token names (before, it was emptied first
      // and written again record by record).
      expect((await readFile(path)).equals(before)).toBe(true);
      expect(earlier.map((e) => e.vbn)).toEqual([7, 9, 9]);
      for (const e of earlier) spool.keep(e.vbn, e.offset);
      expect([spool.size, spool.vbns()]).toEqual([2, [7, 9]]);
      expect((await spool.read(7)).equals(block(1))).toBe(true);
      expect((await spool.read(9)).equals(block(3))).toBe(true);
      // New records go after the whole ones, over the torn tail.
      await spool.add(11, block(4));
      expect((await spool.read(11)).equals(block(4))).toBe(true);
      expect((await readFile(path)).length).toBe(4 * (8 + 4096));
      expect((await readFile(path)).subarray(0, 3 * (8 + 4096)).equals(before.subarray(0, 3 * (8 + 4096)))).toBe(true);
    } finally {
      await spool.file.close();
    }
  });

  it('opened for a fresh receive, it starts empty; for a resume without a file, too', async () => {
    const path = join(tmp(), 'w.receive-token.spool');
    await writeFile(path, Buffer.alloc(3 * (8 + 4096), 1));
    const fresh = await Spool.open(path, false);
    expect([fresh.earlier, fresh.spool.size, (await readFile(path)).length]).toEqual([[], 0, 0]);
    await fresh.spool.file.close();
    const none = await Spool.open(join(tmp(), 'none.spool'), true);
    expect([none.earlier, none.spool.size]).toEqual([[], 0]);
    await none.spool.file.close();
  });
});
