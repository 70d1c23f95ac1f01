/**
 * The memory a connection's reads land in: a few slabs, reused. Reads fill a slab from its start; a slice of a slab
 * handed on holds it until released; a slab nobody holds takes the next reads once the one being filled is full.
 * The slabs are marked reused (core/common/reused-memory.ts), so a stream reader copies out what it keeps.
 */
import { markReused } from '../common/reused-memory.js';
import { spareBuffers } from '../common/spare-buffers.js';

/** Bytes per slab: a read takes up to the rest of the slab being filled. */
export const SLAB_BYTES = 1 << 20;
/** A slab with less room than this is left for the next free one. */
const MIN_READ = 64 << 10;
/** Slabs kept between connections (spare-buffers.ts): a receive fills all of its connection's. */
const spareSlabs = spareBuffers(SLAB_BYTES, 32);

export class ReceiveSlabs {
  private readonly slabs: (Buffer | undefined)[] = [];
  private readonly holds: number[];
  /** The slab reads land in, and how much of it they filled. */
  private current = 0;
  private filled = 0;

  constructor(private readonly count: number) {
    if (count < 3) throw new Error('ReceiveSlabs needs at least 3 slabs');
    this.holds = new Array<number>(count).fill(0);
  }

  /** The slab being filled (what `hold` and `release` take). */
  get filling(): number {
    return this.current;
  }

  /** Where the next read lands: the rest of the slab being filled, or a free slab (there is one: see `roomAhead`). */
  next(): Buffer {
    if (SLAB_BYTES - this.filled < MIN_READ) {
      const k = this.freeSlab();
      if (k < 0) throw new Error('internal: no free receive slab (reading should have stopped)');
      this.current = k;
      this.filled = 0;
    }
    // Made on first use: a connection that carries only control messages touches one slab.
    const slab = (this.slabs[this.current] ??= markReused(spareSlabs.take()));
    return slab.subarray(this.filled);
  }

  /** A read of `bytes` landed where `next` said. */
  landed(bytes: number): void {
    this.filled += bytes;
  }

  /** One more slice of slab `k` is held by its reader. */
  hold(k: number): void {
    this.holds[k]++;
  }

  /** A slice of slab `k` is done with. */
  release(k: number): void {
    this.holds[k]--;
  }

  /**
   * True while reading may go on: after the next `next` there is still a free slab for the read after it. Reading
   * must stop otherwise, since the memory a read lands in is chosen before the read, whenever it comes.
   */
  get roomAhead(): boolean {
    let free = 0;
    for (let k = 0; k < this.count; k++) if (k !== this.current && this.holds[k] === 0) free++;
    const needed = SLAB_BYTES - this.filled < MIN_READ ? 2 : 1;
    return free >= needed;
  }

  /**
   * For a connection that reads no more: every slab nobody holds (and not `handed`, the one its reader was given
   * last) goes back to the spares for later connections.
   */
  giveBack(handed: number): void {
    for (let k = 0; k < this.count; k++) {
      const slab = this.slabs[k];
      if (!slab || this.holds[k] > 0 || k === handed) continue;
      spareSlabs.give(slab);
      this.slabs[k] = undefined;
    }
  }

  private freeSlab(): number {
    for (let i = 1; i < this.count; i++) {
      const k = (this.current + i) % this.count;
      if (this.holds[k] === 0) return k;
    }
    return -1;
  }
}
