/** A sparse bit plane: 4 KiB chunks allocated only where bits are set (for sets much smaller than the volume). */
import { BITS_PER_CHUNK, WORDS_PER_CHUNK, popcount32, popcountWords } from './bit-plane.js';
import { account, keepAlive, releaseNow, releaseWith } from './plane-arena.js';

export class SparsePlane {
  private readonly chunks = new Map<number, Uint32Array>();
  private population = 0;
  private inArena = false;
  private viewed = false;
  private arenaBytes = 0;

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

  /** Installs `words` as chunk `c` (taken over, not copied), replacing what was there; `bits` is its count when known. */
  setChunk(c: number, words: Uint32Array, bits = popcountWords(words)): void {
    const old = this.chunks.get(c);
    if (old) this.population -= popcountWords(old);
    this.chunks.set(c, words);
    this.population += bits;
  }

  /** Sets every bit `other` has (its chunks are copied, never shared). */
  addAll(other: SparsePlane): void {
    for (const c of other.chunkIndexes()) {
      const theirs = other.chunk(c)!;
      const mine = this.chunks.get(c);
      if (!mine) {
        this.setChunk(c, theirs.slice());
        continue;
      }
      const before = popcountWords(mine);
      for (let i = 0; i < WORDS_PER_CHUNK; i++) mine[i] |= theirs[i];
      this.population += popcountWords(mine) - before;
    }
  }

  /** Makes this plane the owner of an arena span its chunks live in: the span is freed when the plane is. */
  ownArena(offset: number, bytes: number): void {
    releaseWith(this, offset, bytes);
    this.arenaBytes += bytes;
    this.inArena = true;
  }

  /** The words of chunk `c`, or null when no bit is set there (the view keeps this plane's memory alive). */
  chunk(c: number): Uint32Array | null {
    const w = this.chunks.get(c);
    if (!w || !this.inArena) return w ?? null;
    if (!this.viewed) {
      // From now on the memory goes back only when the plane is collected: let the collector see it.
      this.viewed = true;
      account(this, this.arenaBytes);
    }
    return keepAlive(w, this);
  }

  /**
   * For a plane that is done with: gives its arena memory back now when no chunk view was ever handed out
   * (`chunk`), leaving the plane empty, and returns true; otherwise the memory goes back when the plane is collected.
   */
  release(): boolean {
    if (!this.inArena || this.viewed) return false;
    releaseNow(this);
    this.chunks.clear();
    this.population = 0;
    this.inArena = false;
    return true;
  }

  /** Runs of consecutive set bits (a run crossing a chunk edge counts once per chunk). */
  runCount(): number {
    let runs = 0;
    for (const words of this.chunks.values()) {
      let carry = 0;
      for (let i = 0; i < words.length; i++) {
        const w = words[i];
        // A run starts at each set bit whose lower neighbour (bit 31 of the word before, for bit 0) is clear.
        if (w !== 0) runs += popcount32(w & ~((w << 1) | carry));
        carry = w >>> 31;
      }
    }
    return runs;
  }

  /** Chunk indexes with bits set, ascending. */
  chunkIndexes(): number[] {
    return [...this.chunks.keys()].sort((a, b) => a - b);
  }
}
