/**
 * Sparse files through put and get: blocks of zeros stay holes in the volume (no block taken) and come back as
 * holes on the host, with every byte as it was; through snapshots and a stream too.
 */
import { describe, expect, it } from 'vitest';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { SnapplaneService } from '../../../core/service/index.js';
import { pattern } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('sparse');
const MiB = 1 << 20;

const sha = async (path: string): Promise<string> => createHash('sha256').update(await readFile(path)).digest('hex');

/** A host file of `size` bytes with `pieces` written at their offsets and holes elsewhere. */
async function sparseHostFile(path: string, size: number, pieces: [number, Buffer][]): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(size);
    for (const [at, data] of pieces) await fh.write(data, 0, data.length, at);
  } finally {
    await fh.close();
  }
}

describe('sparse files', () => {
  it('a 64 MiB file with 2 MiB of data fits a 16 MiB volume, and comes back byte for byte, sparse', async () => {
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(tmp(), 'state.json') });
    const vol = join(tmp(), 'v.img');
    await s.createVolume(vol, 16 * MiB);
    const src = join(tmp(), 'disk.raw');
    // Data at the start, in the middle (not block-aligned) and a partial block at the very end; zeros written
    // explicitly in between count as holes too.
    await sparseHostFile(src, 64 * MiB + 100, [
      [0, pattern(MiB, 1)],
      [20 * MiB + 17, pattern(MiB, 2)],
      [30 * MiB, Buffer.alloc(2 * MiB)],
      [64 * MiB - 4096, pattern(4196, 3)],
    ]);
    const before = (await s.volumeInfo({ volume: vol })).freeBytes;
    await s.put(vol, src, '/disk.raw');
    const used = before - (await s.volumeInfo({ volume: vol })).freeBytes;
    // About the 2 MiB of data, not 64: the holes (and the 2 MiB of zeros written) take nothing, a little metadata for the tree.
    expect(used).toBeGreaterThan(2 * MiB);
    expect(used).toBeLessThan(2.5 * MiB);
    await s.snapCreate(vol, 'one');
    const back = join(tmp(), 'back.raw');
    await s.get({ volume: vol }, '/disk.raw', back);
    const st = await stat(back);
    expect(st.size).toBe(64 * MiB + 100);
    expect(await sha(back)).toBe(await sha(src));
    // Sparse on the host: about the data's blocks allocated, not 64 MiB.
    expect(st.blocks * 512).toBeLessThan(8 * MiB);
    // A file that ends in zeros keeps its length.
    const tail = join(tmp(), 'tail.raw');
    await sparseHostFile(tail, 10 * MiB, [[0, pattern(5000, 4)]]);
    await s.put(vol, tail, '/tail.raw');
    const tailBack = join(tmp(), 'tail-back.raw');
    await s.get({ volume: vol }, '/tail.raw', tailBack);
    expect((await stat(tailBack)).size).toBe(10 * MiB);
    expect(await sha(tailBack)).toBe(await sha(tail));
    // From the snapshot, after the file changed in the volume: the snapshot's bytes.
    await writeFile(join(tmp(), 'small'), 'x');
    await s.put(vol, join(tmp(), 'small'), '/disk.raw');
    const old = join(tmp(), 'old.raw');
    await s.get({ volume: vol, snapshot: 'one' }, '/disk.raw', old);
    expect(await sha(old)).toBe(await sha(src));
    // Restored to a host folder from the snapshot (the console's restore): the same bytes, sparse.
    const restored = await s.restoreToHost(vol, 'one', '/disk.raw', tmp(), 'restored.raw');
    expect(await sha(restored.target)).toBe(await sha(src));
    expect((await stat(restored.target)).blocks * 512).toBeLessThan(8 * MiB);
    // Through a stream into another volume: the holes stay holes there too.
    const copy = join(tmp(), 'copy.img');
    await s.createVolume(copy, 16 * MiB);
    await s.copy(vol, copy, 'one');
    const fromCopy = join(tmp(), 'from-copy.raw');
    await s.get({ volume: copy, snapshot: 'one' }, '/disk.raw', fromCopy);
    expect(await sha(fromCopy)).toBe(await sha(src));
    await s.closeAll();
  });

  it('a sparse file that does not fit after all: the error says it needs up to its full length, fewer for its holes', async () => {
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(tmp(), 'state2.json') });
    const vol = join(tmp(), 'small.img');
    await s.createVolume(vol, 16 * MiB);
    const src = join(tmp(), 'big-sparse.raw');
    await sparseHostFile(src, 64 * MiB, [
      [0, pattern(12 * MiB, 5)],
      [40 * MiB, pattern(12 * MiB, 6)],
    ]);
    const err = await s.put(vol, src, '/big.raw').then(
      () => null,
      (e: unknown) => e as Error & { code: string },
    );
    expect(err?.code).toBe('ENOSPC');
    expect(err!.message).toMatch(/'\/big\.raw' needs up to 16\S* blocks \(fewer: it is sparse on the host, 24\.0 MiB of its 64\.0 MiB allocated, and whole blocks of zeros stay holes\), the volume has room for/);
    expect(err!.message).toMatch(/'\/big\.raw' was not created$/);
    expect((await s.ls({ volume: vol }, '/')).map((e) => e.name)).toEqual([]);
    // A file that is not sparse on the host: its need as it is.
    const dense = join(tmp(), 'dense.raw');
    await writeFile(dense, pattern(20 * MiB, 7));
    await expect(s.put(vol, dense, '/dense.raw')).rejects.toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(/'\/dense\.raw' needs \d[\d,]* blocks, the volume has room/) });
    await s.closeAll();
  });
});
