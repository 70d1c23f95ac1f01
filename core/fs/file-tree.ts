/**
 * A file as a tree of blocks: the inode's 24 pointers at the top, `height` levels of indirect blocks,
 * data blocks at level 0. Changes stay in memory (dirty nodes) until a consistency point moves every
 * dirty node to a new VBN (write anywhere) and fills in its parent's pointer with the new checksum.
 */
import { BLOCK_SIZE } from '../common/units.js';
import { blockChecksum } from '../common/checksum.js';
import { SnapplaneError } from '../common/errors.js';
import {
  HOLE,
  INODE_POINTERS,
  MAX_HEIGHT,
  POINTERS_PER_BLOCK,
  POINTER_SIZE,
  readPointer,
  treeCapacity,
  writePointer,
  type BlockPointer,
  type Inode,
} from './format.js';

/** What a tree needs from its volume: verified reads and the allocator. */
export interface TreeContext {
  /** Reads one block and checks it against `pointer.checksum`; `label` names the file in errors. */
  readVerified(pointer: BlockPointer, label: string): Promise<Buffer>;
  /** Reads the blocks behind `pointers` (consecutive VBNs are read as runs), verified. */
  readManyVerified(pointers: BlockPointer[], label: string): Promise<Buffer[]>;
  /** Takes a free block for a dirty node (during a CP). */
  allocate(): number;
  /** Releases a block that the last CP referenced; it becomes free once the next CP commits. */
  free(vbn: number): void;
  /** Reads a run of blocks with consecutive VBNs into `into`, verified. */
  readRunInto(pointers: BlockPointer[], into: Buffer, label: string): Promise<void>;
  /** Takes back a data buffer that left the tree after a CP (buffers from the volume's pool are reused). */
  recycle?(data: Buffer): void;
}

export interface TreeNode {
  level: number;
  index: number;
  data: Buffer;
  /** Where the node lives in the last committed CP (0: nowhere yet). */
  vbn: number;
  dirty: boolean;
  /** The VBN chosen for it by the CP in progress. */
  newVbn: number;
}

/** A pending block write produced by a CP. */
export interface BlockWrite {
  vbn: number;
  data: Buffer;
}

const LEVEL_KEY = 2 ** 44;

// Block indexes reach 24·512^4 (> 2^32), so no 32-bit shifts or masks: plain arithmetic on doubles.
function parentIndex(index: number): number {
  return Math.floor(index / POINTERS_PER_BLOCK);
}

function slotOf(index: number): number {
  return index % POINTERS_PER_BLOCK;
}

function key(level: number, index: number): number {
  return level * LEVEL_KEY + index;
}

/**
 * Indirect blocks that writing data block `index` adds to a file written in order from its start: a node of level l
 * begins every 512^l blocks, and the tree's growth to height l (at block `treeCapacity(l - 1)`) adds its top node.
 */
export function indirectBlocksAddedAt(index: number): number {
  let n = 0;
  for (let level = 1; level <= MAX_HEIGHT; level++) {
    const grows = treeCapacity(level - 1);
    if (index < grows) break;
    if (index === grows || index % POINTERS_PER_BLOCK ** level === 0) n++;
  }
  return n;
}

/** Indirect blocks of a file of `blocks` data blocks written in order from its start (the sum of the above). */
export function indirectBlocksFor(blocks: number): number {
  let n = 0;
  for (let level = 1; level <= MAX_HEIGHT && blocks > treeCapacity(level - 1); level++) n += 1 + Math.floor((blocks - 1) / POINTERS_PER_BLOCK ** level);
  return n;
}

export class FileTree {
  private readonly nodes = new Map<number, TreeNode>();
  private dirtyCount = 0;
  /** The inode changed (metadata or root pointers): its record must be rewritten at the next CP. */
  inodeDirty = false;

  constructor(
    readonly inode: Inode,
    public label: string,
    private readonly ctx: TreeContext,
  ) {}

  /** True when the tree or its inode has changes not yet committed. */
  get isDirty(): boolean {
    return this.dirtyCount > 0 || this.inodeDirty;
  }

  /** Number of dirty nodes (data and indirect). */
  get dirtyNodes(): number {
    return this.dirtyCount;
  }

  private markDirty(n: TreeNode): void {
    if (!n.dirty) {
      n.dirty = true;
      this.dirtyCount++;
    }
  }

  /** Blocks of data the tree addresses (from the size in the inode). */
  get blockLength(): number {
    return Math.ceil(this.inode.size / BLOCK_SIZE);
  }

  private span(level: number): number {
    return POINTERS_PER_BLOCK ** level;
  }

  /** The pointer to node (level, index) as the tree stands (parents are loaded on the way). */
  private async pointerTo(level: number, index: number, create: boolean): Promise<{ pointer: BlockPointer; parent: TreeNode | null } | null> {
    const h = this.inode.height;
    if (level === h) {
      if (index >= INODE_POINTERS) return null;
      return { pointer: this.inode.pointers[index], parent: null };
    }
    const parent = await this.node(level + 1, parentIndex(index), create);
    if (!parent) return null;
    return { pointer: readPointer(parent.data, slotOf(index)), parent };
  }

  /** The node at (level, index): cached, read from disk, or (with create) a new zero node. Indirect nodes stay cached. */
  async node(level: number, index: number, create: boolean): Promise<TreeNode | null> {
    const k = key(level, index);
    const cached = this.nodes.get(k);
    if (cached) return cached;
    const at = await this.pointerTo(level, index, create);
    if (!at) return null;
    const again = this.nodes.get(k);
    if (again) return again;
    let n: TreeNode;
    if (at.pointer.vbn === 0) {
      if (!create) return null;
      n = { level, index, data: Buffer.alloc(BLOCK_SIZE), vbn: 0, dirty: false, newVbn: 0 };
      this.markDirty(n);
    } else {
      const data = await this.ctx.readVerified(at.pointer, this.label);
      n = { level, index, data, vbn: at.pointer.vbn, dirty: false, newVbn: 0 };
    }
    if (level > 0 || n.dirty) this.nodes.set(k, n);
    return n;
  }

  /**
   * Every block of the tree as last committed (indirect blocks top-down, then their children), from the cached
   * indirect nodes; those not cached yet are read once and stay. The tree must have no uncommitted change.
   */
  async committedBlocks(): Promise<{ vbn: number; level: number; index: number }[]> {
    if (this.isDirty) throw new SnapplaneError('IO', `internal: '${this.label}' has uncommitted changes; its committed blocks are not in memory`, { path: this.label });
    const out: { vbn: number; level: number; index: number }[] = [];
    const visit = async (level: number, index: number, vbn: number): Promise<void> => {
      out.push({ vbn, level, index });
      if (level === 0) return;
      const n = (await this.node(level, index, false))!;
      for (let s = 0; s < POINTERS_PER_BLOCK; s++) {
        const child = n.data.readUInt32LE(s * POINTER_SIZE);
        if (child === 0) continue;
        if (level === 1) out.push({ vbn: child, level: 0, index: index * POINTERS_PER_BLOCK + s });
        else await visit(level - 1, index * POINTERS_PER_BLOCK + s, child);
      }
    };
    for (let j = 0; j < this.inode.pointers.length; j++) {
      const p = this.inode.pointers[j];
      if (p.vbn !== 0) await visit(this.inode.height, j, p.vbn);
    }
    return out;
  }

  /** Raises the tree until it can address `blocks` data blocks. */
  private growTo(blocks: number): void {
    while (treeCapacity(this.inode.height) < blocks) {
      if (this.inode.height >= MAX_HEIGHT) {
        throw new SnapplaneError('LIMIT', `file '${this.label}' would exceed the largest file size`, { path: this.label });
      }
      const top: TreeNode = { level: this.inode.height + 1, index: 0, data: Buffer.alloc(BLOCK_SIZE), vbn: 0, dirty: false, newVbn: 0 };
      for (let i = 0; i < INODE_POINTERS; i++) writePointer(top.data, i, this.inode.pointers[i]);
      this.markDirty(top);
      this.nodes.set(key(top.level, 0), top);
      this.inode.pointers = this.inode.pointers.map(() => HOLE);
      this.inode.height++;
      this.inodeDirty = true;
    }
  }

  /** Contents of data block `i` (null for a hole). */
  async readBlock(i: number): Promise<Buffer | null> {
    const cached = this.nodes.get(key(0, i));
    if (cached) return cached.data;
    const at = await this.pointerTo(0, i, false);
    if (!at || at.pointer.vbn === 0) return null;
    return this.ctx.readVerified(at.pointer, this.label);
  }

  /** Contents of data blocks [first, first+count): holes come back as zero blocks; runs are read together. */
  async readBlocks(first: number, count: number): Promise<Buffer[]> {
    return (await this.readBlocksOrHoles(first, count)).map((b) => b ?? Buffer.alloc(BLOCK_SIZE));
  }

  /** Like readBlocks, with holes as null (a sparse reader skips them without allocating zero blocks). */
  async readBlocksOrHoles(first: number, count: number): Promise<(Buffer | null)[]> {
    const out: (Buffer | null)[] = new Array(count).fill(null);
    const wanted: BlockPointer[] = [];
    const slots: number[] = [];
    for (let j = 0; j < count; j++) {
      const i = first + j;
      const cached = this.nodes.get(key(0, i));
      if (cached) {
        out[j] = cached.data;
        continue;
      }
      const at = await this.pointerTo(0, i, false);
      if (at && at.pointer.vbn !== 0) {
        wanted.push(at.pointer);
        slots.push(j);
      }
    }
    if (wanted.length > 0) {
      const got = await this.ctx.readManyVerified(wanted, this.label);
      for (let k = 0; k < got.length; k++) out[slots[k]] = got[k];
    }
    return out;
  }

  /**
   * Reads data blocks [first, first+count) into `into` (count × 4096 bytes): runs of consecutive VBNs go
   * straight from the device into place, holes become zeros.
   */
  async readBlocksInto(first: number, count: number, into: Buffer): Promise<void> {
    let runStart = -1;
    let run: BlockPointer[] = [];
    const flush = async (): Promise<void> => {
      if (run.length === 0) return;
      await this.ctx.readRunInto(run, into.subarray(runStart * BLOCK_SIZE, (runStart + run.length) * BLOCK_SIZE), this.label);
      run = [];
    };
    // The parent of a run of leaves is looked up once per 512 blocks, not once per block.
    let parent: TreeNode | null = null;
    let parentIdx = -1;
    for (let j = 0; j < count; j++) {
      const i = first + j;
      const cached = this.nodes.get(key(0, i));
      let p: BlockPointer | null = null;
      if (!cached) {
        if (this.inode.height === 0) {
          p = i < INODE_POINTERS ? this.inode.pointers[i] : null;
        } else {
          const pi = parentIndex(i);
          if (pi !== parentIdx) {
            parent = await this.node(1, pi, false);
            parentIdx = pi;
          }
          p = parent ? readPointer(parent.data, slotOf(i)) : null;
        }
        if (p && p.vbn === 0) p = null;
      }
      if (p && run.length > 0 && run[run.length - 1].vbn + 1 === p.vbn) {
        run.push(p);
        continue;
      }
      await flush();
      if (p) {
        runStart = j;
        run = [p];
      } else if (cached) {
        cached.data.copy(into, j * BLOCK_SIZE);
      } else {
        into.fill(0, j * BLOCK_SIZE, (j + 1) * BLOCK_SIZE);
      }
    }
    await flush();
  }

  /** Replaces data block `i` with `data` (exactly one block; kept by reference until the CP). */
  async writeBlock(i: number, data: Buffer): Promise<void> {
    if (data.length !== BLOCK_SIZE) throw new SnapplaneError('INVALID', 'a data block must be 4096 bytes');
    this.growTo(i + 1);
    const k = key(0, i);
    const cached = this.nodes.get(k);
    if (cached) {
      cached.data = data;
      this.markDirty(cached);
      return;
    }
    const at = await this.pointerTo(0, i, true);
    if (!at) throw new SnapplaneError('LIMIT', `block ${i} is beyond the tree of '${this.label}'`, { path: this.label });
    const n: TreeNode = { level: 0, index: i, data, vbn: at.pointer.vbn, dirty: false, newVbn: 0 };
    this.markDirty(n);
    this.nodes.set(k, n);
  }

  /** Installs an existing block (shared with a snapshot) as data block `i` without reading it. */
  async shareBlock(i: number, pointer: BlockPointer): Promise<void> {
    this.growTo(i + 1);
    const at = await this.pointerTo(0, i, true);
    if (!at || !at.parent) {
      if (this.inode.height === 0 && i < INODE_POINTERS) {
        this.inode.pointers[i] = { ...pointer };
        this.inodeDirty = true;
        return;
      }
      throw new SnapplaneError('LIMIT', `block ${i} is beyond the tree of '${this.label}'`, { path: this.label });
    }
    writePointer(at.parent.data, slotOf(i), pointer);
    this.markDirty(at.parent);
  }

  /** Frees every data block in [fromBlock, toBlock) (and indirect blocks that no longer address anything). */
  async punch(fromBlock: number, toBlock = Number.MAX_SAFE_INTEGER): Promise<void> {
    const h = this.inode.height;
    for (let j = 0; j < INODE_POINTERS; j++) {
      const p = this.inode.pointers[j];
      if (await this.punchNode(h, j, p, fromBlock, toBlock)) {
        if (p.vbn !== 0) {
          this.inode.pointers[j] = HOLE;
        }
        this.inodeDirty = true;
      }
    }
    for (const [k, n] of this.nodes) {
      const start = n.index * this.span(n.level);
      if (start >= fromBlock && start + this.span(n.level) <= toBlock) {
        if (n.dirty) this.dirtyCount--;
        this.nodes.delete(k);
      }
    }
  }

  /** Returns true when the whole subtree was released. */
  private async punchNode(level: number, index: number, pointer: BlockPointer, from: number, to: number): Promise<boolean> {
    const vbn = pointer.vbn;
    const start = index * this.span(level);
    const end = start + this.span(level);
    if (end <= from || start >= to) return false;
    const whole = start >= from && end <= to;
    const cached = this.nodes.get(key(level, index));
    if (vbn === 0 && !cached) return whole;
    if (whole) {
      if (level > 0) {
        const data = cached?.data ?? (await this.ctx.readVerified(pointer, this.label));
        for (let s = 0; s < POINTERS_PER_BLOCK; s++) {
          const c = readPointer(data, s);
          const childCached = this.nodes.has(key(level - 1, index * POINTERS_PER_BLOCK + s));
          if (c.vbn !== 0 || childCached) await this.punchNode(level - 1, index * POINTERS_PER_BLOCK + s, c, from, to);
        }
      }
      if (vbn !== 0) this.ctx.free(vbn);
      return true;
    }
    // Straddles the cut: keep the node, release the children past it.
    const n = await this.node(level, index, false);
    if (!n) return false;
    for (let s = 0; s < POINTERS_PER_BLOCK; s++) {
      const childIndex = index * POINTERS_PER_BLOCK + s;
      const childStart = childIndex * this.span(level - 1);
      if (childStart + this.span(level - 1) <= from || childStart >= to) continue;
      const c = readPointer(n.data, s);
      const childCached = this.nodes.has(key(level - 1, childIndex));
      if (c.vbn === 0 && !childCached) continue;
      const released = await this.punchNode(level - 1, childIndex, c, from, to);
      if (released && c.vbn !== 0) {
        writePointer(n.data, s, HOLE);
        this.markDirty(n);
      }
    }
    return false;
  }

  /** Frees the whole tree (file removal). */
  async release(): Promise<void> {
    await this.punch(0);
    this.inode.height = 0;
  }

  // ---- consistency point -------------------------------------------------------------------------------

  /** CP step 1: every ancestor of a dirty node is dirty too (its pointer will change); returns true if anything is dirty. */
  async markDirtyPaths(): Promise<boolean> {
    if (this.dirtyCount === 0) return this.inodeDirty;
    const h = this.inode.height;
    const dirty = [...this.nodes.values()].filter((n) => n.dirty);
    for (const n of dirty) {
      let level = n.level;
      let index = n.index;
      while (level < h) {
        const parent = await this.node(level + 1, parentIndex(index), true);
        if (!parent) break;
        if (parent.dirty) break;
        this.markDirty(parent);
        level++;
        index = parentIndex(index);
      }
    }
    this.inodeDirty = true;
    return true;
  }

  /** CP step 2: gives every dirty node a new VBN (data in file order, so files land contiguously) and frees the old one. */
  assignVbns(): number {
    const dirty = [...this.nodes.values()].filter((n) => n.dirty && n.newVbn === 0);
    dirty.sort((a, b) => a.level - b.level || a.index - b.index);
    for (const n of dirty) {
      n.newVbn = this.ctx.allocate();
      if (n.vbn !== 0) this.ctx.free(n.vbn);
    }
    return dirty.length;
  }

  /** CP step 3: bottom-up, checksums each dirty node, stores its pointer in its parent (or the inode), queues its write. */
  finalize(writes: BlockWrite[]): void {
    const h = this.inode.height;
    const dirty = [...this.nodes.values()].filter((n) => n.dirty);
    dirty.sort((a, b) => a.level - b.level || a.index - b.index);
    for (const n of dirty) {
      const pointer = { vbn: n.newVbn, checksum: blockChecksum(n.data) };
      if (n.level === h) {
        this.inode.pointers[n.index] = pointer;
      } else {
        const parent = this.nodes.get(key(n.level + 1, parentIndex(n.index)));
        if (!parent || !parent.dirty) throw new SnapplaneError('IO', `internal: parent of dirty node ${n.level}/${n.index} is not dirty`);
        writePointer(parent.data, slotOf(n.index), pointer);
      }
      writes.push({ vbn: n.newVbn, data: n.data });
    }
  }

  /** CP step 4 (after fsinfo is durable): nodes are clean at their new places; clean data blocks leave memory. */
  commit(): void {
    for (const [k, n] of this.nodes) {
      if (n.dirty) {
        n.vbn = n.newVbn;
        n.newVbn = 0;
        n.dirty = false;
      }
      if (n.level === 0) {
        this.nodes.delete(k);
        this.ctx.recycle?.(n.data);
      }
    }
    this.dirtyCount = 0;
    this.inodeDirty = false;
  }

  /** The buffer of data block `i` when it is dirty in memory (the CP encodes records into it in place). */
  dirtyBlockData(i: number): Buffer | undefined {
    const n = this.nodes.get(key(0, i));
    return n && n.dirty ? n.data : undefined;
  }

  /** Dirty nodes with their assigned VBNs (the CP's block-map bookkeeping reads this). */
  pendingNodes(): TreeNode[] {
    return [...this.nodes.values()].filter((n) => n.dirty);
  }

  /** Drops cached clean indirect nodes (memory pressure); dirty state is kept. */
  trim(): void {
    if (this.dirtyCount > 0) return;
    this.nodes.clear();
  }
}
