/**
 * Copies of the blocks a receive wrote that can be metadata, so that reading its new tree back (to build the
 * destination's state) costs no device read. Without them a 1% incremental of 4 GiB read ~2,100 blocks back (in
 * ~130 reads, 30-50 ms here from the page cache), and after writes around the page cache they would come from
 * disk. Kept: blocks of pointers (every slot a VBN inside the volume) and of inodes (every record's type, height
 * and zero bytes as FORMAT.md §4.1 has them). A data block of other bytes fails within its first few bytes, so the
 * copies are a small part of the data (2,121 of 12,715 blocks in that incremental); a data block that passes is
 * only kept in vain.
 */
import { spareBuffers } from '../common/spare-buffers.js';
import { BLOCK_SIZE } from '../common/units.js';
import { INODES_PER_BLOCK, INODE_SIZE, MAX_HEIGHT, POINTERS_PER_BLOCK, POINTER_SIZE } from './format.js';

/** Bytes per slab the copies are carved from: a record's largest run (256 blocks) fits in one. */
const SLAB_BYTES = 1 << 20;
/** Slabs kept between receives (spare-buffers.ts): a 1% incremental of 4 GiB fills about 9. */
const spareSlabs = spareBuffers(SLAB_BYTES, 16);

/** Blocks kept by VBN, up to a byte budget. */
export class LandedBlocks {
  private readonly blocks = new Map<number, Buffer>();
  private bytes = 0;
  /** The slabs the copies sit in; the last one is being filled up to `filled`. */
  private readonly slabs: Buffer[] = [];
  private filled = SLAB_BYTES;

  constructor(
    /** The volume's size in blocks: a slot of a block of pointers holds a VBN below it (0 for a hole). */
    private readonly blockCount: number,
    private readonly budgetBytes = 64 << 20,
  ) {}

  /** Keeps a copy of each block of `data` (blocks from `vbn` on) that can be metadata, within the budget. */
  keep(vbn: number, data: Uint8Array): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const metadata: number[] = [];
    for (let k = 0; (k + 1) * BLOCK_SIZE <= data.length; k++) {
      if (this.canBePointers(view, k * BLOCK_SIZE) || canBeInodes(view, k * BLOCK_SIZE)) metadata.push(k);
    }
    const n = Math.min(metadata.length, Math.floor((this.budgetBytes - this.bytes) / BLOCK_SIZE));
    if (n <= 0) return;
    // Copied into slabs (a 4 KiB buffer each would be thousands of objects for the collector): the caller's
    // buffer is reused (a stream reader's ring) or handed to the device.
    const copy = n * BLOCK_SIZE > SLAB_BYTES ? Buffer.allocUnsafeSlow(n * BLOCK_SIZE) : this.carve(n * BLOCK_SIZE);
    for (let j = 0; j < n; j++) {
      const k = metadata[j];
      copy.set(data.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE), j * BLOCK_SIZE);
      this.blocks.set(vbn + k, copy.subarray(j * BLOCK_SIZE, (j + 1) * BLOCK_SIZE));
    }
    this.bytes += n * BLOCK_SIZE;
  }

  /**
   * The `count` blocks from `vbn` if every one is kept, else null: copied into `into` when given; otherwise the kept
   * bytes themselves where they lie together (lent: unchanged by the reader and dropped by release()), else a copy.
   */
  read(vbn: number, count: number, into?: Buffer): Buffer | null {
    for (let k = 0; k < count; k++) if (!this.blocks.has(vbn + k)) return null;
    if (!into) {
      // Lent rather than copied: a copy in fresh memory costs a page fault per block here (~2,100 per 1% incremental
      // of 4 GiB, 15-25 ms of the receive's commit), and reading the received tree back only reads.
      const first = this.blocks.get(vbn)!;
      let together = true;
      for (let k = 1; k < count && together; k++) {
        const b = this.blocks.get(vbn + k)!;
        together = b.buffer === first.buffer && b.byteOffset === first.byteOffset + k * BLOCK_SIZE;
      }
      if (together) return Buffer.from(first.buffer, first.byteOffset, count * BLOCK_SIZE);
    }
    const out = into ?? Buffer.allocUnsafe(count * BLOCK_SIZE);
    for (let k = 0; k < count; k++) out.set(this.blocks.get(vbn + k)!, k * BLOCK_SIZE);
    return out;
  }

  /** `bytes` (at most a slab's) of the slab being filled, or of a new one. */
  private carve(bytes: number): Buffer {
    if (SLAB_BYTES - this.filled < bytes) {
      this.slabs.push(spareSlabs.take());
      this.filled = 0;
    }
    this.filled += bytes;
    return this.slabs[this.slabs.length - 1].subarray(this.filled - bytes, this.filled);
  }

  /** Drops every copy and gives the slabs back for later receives: what read() lent must no longer be in use. */
  release(): void {
    this.blocks.clear();
    for (const b of this.slabs) spareSlabs.give(b);
    this.slabs.length = 0;
    this.filled = SLAB_BYTES;
    this.bytes = this.budgetBytes;
  }

  private canBePointers(view: DataView, offset: number): boolean {
    for (let s = 0; s < POINTERS_PER_BLOCK; s++) if (view.getUint32(offset + s * POINTER_SIZE, true) >= this.blockCount) return false;
    return true;
  }
}

/** True when every 256-byte record of the block at `offset` has a valid type and height and its zero bytes zero. */
function canBeInodes(view: DataView, offset: number): boolean {
  for (let r = 0; r < INODES_PER_BLOCK; r++) {
    const o = offset + r * INODE_SIZE;
    if (view.getUint16(o, true) > 3 || view.getUint16(o + 2, true) > MAX_HEIGHT) return false;
    if (view.getUint32(o + 52, true) !== 0 || view.getUint32(o + 56, true) !== 0 || view.getUint32(o + 60, true) !== 0) return false;
  }
  return true;
}
