/**
 * A destination that keeps a snapshot the source deleted and then wrote over: the incremental needs that snapshot's
 * blocks, so the receive is refused, naming the snapshot and the VBN, and the destination loses nothing.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { SnapplaneService } from '../../../core/service/index.js';
import { Volume } from '../../../core/fs/volume.js';
import { expectSameTree, pattern } from '../../helpers/model.js';
import { treeOf, writeAndSnapshot } from '../../helpers/replication.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const dir = useTempDir('collide');

describe('receive collisions', () => {
  it('names the snapshot of its own whose blocks the stream needs, and keeps the destination as it was', async () => {
    const src = join(dir(), 'src.img');
    const dst = join(dir(), 'dst.img');
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir(), 'state.json') });
    const v = await Volume.create(src, { sizeBytes: 16 << 20, cpIntervalMs: 0 });
    await v.writeFile('/keep', pattern(1 << 20, 1));
    await v.writeFile('/old', pattern(5 << 20, 2));
    await v.createSnapshot('a');
    await v.remove('/old');
    await v.createSnapshot('b');
    await v.close();
    await s.copy(src, dst, 'b + a');
    await s.closeAll();
    const treeA = await treeOf(src, 'a');
    // The source lets go of 'a' and writes over the space it held; the destination still has its copy.
    await s.snapDelete(src, 'a');
    await s.closeAll();
    await writeAndSnapshot(src, '/new', 9 << 20, 3, 'c');
    await expect(s.copy(src, dst, 'c - b')).rejects.toMatchObject({
      code: 'INVALID',
      snapshot: 'a',
      message: expect.stringMatching(/keeps snapshot 'a' the source no longer has, using VBN \d+, which the stream needs; delete it on/),
    });
    await s.closeAll();
    expect((await s.snapList({ volume: dst })).map((x) => x.name)).toEqual(['a', 'b']);
    expect((await s.fsck(dst)).issues).toEqual([]);
    await s.closeAll();
    expectSameTree(await treeOf(dst, 'a'), treeA, 'a kept whole');
    // Deleting it as told lets the incremental land.
    await s.snapDelete(dst, 'a');
    const r = await s.copy(src, dst, 'c - b');
    expect(r.current).toBe('c');
    await s.closeAll();
    expectSameTree(await treeOf(dst), await treeOf(src, 'c'), 'after deleting a');
  });
});
