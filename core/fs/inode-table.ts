/** The inode file: 256-byte inode records, 16 per block, each file's block tree opened on demand. */
import { BLOCK_SIZE } from '../common/units.js';
import { SnapplaneError } from '../common/errors.js';
import { FileTree, type BlockWrite, type TreeContext } from './file-tree.js';
import {
  INODES_PER_BLOCK,
  INODE_SIZE,
  InodeType,
  decodeInode,
  encodeInode,
  newInode,
  type Inode,
} from './format.js';

export class InodeTable {
  readonly tree: FileTree;
  private readonly inodes = new Map<number, Inode>();
  private readonly trees = new Map<number, FileTree>();
  private readonly dirty = new Set<number>();
  private readonly freeList: number[] = [];

  constructor(
    inodeFile: Inode,
    public count: number,
    private readonly ctx: TreeContext,
    label = 'inode file',
  ) {
    this.tree = new FileTree(inodeFile, label, ctx);
  }

  /** The inode record `ino` (cached, decoded); NOT_FOUND for a free or out-of-range slot. */
  async get(ino: number): Promise<Inode> {
    const cached = this.inodes.get(ino);
    if (cached) return cached;
    const inode = await this.readRecord(ino);
    if (inode.type === InodeType.Free) throw new SnapplaneError('NOT_FOUND', `inode ${ino} is free`);
    this.inodes.set(ino, inode);
    return inode;
  }

  private async readRecord(ino: number): Promise<Inode> {
    if (ino < 1 || ino >= this.count) throw new SnapplaneError('NOT_FOUND', `inode ${ino} is out of range`);
    const block = await this.tree.readBlock(Math.floor(ino / INODES_PER_BLOCK));
    if (!block) return newInode(InodeType.Free, 0);
    return decodeInode(block, (ino % INODES_PER_BLOCK) * INODE_SIZE);
  }

  /** The block tree of file `ino`; `label` (its path) names it in errors. */
  async fileTree(ino: number, label: string): Promise<FileTree> {
    let t = this.trees.get(ino);
    if (!t) {
      t = new FileTree(await this.get(ino), label, this.ctx);
      this.trees.set(ino, t);
    } else {
      t.label = label;
    }
    return t;
  }

  /** Marks inode `ino` as changed (its record is rewritten at the next CP). */
  touch(ino: number): void {
    this.dirty.add(ino);
  }

  /** Takes a free inode number and installs `inode` there (generation bumped past the slot's last use). */
  async allocate(inode: Inode): Promise<number> {
    let ino = this.freeList.pop();
    if (ino !== undefined) {
      const old = await this.readRecord(ino);
      inode.generation = (old.generation + 1) >>> 0 || 1;
    } else {
      ino = Math.max(this.count, 1);
      this.count = ino + 1;
      inode.generation = 1;
      this.tree.inode.size = Math.ceil(this.count / INODES_PER_BLOCK) * BLOCK_SIZE;
      this.tree.inodeDirty = true;
    }
    this.inodes.set(ino, inode);
    this.trees.delete(ino);
    this.dirty.add(ino);
    return ino;
  }

  /** Frees inode `ino` and every block of its tree. */
  async free(ino: number): Promise<void> {
    const tree = await this.fileTree(ino, `inode ${ino}`);
    await tree.release();
    const inode = await this.get(ino);
    const freed = newInode(InodeType.Free, inode.generation);
    freed.mtimeNs = 0n;
    freed.ctimeNs = 0n;
    freed.mode = 0;
    freed.nlink = 0;
    this.inodes.set(ino, freed);
    this.trees.delete(ino);
    this.dirty.add(ino);
    this.freeList.push(ino);
  }

  /** Every open file tree (the CP walks them). */
  openTrees(): IterableIterator<[number, FileTree]> {
    return this.trees.entries();
  }

  // ---- consistency point -------------------------------------------------------------------------------

  /** CP: propagates dirtiness in every file tree and makes the inode-file blocks of changed inodes dirty. */
  async stage(): Promise<void> {
    for (const [ino, tree] of this.trees) {
      if (await tree.markDirtyPaths()) this.dirty.add(ino);
    }
    for (const ino of this.dirty) {
      const b = Math.floor(ino / INODES_PER_BLOCK);
      if (this.tree.dirtyBlockData(b)) continue;
      const current = await this.tree.readBlock(b);
      await this.tree.writeBlock(b, current ? Buffer.from(current) : Buffer.alloc(BLOCK_SIZE));
    }
    await this.tree.markDirtyPaths();
  }

  /** CP: assigns new VBNs to every dirty file block, then to the inode file's own. */
  assignVbns(): void {
    for (const tree of this.trees.values()) tree.assignVbns();
    this.tree.assignVbns();
  }

  /** CP: finalizes file trees, encodes changed inode records into their blocks, finalizes the inode file. */
  finalize(writes: BlockWrite[]): void {
    for (const tree of this.trees.values()) if (tree.isDirty) tree.finalize(writes);
    for (const ino of this.dirty) {
      const data = this.tree.dirtyBlockData(Math.floor(ino / INODES_PER_BLOCK));
      const inode = this.inodes.get(ino);
      if (!data || !inode) throw new SnapplaneError('IO', `internal: inode ${ino} was not staged`);
      encodeInode(inode, data, (ino % INODES_PER_BLOCK) * INODE_SIZE);
    }
    this.tree.finalize(writes);
  }

  /** CP: everything is durable; drop dirty marks and, when many are open, clean trees. */
  commit(): void {
    for (const tree of this.trees.values()) tree.commit();
    this.tree.commit();
    this.dirty.clear();
    // Everything is clean now, so caches can be dropped wholesale without splitting a tree from its inode.
    if (this.trees.size > 4096 || this.inodes.size > 65536) {
      this.trees.clear();
      this.inodes.clear();
    }
  }

  /** True when anything awaits a CP. */
  get isDirty(): boolean {
    if (this.dirty.size > 0 || this.tree.isDirty) return true;
    for (const t of this.trees.values()) if (t.isDirty) return true;
    return false;
  }
}
