/**
 * Which tree uses a block: a walk of one committed state (the active file system's or a snapshot's) by its
 * pointers, stopping at the first tree that points at the VBN, then a search of the folders for that inode's path.
 * Used by the console's grid hover; it costs a walk of the metadata, so callers ask for one block at a time.
 */
import { SnapplaneError } from '../common/errors.js';
import { INODES_PER_BLOCK, INODE_SIZE, InodeType, RESERVED_BLOCKS, ROOT_INODE, cloneInode, decodeInode, type Inode } from './format.js';
import { InodeTable } from './inode-table.js';
import { Namespace } from './namespace.js';
import { walkTree } from './walk.js';
import type { Volume } from './volume.js';

export interface OwnerState {
  /** `active`, or the snapshot's name. */
  name: string;
  inodeFile: Inode;
  inodeCount: number;
  blockMap: Inode;
  /** The snapshot table tree (the committed state has one; a snapshot keeps none of its own). */
  snapshotTable: Inode | null;
}

export interface FoundOwner {
  kind: 'reserved' | 'inode-file' | 'block-map' | 'snapshot-table' | 'file' | 'dir' | 'symlink';
  path: string | null;
  inode: number | null;
  indirect: boolean;
}

class Found extends Error {
  constructor(readonly level: number) {
    super('found');
  }
}

/** Walks `tree` and reports whether (and at which level) it points at `vbn`. */
async function treeUses(volume: Volume, tree: Inode, label: string, vbn: number): Promise<number | null> {
  try {
    await walkTree(tree, volume.ctx, label, (p, level) => {
      if (p.vbn === vbn) throw new Found(level);
    });
  } catch (e) {
    if (e instanceof Found) return e.level;
    if (e instanceof SnapplaneError && e.code === 'CHECKSUM') return null; // a damaged subtree: fsck reports it
    throw e;
  }
  return null;
}

/** The path of inode `ino` in a state, by a breadth-first search of its folders (null when unreachable). */
async function pathOf(ns: Namespace, inodes: InodeTable, ino: number): Promise<string | null> {
  if (ino === ROOT_INODE) return '/';
  const queue: [number, string][] = [[ROOT_INODE, '']];
  const seen = new Set<number>([ROOT_INODE]);
  while (queue.length > 0) {
    const [dir, path] = queue.shift()!;
    for (const e of (await ns.entries(dir)).values()) {
      const child = `${path}/${e.name}`;
      if (e.inode === ino) return child;
      if (seen.has(e.inode)) continue;
      seen.add(e.inode);
      const inode = await inodes.get(e.inode).catch(() => null);
      if (inode?.type === InodeType.Dir) queue.push([e.inode, child]);
    }
  }
  return null;
}

/** The tree of `state` that uses `vbn`, or null when none does. */
export async function findBlockOwner(volume: Volume, state: OwnerState, vbn: number): Promise<FoundOwner | null> {
  if (vbn < RESERVED_BLOCKS) return { kind: 'reserved', path: null, inode: null, indirect: false };
  const meta: [FoundOwner['kind'], Inode | null, string][] = [
    ['inode-file', state.inodeFile, `inode file of ${state.name}`],
    ['block-map', state.blockMap, `block map of ${state.name}`],
    ['snapshot-table', state.snapshotTable, 'snapshot table'],
  ];
  for (const [kind, tree, label] of meta) {
    if (!tree) continue;
    const level = await treeUses(volume, tree, label, vbn);
    if (level !== null) return { kind, path: null, inode: null, indirect: level > 0 };
  }
  const inodes = new InodeTable(cloneInode(state.inodeFile), state.inodeCount, volume.ctx, `inode file of ${state.name}`);
  const blocks = Math.ceil(state.inodeCount / INODES_PER_BLOCK);
  for (let b = 0; b < blocks; b++) {
    const data = await inodes.tree.readBlock(b).catch(() => null);
    if (!data) continue;
    for (let r = 0; r < INODES_PER_BLOCK; r++) {
      const ino = b * INODES_PER_BLOCK + r;
      if (ino === 0 || ino >= state.inodeCount) continue;
      const inode = decodeInode(data, r * INODE_SIZE);
      if (inode.type === InodeType.Free) continue;
      const level = await treeUses(volume, inode, `inode ${ino}`, vbn);
      if (level === null) continue;
      const kind = inode.type === InodeType.Dir ? 'dir' : inode.type === InodeType.Symlink ? 'symlink' : 'file';
      const path = await pathOf(new Namespace(inodes, volume.label), inodes, ino);
      return { kind, path, inode: ino, indirect: level > 0 };
    }
  }
  return null;
}
