/**
 * A read-only view of a volume that another writer changes: once the writer has freed and reused blocks the view
 * still points at, a read of them fails its checksum. That is not corruption, and the reader is told to read again.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { pattern } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const temp = useTempDir('stale-reader');

describe('a reader whose view a writer has moved past', () => {
  it('gets BUSY "read it again", not CHECKSUM, for blocks the writer freed and reused; a fresh view reads the new state', async () => {
    const path = join(temp(), 'v.img');
    const w = await Volume.create(path, { sizeBytes: 8 << 20, cpIntervalMs: 0 });
    await w.writeFile('/a', pattern(400_000, 1));
    await w.sync();
    const r = await Volume.open(path, { readOnly: true, cpIntervalMs: 0 });
    try {
      // The writer frees /a's blocks, then fills the space again: the allocator reuses them.
      await w.remove('/a');
      await w.sync();
      for (let i = 0; i < 6; i++) await w.writeFile(`/b${i}`, pattern(400_000, 10 + i));
      await w.sync();
      const err = await r.readFile('/a').then(
        (data) => (data.equals(pattern(400_000, 1)) ? 'read the old data' : 'read wrong data'),
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'BUSY', message: expect.stringMatching(/changed while it was being read .* read it again/) });
    } finally {
      await r.close();
    }
    const fresh = await Volume.open(path, { readOnly: true, cpIntervalMs: 0 });
    expect((await fresh.readFile('/b0')).equals(pattern(400_000, 10))).toBe(true);
    await fresh.close();
    await w.close();
  });
});
