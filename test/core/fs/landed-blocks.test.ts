/**
 * The copies a receive keeps of the blocks it wrote: only blocks that can be blocks of pointers, read back as kept
 * (lent, or copied into a given buffer), within the budget.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { LandedBlocks } from '../../../core/fs/landed-blocks.js';
import { InodeType, encodeInode, newInode } from '../../../core/fs/format.js';

const B = 4096;
const BLOCKS = 10_000;

/** `n` blocks of pointers: each slot a VBN below BLOCKS (some holes) and a checksum of any value. */
function pointerBlocks(n: number, seed: number): Buffer {
  const b = randomBytes(n * B);
  for (let o = 0; o < b.length; o += 8) b.writeUInt32LE((o / 8 + seed) % 7 === 0 ? 0 : ((o * 31 + seed) % BLOCKS) >>> 0, o);
  return b;
}

describe('LandedBlocks', () => {
  it('reads back runs that are kept whole, and nothing for a run with a block missing', () => {
    const kept = new LandedBlocks(BLOCKS);
    const a = pointerBlocks(3, 1);
    const b = pointerBlocks(2, 2);
    kept.keep(10, a);
    kept.keep(13, b);
    expect(kept.read(11, 1)!.equals(a.subarray(B, 2 * B))).toBe(true);
    // Across two kept runs.
    expect(kept.read(12, 3)!.equals(Buffer.concat([a.subarray(2 * B), b]))).toBe(true);
    const into = Buffer.alloc(2 * B);
    expect(kept.read(10, 2, into)).toBe(into);
    expect(into.equals(a.subarray(0, 2 * B))).toBe(true);
    expect(kept.read(9, 2)).toBeNull();
    expect(kept.read(14, 2)).toBeNull();
  });

  it('keeps only the blocks that can be blocks of pointers (every slot a VBN inside the volume)', () => {
    const kept = new LandedBlocks(BLOCKS);
    const data = randomBytes(3 * B);
    pointerBlocks(1, 3).copy(data, B);
    // The last slot of the third block points past the volume: not a block of pointers.
    pointerBlocks(1, 4).copy(data, 2 * B);
    data.writeUInt32LE(BLOCKS, 3 * B - 8);
    kept.keep(100, data);
    expect(kept.read(100, 1)).toBeNull();
    expect(kept.read(101, 1)!.equals(data.subarray(B, 2 * B))).toBe(true);
    expect(kept.read(102, 1)).toBeNull();
  });

  it('keeps blocks of inodes (used and free records), not a block with one record of another type', () => {
    const kept = new LandedBlocks(BLOCKS);
    const inodes = Buffer.alloc(2 * B);
    for (let r = 0; r < 12; r++) {
      const ino = newInode(r % 2 ? InodeType.Dir : InodeType.File);
      ino.size = 123_456 * r;
      ino.mtimeNs = 1_764_000_000_000_000_000n + BigInt(r);
      encodeInode(ino, inodes, r * 256);
    }
    inodes.copy(inodes, B, 0, B);
    inodes.writeUInt16LE(9, B + 5 * 256);
    kept.keep(40, inodes);
    expect(kept.read(40, 1)!.equals(inodes.subarray(0, B))).toBe(true);
    expect(kept.read(41, 1)).toBeNull();
  });

  it('keeps copies (the caller may reuse its buffer); lends them to a read without a buffer, copies into one given', () => {
    const kept = new LandedBlocks(BLOCKS);
    const data = pointerBlocks(2, 6);
    const original = Buffer.from(data);
    kept.keep(5, data);
    data.fill(9);
    const lent = kept.read(5, 2)!;
    expect(lent.equals(original)).toBe(true);
    // The same memory on every read: no copy per read.
    expect(kept.read(6, 1)!.buffer).toBe(lent.buffer);
    expect(kept.read(6, 1)!.byteOffset).toBe(lent.byteOffset + B);
    const into = Buffer.alloc(B);
    kept.read(5, 1, into)!.fill(1);
    expect(kept.read(5, 1)!.equals(original.subarray(0, B))).toBe(true);
  });

  it('copies a run whose blocks were kept apart (not lying together in memory)', () => {
    const kept = new LandedBlocks(BLOCKS);
    const data = randomBytes(3 * B);
    pointerBlocks(1, 7).copy(data, 0);
    pointerBlocks(1, 8).copy(data, 2 * B);
    // VBN 21 is no block of pointers: 20 and 22 are kept next to each other, so 20-22 is not kept whole.
    kept.keep(20, data);
    expect(kept.read(20, 3)).toBeNull();
    kept.keep(21, pointerBlocks(1, 9));
    const run = kept.read(20, 3)!;
    expect(run.subarray(0, B).equals(data.subarray(0, B))).toBe(true);
    expect(run.subarray(2 * B).equals(data.subarray(2 * B))).toBe(true);
    expect(run.length).toBe(3 * B);
    // A block kept again lies elsewhere: the run reads its newer copy, not the older one next to its neighbours.
    const again = pointerBlocks(3, 10);
    kept.keep(30, again);
    const newer = pointerBlocks(1, 11);
    kept.keep(31, newer);
    expect(kept.read(30, 3)!.equals(Buffer.concat([again.subarray(0, B), newer, again.subarray(2 * B)]))).toBe(true);
  });

  it('keeps nothing beyond its budget', () => {
    const kept = new LandedBlocks(BLOCKS, 2 * B);
    kept.keep(0, pointerBlocks(3, 5));
    expect(kept.read(1, 1)).not.toBeNull();
    expect(kept.read(2, 1)).toBeNull();
  });
});
