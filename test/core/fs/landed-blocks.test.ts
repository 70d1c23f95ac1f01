/**
 * The copies a receive keeps of the blocks it wrote: only blocks that can be blocks of pointers, read back as kept
 * (copied both ways), within the budget.
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

  it('keeps copies: the caller may reuse its buffer, and a reader may change what it got', () => {
    const kept = new LandedBlocks(BLOCKS);
    const data = Buffer.alloc(B, 0);
    data.writeUInt32LE(42, 0);
    kept.keep(5, data);
    data.fill(9);
    const got = kept.read(5, 1)!;
    expect(got.readUInt32LE(0)).toBe(42);
    got.fill(1);
    expect(kept.read(5, 1)!.readUInt32LE(0)).toBe(42);
  });

  it('keeps nothing beyond its budget', () => {
    const kept = new LandedBlocks(BLOCKS, 2 * B);
    kept.keep(0, pointerBlocks(3, 5));
    expect(kept.read(1, 1)).not.toBeNull();
    expect(kept.read(2, 1)).toBeNull();
  });
});
