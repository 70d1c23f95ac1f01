/** A sparse bit plane: 4 KiB chunks allocated only where bits are set (for sets much smaller than the volume). */
import { BITS_PER_CHUNK, WORDS_PER_CHUNK, popcountWords } from './bit-plane.js';

export class SparsePlane {
  private readonly chunks = new Map<number, Uint32Array>();
  private population = 0;

  /** Total set bits. */
  get count(): number {
    return this.population;
  }

  /** True when bit `vbn` is set. */
  has(vbn: number): boolean {
    const c = this.chunks.get(Math.floor(vbn / BITS_PER_CHUNK));
    if (!c) return false;
    const o = vbn % BITS_PER_CHUNK;
    return (c[o >>> 5] & (1 << (o & 31))) !== 0;
  }

  /** Sets bit `vbn`; false when it was already set. */
  set(vbn: number): boolean {
    const ci = Math.floor(vbn / BITS_PER_CHUNK);
    let c = this.chunks.get(ci);
    if (!c) {
      c = new Uint32Array(WORDS_PER_CHUNK);
      this.chunks.set(ci, c);
    }
    const o = vbn % BITS_PER_CHUNK;
    const m = 1 << (o & 31);
    if ((c[o >>> 5] & m) !== 0) return false;
    c[o >>> 5] |= m;
    this.population++;
    return true;
  }

  /** Installs `words` as chunk `c` (taken over, not copied), replacing what was there. */
  setChunk(c: number, words: Uint32Array): void {
    const old = this.chunks.get(c);
    if (old) this.population -= popcountWords(old);
    this.chunks.set(c, words);
    this.population += popcountWords(words);
  }

  /** The words of chunk `c`, or null when no bit is set there. */
  chunk(c: number): Uint32Array | null {
    return this.chunks.get(c) ?? null;
  }

  /** Chunk indexes with bits set, ascending. */
  chunkIndexes(): number[] {
    return [...this.chunks.keys()].sort((a, b) => a - b);
  }
}
