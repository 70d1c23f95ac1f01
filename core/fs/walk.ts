/** Walks a block tree by its pointers (reading indirect blocks, optionally verifying data blocks). */
import { SnapplaneError } from '../common/errors.js';
import { POINTERS_PER_BLOCK, POINTER_SIZE, readPointer, type BlockPointer, type Inode } from './format.js';
import type { TreeContext } from './file-tree.js';

export type ReadContext = Pick<TreeContext, 'readVerified' | 'readManyVerified'>;

export interface WalkOptions {
  /** Read and verify every data block too (fsck). */
  readData?: boolean;
  /** Data blocks already known good: not read again. */
  skipData?: (vbn: number) => boolean;
  /** Whether to read an indirect block's children (default: always); a skipped subtree still visits its root. */
  descend?: (pointer: BlockPointer, level: number) => boolean;
  /** Called for a block that fails to read or verify; the walk goes on without its subtree. */
  onError?: (e: SnapplaneError, pointer: BlockPointer, level: number) => void;
  /**
   * Takes the data pointers of each level-1 block at once instead of one `visit` each: the VBNs of the block's
   * non-hole pointers, appended to `vbns` from 0 and `count` long (for callers that only collect VBNs; a million
   * pointer objects cost more than the walk's reads). Not used with `readData`.
   */
  leafVbns?: (vbns: Uint32Array, count: number) => void;
}

const leafScratch = new Uint32Array(POINTERS_PER_BLOCK);

/** The VBNs of a block of pointers' non-hole slots, into `out`; returns how many. */
function nonHoleVbns(block: Buffer, out: Uint32Array): number {
  let n = 0;
  if (block.byteOffset % 4 === 0) {
    // Pointers are little-endian, as is every CPU the engine runs on (Volume.open checks).
    const words = new Uint32Array(block.buffer, block.byteOffset, POINTERS_PER_BLOCK * 2);
    for (let s = 0; s < words.length; s += 2) if (words[s] !== 0) out[n++] = words[s];
  } else {
    for (let s = 0; s < POINTERS_PER_BLOCK; s++) {
      const vbn = block.readUInt32LE(s * POINTER_SIZE);
      if (vbn !== 0) out[n++] = vbn;
    }
  }
  return n;
}

/** Visits every block of a tree: indirect blocks top-down, then their children; `level` 0 is data. */
export async function walkTree(
  inode: Inode,
  ctx: ReadContext,
  label: string,
  visit: (pointer: BlockPointer, level: number, index: number) => void,
  options: WalkOptions = {},
): Promise<void> {
  const fail = (e: unknown, p: BlockPointer, level: number): void => {
    if (e instanceof SnapplaneError && options.onError) options.onError(e, p, level);
    else throw e;
  };
  const verifyLeaves = async (leaves: BlockPointer[]): Promise<void> => {
    const todo = options.skipData ? leaves.filter((p) => !options.skipData!(p.vbn)) : leaves;
    if (todo.length === 0) return;
    try {
      await ctx.readManyVerified(todo, label);
    } catch {
      for (const p of todo) {
        try {
          await ctx.readVerified(p, label);
        } catch (e) {
          fail(e, p, 0);
        }
      }
    }
  };
  const node = async (level: number, index: number, p: BlockPointer, preread?: Buffer): Promise<void> => {
    visit(p, level, index);
    if (level === 0 || (options.descend && !options.descend(p, level))) return;
    let data: Buffer;
    try {
      data = preread ?? (await ctx.readVerified(p, label));
    } catch (e) {
      fail(e, p, level);
      return;
    }
    if (level === 1 && options.leafVbns && !options.readData) {
      options.leafVbns(leafScratch, nonHoleVbns(data, leafScratch));
      return;
    }
    const leaves: BlockPointer[] = [];
    const children: [number, BlockPointer][] = [];
    for (let s = 0; s < POINTERS_PER_BLOCK; s++) {
      const c = readPointer(data, s);
      if (c.vbn === 0) continue;
      if (level === 1) {
        visit(c, 0, index * POINTERS_PER_BLOCK + s);
        if (options.readData) leaves.push(c);
      } else children.push([index * POINTERS_PER_BLOCK + s, c]);
    }
    if (children.length > 0) {
      // Indirect children are read together (runs of consecutive VBNs in one read), then walked in order.
      const wanted = children.filter(([, c]) => !options.descend || options.descend(c, level - 1));
      let got: Buffer[] | null = null;
      try {
        got = wanted.length > 1 ? await ctx.readManyVerified(wanted.map(([, c]) => c), label) : null;
      } catch {
        got = null; // one by one below, so a bad block is reported as itself
      }
      const pre = new Map<BlockPointer, Buffer>();
      if (got) wanted.forEach(([, c], k) => pre.set(c, got![k]));
      for (const [i, c] of children) await node(level - 1, i, c, pre.get(c));
    }
    if (options.readData) await verifyLeaves(leaves);
  };
  const top: BlockPointer[] = [];
  for (let j = 0; j < inode.pointers.length; j++) {
    const p = inode.pointers[j];
    if (p.vbn === 0) continue;
    if (inode.height === 0) {
      visit(p, 0, j);
      top.push(p);
    } else {
      await node(inode.height, j, p);
    }
  }
  if (options.readData) await verifyLeaves(top);
}
