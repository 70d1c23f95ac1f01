/** Restoring from a snapshot: one file or folder by pointing at its blocks, or the whole volume (revert). */
import { SnapplaneError } from '../common/errors.js';
import { BitPlane } from '../planes/bit-plane.js';
import { INODES_PER_BLOCK, INODE_SIZE, InodeType, RESERVED_BLOCKS, decodeInode, type BlockPointer, type Inode, type SnapshotEntry } from './format.js';
import { normalizePath, type ResolvedPath } from './namespace.js';
import { openView, type TreeView } from './snapshot-view.js';
import { walkTree } from './walk.js';
import type { Volume } from './volume.js';

/** Leaf (data) pointers of a tree, with their block index. */
async function leaves(volume: Volume, inode: Inode, label: string): Promise<{ index: number; pointer: BlockPointer }[]> {
  const out: { index: number; pointer: BlockPointer }[] = [];
  await walkTree(inode, volume.ctx, label, (pointer, level, index) => {
    if (level === 0) out.push({ index, pointer });
  });
  return out;
}

async function copyNode(volume: Volume, view: TreeView, src: ResolvedPath, target: string): Promise<void> {
  const map = volume.blockMap!;
  const s = src.inode;
  const type = s.type;
  const { ino, inode } = await volume.createNode(target, type, { mode: s.mode, uid: s.uid, gid: s.gid });
  inode.mtimeNs = s.mtimeNs;
  if (type === InodeType.Dir) {
    for (const e of (await view.ns.entries(src.ino)).values()) {
      const child = await view.inodes.get(e.inode);
      await copyNode(volume, view, { ino: e.inode, inode: child, parent: src.ino, name: e.name, path: `${src.path === '/' ? '' : src.path}/${e.name}` }, `${target}/${e.name}`);
    }
    inode.mtimeNs = s.mtimeNs;
    volume.inodes.touch(ino);
    return;
  }
  const tree = await volume.inodes.fileTree(ino, target);
  const list = await leaves(volume, s, `${src.path} in snapshot ${view.name}`);
  await volume.reserve(Math.ceil(list.length / 256) + 4);
  for (const { index, pointer } of list) {
    if (!map.active.has(pointer.vbn)) {
      // Not used by the active file system: share it (no data copy).
      await tree.shareBlock(index, pointer);
      map.markUsed(pointer.vbn);
    } else {
      // The live file system still uses this block elsewhere: a block is owned once, so copy it.
      await volume.reserve(1);
      await tree.writeBlock(index, await volume.ctx.readVerified(pointer, `${src.path} in snapshot ${view.name}`));
    }
  }
  inode.size = s.size;
  inode.mtimeNs = s.mtimeNs;
  volume.inodes.touch(ino);
}

/** Puts `path` of snapshot `snapshot` back at `to` (replacing what is there), sharing blocks where it can. */
export async function restorePath(volume: Volume, snapshot: string, path: string, to: string): Promise<void> {
  const view = openView(volume, snapshot);
  let src: ResolvedPath;
  try {
    src = await view.ns.resolve(path);
  } catch (e) {
    if (e instanceof SnapplaneError && e.code === 'NOT_FOUND') {
      throw new SnapplaneError('NOT_FOUND', `'${normalizePath(path)}' does not exist in snapshot '${snapshot}'`, { volume: volume.label, path, snapshot });
    }
    throw e;
  }
  const target = normalizePath(to, volume.label);
  if (target === '/') {
    if (src.inode.type !== InodeType.Dir) throw new SnapplaneError('INVALID', 'only a folder can be restored onto the root', { volume: volume.label, path: '/' });
    for (const e of (await view.ns.entries(src.ino)).values()) {
      await restorePath(volume, snapshot, `${src.path === '/' ? '' : src.path}/${e.name}`, `/${e.name}`);
    }
    return;
  }
  try {
    const existing = await volume.ns.resolve(target);
    await volume.removeResolved(existing, true);
  } catch (e) {
    if (!(e instanceof SnapplaneError && e.code === 'NOT_FOUND')) throw e;
  }
  await volume.mkdirParents(target.split('/').slice(0, -1).join('/') || '/');
  await copyNode(volume, view, src, target);
}

/** A walk's visitor that sets each block's bit in `into`, refusing VBNs outside the volume (corrupted metadata). */
function collector(volume: Volume, into: BitPlane, label: () => string): { add: (p: BlockPointer) => void; leafVbns: (vbns: Uint32Array, count: number) => void } {
  const size = into.blockCount;
  const outside = (vbn: number): SnapplaneError => new SnapplaneError('CHECKSUM', `'${label()}' points at VBN ${vbn}, outside the volume (corrupted metadata)`, { volume: volume.label, vbn });
  return {
    add: (p) => {
      if (p.vbn >= size) throw outside(p.vbn);
      into.set(p.vbn);
    },
    leafVbns: (vbns, count) => {
      for (let k = 0; k < count; k++) if (vbns[k] >= size) throw outside(vbns[k]);
      into.setMany(vbns, count);
    },
  };
}

/** Every block a state uses: its inode file, every file tree in it (only indirect blocks are read). */
export async function collectState(volume: Volume, view: TreeView, into: BitPlane): Promise<void> {
  let label = `inode file of ${view.name}`;
  const { add, leafVbns } = collector(volume, into, () => label);
  await walkTree(view.inodes.tree.inode, volume.ctx, label, add);
  const blocks = view.inodes.tree.blockLength;
  for (let b = 0; b < blocks; b += 64) {
    const got = await view.inodes.tree.readBlocks(b, Math.min(64, blocks - b));
    for (let k = 0; k < got.length; k++) {
      for (let r = 0; r < INODES_PER_BLOCK; r++) {
        const ino = (b + k) * INODES_PER_BLOCK + r;
        if (ino === 0 || ino >= view.inodes.count) continue;
        const inode = decodeInode(got[k], r * INODE_SIZE);
        if (inode.type === InodeType.Free) continue;
        label = `inode ${ino} of ${view.name}`;
        await walkTree(inode, volume.ctx, label, add, { leafVbns });
      }
    }
  }
}

/**
 * The blocks of a state that are new since a base (`isNew`), plus the roots of its unchanged subtrees: only new
 * indirect and inode-file blocks are read, since a block of the base points only to blocks of the base (COW).
 * With the base's own blocks still in use, this gives the whole state at the cost of the change.
 */
export async function collectChangedState(volume: Volume, view: TreeView, into: BitPlane, isNew: (vbn: number) => boolean): Promise<void> {
  let label = `inode file of ${view.name}`;
  const { add, leafVbns } = collector(volume, into, () => label);
  const descend = (p: BlockPointer): boolean => isNew(p.vbn);
  const changed: number[] = [];
  await walkTree(view.inodes.tree.inode, volume.ctx, label, (p, level, index) => {
    add(p);
    if (level === 0 && isNew(p.vbn)) changed.push(index);
  }, { descend });
  for (const b of changed) {
    const block = await view.inodes.tree.readBlock(b);
    if (!block) continue;
    for (let r = 0; r < INODES_PER_BLOCK; r++) {
      const ino = b * INODES_PER_BLOCK + r;
      if (ino === 0 || ino >= view.inodes.count) continue;
      const inode = decodeInode(block, r * INODE_SIZE);
      if (inode.type === InodeType.Free) continue;
      label = `inode ${ino} of ${view.name}`;
      await walkTree(inode, volume.ctx, label, add, { descend, leafVbns });
    }
  }
}

/** Reverts the active file system to a snapshot. Later snapshots are kept; unsaved and later changes are lost. */
export async function revertTo(volume: Volume, snapshot: string): Promise<void> {
  await volume.consistencyPoint();
  const view = openView(volume, snapshot);
  const files = new BitPlane(volume.blockMap!.blockCount);
  await collectState(volume, view, files);
  await setActiveToSnapshot(volume, view.entry!, files);
  await volume.consistencyPoint();
}

/**
 * Makes snapshot `entry` (whose files use the blocks `files`, see collectState) the active file system in memory:
 * the next CP commits it. The block map and snapshot table stay the current ones.
 */
export async function setActiveToSnapshot(volume: Volume, entry: SnapshotEntry, files: BitPlane): Promise<void> {
  const map = volume.blockMap!;
  const next = new BitPlane(map.blockCount);
  next.copyFrom(files);
  for (let v = 0; v < RESERVED_BLOCKS; v++) next.set(v);
  await walkTree(map.tree.inode, volume.ctx, 'block map', (p) => next.set(p.vbn));
  await walkTree(volume.snapshots.tree.inode, volume.ctx, 'snapshot table', (p) => next.set(p.vbn));
  map.setActive(next);
  volume.replaceRoot(entry.inodeFile, entry.inodeCount);
}
