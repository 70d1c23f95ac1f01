/**
 * Snapshot diff. The inode files of the two states are compared top-down, skipping every subtree whose block
 * pointers are equal (shared blocks cannot differ); then the two trees are walked path by path, entering only
 * the folders above an inode whose record differs.
 */
import type { SnapshotDiff } from '../api/types.js';
import { BLOCK_SIZE } from '../common/units.js';
import { INODES_PER_BLOCK, INODE_SIZE, InodeType, POINTERS_PER_BLOCK, ROOT_INODE, decodeInode, readPointer, type BlockPointer, type Inode } from './format.js';
import { openView, type TreeView } from './snapshot-view.js';
import type { Volume } from './volume.js';

interface Counters {
  compared: number;
  skipped: number;
}

const ZERO = Buffer.alloc(BLOCK_SIZE);

/** The inode numbers whose records differ between two inode files. */
async function changedInodes(volume: Volume, a: TreeView, b: TreeView, counters: Counters): Promise<Set<number>> {
  const changed = new Set<number>();
  const read = async (p: BlockPointer, label: string): Promise<Buffer> => (p.vbn === 0 ? ZERO : volume.ctx.readVerified(p, label));
  const compareLeaf = (index: number, x: Buffer, y: Buffer): void => {
    counters.compared++;
    for (let k = 0; k < INODES_PER_BLOCK; k++) {
      const o = k * INODE_SIZE;
      if (x.compare(y, o, o + INODE_SIZE, o, o + INODE_SIZE) !== 0) changed.add(index * INODES_PER_BLOCK + k);
    }
  };
  const ia = a.inodes.tree.inode;
  const ib = b.inodes.tree.inode;
  if (ia.height !== ib.height) {
    // Different tree shapes (the inode file grew a level): compare block by block.
    const blocks = Math.max(a.inodes.tree.blockLength, b.inodes.tree.blockLength);
    for (let i = 0; i < blocks; i += 64) {
      const n = Math.min(64, blocks - i);
      const [xa, xb] = [await a.inodes.tree.readBlocks(i, n), await b.inodes.tree.readBlocks(i, n)];
      for (let k = 0; k < n; k++) compareLeaf(i + k, xa[k], xb[k]);
    }
    return changed;
  }
  const node = async (level: number, index: number, pa: BlockPointer, pb: BlockPointer): Promise<void> => {
    if (pa.vbn === pb.vbn && pa.checksum === pb.checksum) {
      if (pa.vbn !== 0) counters.skipped += POINTERS_PER_BLOCK ** level;
      return;
    }
    const [da, db] = [await read(pa, `inode file of ${a.name}`), await read(pb, `inode file of ${b.name}`)];
    if (level === 0) {
      compareLeaf(index, da, db);
      return;
    }
    for (let s = 0; s < POINTERS_PER_BLOCK; s++) {
      await node(level - 1, index * POINTERS_PER_BLOCK + s, readPointer(da, s), readPointer(db, s));
    }
  };
  for (let j = 0; j < ia.pointers.length; j++) await node(ia.height, j, ia.pointers[j], ib.pointers[j]);
  return changed;
}

async function record(view: TreeView, ino: number) {
  if (ino >= view.inodes.count) return null;
  const block = await view.inodes.tree.readBlock(Math.floor(ino / INODES_PER_BLOCK));
  if (!block) return null;
  const inode = decodeInode(block, (ino % INODES_PER_BLOCK) * INODE_SIZE);
  return inode.type === InodeType.Free ? null : inode;
}

/**
 * Adds `ino` and the folders above it (by parent pointers) to `into`: the folders a path walk must enter to reach
 * a changed inode. A chain stops at the first folder already there, whose own chain was added with it.
 */
async function addWithAncestors(view: TreeView, ino: number, into: Set<number>): Promise<void> {
  for (let cur = ino; cur !== 0 && !into.has(cur); ) {
    const inode = await record(view, cur);
    if (!inode) return;
    into.add(cur);
    if (cur === ROOT_INODE) return;
    cur = inode.parent;
  }
}

/** True when what a file or link holds, or its permissions, differ (times, parent and link count do not count). */
function contentDiffers(x: Inode, y: Inode): boolean {
  if (x.type !== y.type || x.size !== y.size || x.height !== y.height || x.mode !== y.mode || x.uid !== y.uid || x.gid !== y.gid) return true;
  return x.pointers.some((p, k) => p.vbn !== y.pointers[k].vbn || p.checksum !== y.pointers[k].checksum);
}

async function listTree(view: TreeView, ino: number, path: string, out: string[]): Promise<void> {
  out.push(path);
  const inode = await view.inodes.get(ino);
  if (inode.type !== InodeType.Dir) return;
  for (const e of (await view.ns.entries(ino)).values()) await listTree(view, e.inode, `${path === '/' ? '' : path}/${e.name}`, out);
}

function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/**
 * Files added, removed and changed from `older` to `newer`, path by path: a path only in `newer` is added (with
 * everything under it), one only in `older` removed, and one in both changed when its entry names another inode
 * (number or generation: replaced, restored from a snapshot, re-created) or the same inode with other contents
 * (block pointers and their checksums, size, symlink target) or permissions. A folder is changed only when its
 * permissions are (its entries speak for themselves). Only folders on the way to an inode whose record differs
 * are read, so unchanged subtrees cost nothing.
 */
export async function diffTrees(volume: Volume, older: string, newer: string): Promise<SnapshotDiff> {
  const a = openView(volume, older);
  const b = openView(volume, newer);
  const counters: Counters = { compared: 0, skipped: 0 };
  const changed = await changedInodes(volume, a, b, counters);
  const added: string[] = [];
  const removed: string[] = [];
  const modified: string[] = [];
  const enterA = new Set<number>();
  const enterB = new Set<number>();
  for (const ino of changed) {
    await addWithAncestors(a, ino, enterA);
    await addWithAncestors(b, ino, enterB);
  }
  const compareDir = async (inoA: number, inoB: number, path: string): Promise<void> => {
    const ea = await a.ns.entries(inoA);
    const eb = await b.ns.entries(inoB);
    for (const [name, y] of eb) {
      const x = ea.get(name);
      if (x) await compareEntry(x.inode, y.inode, childPath(path, name));
      else await listTree(b, y.inode, childPath(path, name), added);
    }
    for (const [name, x] of ea) if (!eb.has(name)) await listTree(a, x.inode, childPath(path, name), removed);
  };
  const compareEntry = async (inoA: number, inoB: number, path: string): Promise<void> => {
    // The same inode number with the same record, and no changed inode below it: the same entry, whole.
    if (inoA === inoB && !changed.has(inoA) && !enterA.has(inoA) && !enterB.has(inoB)) return;
    const x = await a.inodes.get(inoA);
    const y = await b.inodes.get(inoB);
    const dirA = x.type === InodeType.Dir;
    const dirB = y.type === InodeType.Dir;
    if (dirA && dirB) {
      if (x.mode !== y.mode || x.uid !== y.uid || x.gid !== y.gid) modified.push(path);
      await compareDir(inoA, inoB, path);
      return;
    }
    const sameInode = inoA === inoB && x.generation === y.generation;
    if (!sameInode || contentDiffers(x, y)) modified.push(path);
    // A folder replaced by a file (or the other way): what was under it went, or what is under it came.
    if (dirA) for (const e of (await a.ns.entries(inoA)).values()) await listTree(a, e.inode, childPath(path, e.name), removed);
    if (dirB) for (const e of (await b.ns.entries(inoB)).values()) await listTree(b, e.inode, childPath(path, e.name), added);
  };
  await compareEntry(ROOT_INODE, ROOT_INODE, '/');
  const sort = (x: string[]): string[] => [...new Set(x)].sort();
  return {
    older,
    newer,
    added: sort(added),
    removed: sort(removed),
    changed: sort(modified),
    sharedInodeBlocksSkipped: counters.skipped,
    inodeBlocksCompared: counters.compared,
  };
}
