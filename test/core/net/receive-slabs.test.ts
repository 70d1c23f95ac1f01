/** A connection's receive slabs go to later connections once it reads no more, except those still held. */
import { describe, expect, it } from 'vitest';
import { ReceiveSlabs, SLAB_BYTES } from '../../../core/net/receive-slabs.js';

/** Fills slabs until `n` of them were made, each read landing whole; returns each slab's memory. */
function fill(slabs: ReceiveSlabs, n: number): ArrayBufferLike[] {
  const seen: ArrayBufferLike[] = [];
  while (seen.length < n) {
    const b = slabs.next();
    if (!seen.includes(b.buffer)) seen.push(b.buffer);
    slabs.landed(b.length);
  }
  return seen;
}

describe('receive slabs', () => {
  it('give back the slabs nobody holds; a held one and the one handed to the reader stay', () => {
    const first = new ReceiveSlabs(4);
    const made = fill(first, 3);
    expect(new Set(made).size).toBe(3);
    // Slab 0 is held by a queued event, slab 1 was handed to the reader last: only slab 2 is free.
    first.hold(0);
    first.giveBack(1);
    const second = new ReceiveSlabs(4);
    const next = second.next();
    expect(next.buffer).toBe(made[2]);
    expect(next.length).toBe(SLAB_BYTES);
    // Neither of the others comes back while the first connection's reader may still read them.
    const more = fill(second, 3);
    expect(more).not.toContain(made[0]);
    expect(more).not.toContain(made[1]);
  });
});
