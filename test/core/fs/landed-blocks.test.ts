/** The copies a receive keeps of the blocks it wrote: what is read back is what was kept, copied, within budget. */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { LandedBlocks } from '../../../core/fs/landed-blocks.js';

const B = 4096;

describe('LandedBlocks', () => {
  it('reads back runs that are kept whole, and nothing for a run with a block missing', () => {
    const kept = new LandedBlocks(1 << 20);
    const a = randomBytes(3 * B);
    const b = randomBytes(2 * B);
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

  it('keeps copies: the caller may reuse its buffer, and a reader may change what it got', () => {
    const kept = new LandedBlocks(1 << 20);
    const data = Buffer.alloc(B, 7);
    kept.keep(5, data);
    data.fill(9);
    const got = kept.read(5, 1)!;
    expect(got[0]).toBe(7);
    got.fill(1);
    expect(kept.read(5, 1)![0]).toBe(7);
  });

  it('keeps nothing beyond its budget', () => {
    const kept = new LandedBlocks(2 * B);
    kept.keep(0, randomBytes(2 * B));
    kept.keep(2, randomBytes(B));
    expect(kept.read(1, 1)).not.toBeNull();
    expect(kept.read(2, 1)).toBeNull();
  });
});
