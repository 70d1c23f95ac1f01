/** FileTree.committedBlocks (from cached indirect nodes) against a walk of the same committed tree on disk. */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { FileTree } from '../../../core/fs/file-tree.js';
import { walkTree } from '../../../core/fs/walk.js';
import { cloneInode } from '../../../core/fs/format.js';
import { pattern } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const dir = useTempDir('tree');

async function walked(v: Volume, tree: FileTree): Promise<string[]> {
  const out: string[] = [];
  await walkTree(tree.inode, v.ctx, tree.label, (p, level, index) => out.push(`${level}/${index}@${p.vbn}`));
  return out.sort();
}

async function listed(tree: FileTree): Promise<string[]> {
  return (await tree.committedBlocks()).map((b) => `${b.level}/${b.index}@${b.vbn}`).sort();
}

describe('FileTree.committedBlocks', () => {
  it('lists the blocks a walk of the committed tree finds, after changes and CPs, and refuses a dirty tree', async () => {
    const v = await Volume.create(join(dir(), 'v.img'), { sizeBytes: 64 << 20, cpIntervalMs: 0 });
    try {
      // A file of two levels of indirect blocks (> 24 × 512 blocks), some snapshots for the block map's planes.
      await v.writeFile('/big', pattern(13_000 * 4096, 1));
      await v.createSnapshot('a');
      await v.writeAt('/big', 7 * 4096, pattern(300 * 4096, 2));
      await v.createSnapshot('b');
      await v.consistencyPoint();
      const big = await v.inodes.fileTree((await v.ns.resolve('/big')).ino, '/big');
      for (const tree of [v.blockMap!.tree, v.snapshots.tree, v.inodes.tree, big]) {
        const want = await walked(v, tree);
        expect(want.length).toBeGreaterThan(0);
        expect(await listed(tree), tree.label).toEqual(want);
      }
      expect(big.inode.height).toBeGreaterThanOrEqual(2);
      expect((await walked(v, v.blockMap!.tree)).length).toBeGreaterThan(2);
      // A fresh tree object (nothing cached) reads its indirect nodes once and gives the same.
      const fresh = new FileTree(cloneInode(big.inode), '/big', v.ctx);
      expect(await listed(fresh)).toEqual(await walked(v, big));
      // Changed and not yet committed: its committed blocks are not what the cache holds.
      await v.writeAt('/big', 0, pattern(4096, 3));
      const dirty = await v.inodes.fileTree((await v.ns.resolve('/big')).ino, '/big');
      expect(dirty.isDirty).toBe(true);
      await expect(dirty.committedBlocks()).rejects.toThrow(/uncommitted changes/);
    } finally {
      await v.close();
    }
  });
});
