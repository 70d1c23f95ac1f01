/** The snapshot table: a file of 1 KiB entries; the entry for the snapshot in plane p lives in slot p-1. */
import { BLOCK_SIZE } from '../common/units.js';
import { SnapplaneError } from '../common/errors.js';
import { FileTree, type BlockWrite, type TreeContext } from './file-tree.js';
import {
  MAX_SNAPSHOTS,
  SNAPSHOTS_PER_BLOCK,
  SNAPSHOT_ENTRY_SIZE,
  decodeSnapshotEntry,
  encodeSnapshotEntry,
  type Inode,
  type SnapshotEntry,
} from './format.js';

export class SnapshotTable {
  readonly tree: FileTree;
  private readonly entries = new Map<number, SnapshotEntry>();
  private readonly dirtySlots = new Set<number>();
  /** Why the table could not be read (a read-only view of the active file system only), or null. */
  readonly damage: SnapplaneError | null = null;

  private constructor(inode: Inode, ctx: TreeContext, damage: SnapplaneError | null = null) {
    this.tree = new FileTree(inode, 'snapshot table', ctx);
    this.damage = damage;
  }

  /** A table that could not be read: every question about snapshots fails with `damage`. */
  static unreadable(inode: Inode, ctx: TreeContext, damage: SnapplaneError): SnapshotTable {
    return new SnapshotTable(inode, ctx, damage);
  }

  private readable(): void {
    if (this.damage) throw this.damage;
  }

  /** Reads every entry of the table file. */
  static async load(inode: Inode, ctx: TreeContext): Promise<SnapshotTable> {
    const t = new SnapshotTable(inode, ctx);
    const blocks = Math.ceil(MAX_SNAPSHOTS / SNAPSHOTS_PER_BLOCK);
    const data = await t.tree.readBlocks(0, Math.min(blocks, t.tree.blockLength));
    data.forEach((b, i) => {
      for (let s = 0; s < SNAPSHOTS_PER_BLOCK; s++) {
        const e = decodeSnapshotEntry(b, s * SNAPSHOT_ENTRY_SIZE);
        if (e) t.entries.set(e.plane, e);
      }
      void i;
    });
    return t;
  }

  /** Every snapshot, oldest first. */
  list(): SnapshotEntry[] {
    this.readable();
    return [...this.entries.values()].sort((a, b) => a.createdAtMs - b.createdAtMs || a.id - b.id);
  }

  /** The snapshot called `name`, or NOT_FOUND with the names that exist. */
  byName(name: string, volume: string): SnapshotEntry {
    this.readable();
    for (const e of this.entries.values()) if (e.name === name) return e;
    const names = this.list().map((e) => e.name);
    const hint = names.length ? ` (snapshots: ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''})` : ' (the volume has no snapshots)';
    throw new SnapplaneError('NOT_FOUND', `no snapshot '${name}' on volume '${volume}'${hint}`, { volume, snapshot: name });
  }

  /** True when a snapshot called `name` exists. */
  has(name: string): boolean {
    this.readable();
    for (const e of this.entries.values()) if (e.name === name) return true;
    return false;
  }

  /** A plane slot no snapshot uses, or LIMIT when all 255 are taken. */
  freePlane(volume: string): number {
    this.readable();
    for (let p = 1; p <= MAX_SNAPSHOTS; p++) if (!this.entries.has(p)) return p;
    throw new SnapplaneError('LIMIT', `volume '${volume}' already has ${MAX_SNAPSHOTS} snapshots; delete one first`, { volume });
  }

  /** Adds or replaces an entry. */
  put(e: SnapshotEntry): void {
    this.readable();
    this.entries.set(e.plane, e);
    this.dirtySlots.add(e.plane - 1);
    this.grow(e.plane);
  }

  /** Removes an entry. */
  remove(plane: number): void {
    this.readable();
    this.entries.delete(plane);
    this.dirtySlots.add(plane - 1);
  }

  private grow(plane: number): void {
    const size = Math.ceil(plane / SNAPSHOTS_PER_BLOCK) * BLOCK_SIZE;
    if (size > this.tree.inode.size) {
      this.tree.inode.size = size;
      this.tree.inodeDirty = true;
    }
  }

  get count(): number {
    return this.entries.size;
  }

  // ---- consistency point -------------------------------------------------------------------------------

  /** CP: makes the blocks of changed entries dirty. */
  async stage(): Promise<void> {
    for (const slot of this.dirtySlots) {
      const b = Math.floor(slot / SNAPSHOTS_PER_BLOCK);
      if (!this.tree.dirtyBlockData(b)) await this.tree.writeBlock(b, Buffer.alloc(BLOCK_SIZE));
    }
    await this.tree.markDirtyPaths();
  }

  /** CP: encodes entries into their blocks and finalizes the file (after the inode file and block map, whose roots entries hold). */
  finalize(writes: BlockWrite[]): void {
    const blocks = new Set([...this.dirtySlots].map((s) => Math.floor(s / SNAPSHOTS_PER_BLOCK)));
    for (const b of blocks) {
      const data = this.tree.dirtyBlockData(b);
      if (!data) throw new SnapplaneError('IO', `internal: snapshot table block ${b} was not staged`);
      data.fill(0);
      for (let s = 0; s < SNAPSHOTS_PER_BLOCK; s++) {
        const e = this.entries.get(b * SNAPSHOTS_PER_BLOCK + s + 1);
        if (e) encodeSnapshotEntry(e, data, s * SNAPSHOT_ENTRY_SIZE);
      }
    }
    this.tree.finalize(writes);
  }

  /** CP: committed. */
  commit(): void {
    this.tree.commit();
    this.dirtySlots.clear();
  }

  get isDirty(): boolean {
    return this.dirtySlots.size > 0 || this.tree.isDirty;
  }
}
