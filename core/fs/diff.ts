/**
 * Snapshot diff. The inode files of the two states are compared top-down, skipping every subtree whose block
 * pointers are equal (shared blocks cannot differ); only changed inodes are looked at, and only changed
 * folders are read to find added and removed names.
 */
import type { SnapshotDiff } from '../api/types.js';
import { BLOCK_SIZE } from '../common/units.js';
import { INODES_PER_BLOCK, INODE_SIZE, InodeType, POINTERS_PER_BLOCK, decodeInode, readPointer, type BlockPointer } from './format.js';
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

/** The path of inode `ino` in a view, by its parent pointers. */
async function pathOf(view: TreeView, ino: number, cache: Map<number, string>): Promise<string> {
  const hit = cache.get(ino);
  if (hit !== undefined) return hit;
  if (ino === 1) return '/';
  const inode = await view.inodes.get(ino);
  const parentPath = await pathOf(view, inode.parent, cache);
  let name = `#${ino}`;
  for (const e of (await view.ns.entries(inode.parent)).values()) {
    if (e.inode === ino) {
      name = e.name;
      break;
    }
  }
  const path = parentPath === '/' ? `/${name}` : `${parentPath}/${name}`;
  cache.set(ino, path);
  return path;
}

async function listTree(view: TreeView, ino: number, path: string, out: string[]): Promise<void> {
  out.push(path);
  const inode = await view.inodes.get(ino);
  if (inode.type !== InodeType.Dir) return;
  for (const e of (await view.ns.entries(ino)).values()) await listTree(view, e.inode, `${path === '/' ? '' : path}/${e.name}`, out);
}

/** Files added, removed and changed from `older` to `newer`. */
export async function diffTrees(volume: Volume, older: string, newer: string): Promise<SnapshotDiff> {
  const a = openView(volume, older);
  const b = openView(volume, newer);
  const counters: Counters = { compared: 0, skipped: 0 };
  const changed = await changedInodes(volume, a, b, counters);
  const added: string[] = [];
  const removed: string[] = [];
  const modified: string[] = [];
  const pathsA = new Map<number, string>();
  const pathsB = new Map<number, string>();
  for (const ino of [...changed].sort((x, y) => x - y)) {
    const ra = await record(a, ino);
    const rb = await record(b, ino);
    const same = ra && rb && ra.generation === rb.generation && ra.type === rb.type;
    if (!same) continue; // created or deleted inodes show up as entries of their changed parent folders
    if (ra.type === InodeType.Dir) {
      const ea = await a.ns.entries(ino);
      const eb = await b.ns.entries(ino);
      const dirB = await pathOf(b, ino, pathsB);
      const dirA = await pathOf(a, ino, pathsA);
      for (const [name, e] of eb) {
        const old = ea.get(name);
        if (!old || old.inode !== e.inode) await listTree(b, e.inode, `${dirB === '/' ? '' : dirB}/${name}`, added);
      }
      for (const [name, e] of ea) {
        const now = eb.get(name);
        if (!now || now.inode !== e.inode) await listTree(a, e.inode, `${dirA === '/' ? '' : dirA}/${name}`, removed);
      }
    } else {
      modified.push(await pathOf(b, ino, pathsB));
    }
  }
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
