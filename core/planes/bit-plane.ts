/** Bit planes: one bit per block, stored as 32-bit words (bit v lives in word v>>5, bit v&31: LSB-first bytes on disk). */
import { account, allocate, arenaWords, keepAlive, releaseWith } from './plane-arena.js';

/** Bits held by one 4 KiB block of a plane. */
export const BITS_PER_CHUNK = 4096 * 8;
export const WORDS_PER_CHUNK = BITS_PER_CHUNK / 32;

/** Number of set bits in a 32-bit word. */
export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Number of set bits in a word array (or a range of it). */
export function popcountWords(words: Uint32Array, start = 0, end = words.length): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const w = words[i];
    if (w !== 0) n += popcount32(w);
  }
  return n;
}

/** Calls `fn` with the VBN of every set bit of `words`, ascending; word 0 bit 0 is VBN `firstVbn`. */
export function forEachSetBit(words: Uint32Array, firstVbn: number, fn: (vbn: number) => void): void {
  for (let i = 0; i < words.length; i++) {
    let w = words[i];
    while (w !== 0) {
      const t = w & -w;
      fn(firstVbn + i * 32 + (31 - Math.clz32(t)));
      w ^= t;
    }
  }
}

export class BitPlane {
  readonly words: Uint32Array;
  /** Set bits per 4 KiB chunk, so whole-plane work can skip empty chunks. */
  readonly chunkPopulation: Uint32Array;
  /** Chunks changed since the flag was last cleared (the CP writes only these). */
  readonly dirtyChunks = new Set<number>();
  private population = 0;

  /**
   * The words live in the plane arena when it has room (the plane kernel then reads them in place), else in
   * ordinary memory. Views handed out (`words`, chunkWords, chunkBytes) keep the plane, and so its arena span,
   * alive; a view derived from them by hand (`new Uint8Array(w.buffer, …)`) does not, so derive from chunkBytes.
   */
  constructor(readonly blockCount: number) {
    const words = chunkCount(blockCount) * WORDS_PER_CHUNK;
    const at = allocate(words * 4);
    if (at >= 0) {
      this.words = keepAlive(arenaWords(at, words), this);
      releaseWith(this, at, words * 4);
      account(this, words * 4);
      this.resident = true;
    } else {
      this.words = new Uint32Array(words);
      this.resident = false;
    }
    this.chunkPopulation = new Uint32Array(chunkCount(blockCount));
  }

  /** True when the words are in the plane arena. */
  readonly resident: boolean;

  /** Number of chunks (4 KiB blocks of bitmap) the plane spans. */
  get chunks(): number {
    return this.chunkPopulation.length;
  }

  /** Total set bits. */
  get count(): number {
    return this.population;
  }

  /** True when bit `vbn` is set. */
  has(vbn: number): boolean {
    return (this.words[vbn >>> 5] & (1 << (vbn & 31))) !== 0;
  }

  /** Sets bit `vbn`; returns false when it was already set. */
  set(vbn: number): boolean {
    const i = vbn >>> 5;
    const m = 1 << (vbn & 31);
    if ((this.words[i] & m) !== 0) return false;
    this.words[i] |= m;
    const c = (vbn / BITS_PER_CHUNK) | 0;
    this.chunkPopulation[c]++;
    this.population++;
    this.dirtyChunks.add(c);
    return true;
  }

  /** Sets the bits of `vbns[0..count)` (each below blockCount); one dirty-chunk entry per run within a chunk. */
  setMany(vbns: Uint32Array, count: number): void {
    const words = this.words;
    let lastChunk = -1;
    // A file's blocks are mostly consecutive VBNs: whole words of a run are set at once.
    for (let k = 0; k < count; ) {
      const start = vbns[k];
      let end = start + 1;
      let j = k + 1;
      while (j < count && vbns[j] === end) {
        end++;
        j++;
      }
      k = j;
      for (let v = start; v < end; ) {
        const i = v >>> 5;
        const from = v & 31;
        const to = Math.min(32, from + (end - v));
        const m = to - from === 32 ? 0xffffffff : ((1 << (to - from)) - 1) << from;
        const added = m & ~words[i];
        if (added !== 0) {
          words[i] |= added;
          const n = popcount32(added);
          const c = (v / BITS_PER_CHUNK) | 0;
          this.chunkPopulation[c] += n;
          this.population += n;
          if (c !== lastChunk) {
            this.dirtyChunks.add(c);
            lastChunk = c;
          }
        }
        v += to - from;
      }
    }
  }

  /** Clears every bit set in `other` (a sparse plane's chunks); marks changed chunks dirty; true when any was set. */
  clearBitsOf(other: { chunkIndexes(): number[]; chunk(c: number): Uint32Array | null }): boolean {
    let any = false;
    for (const c of other.chunkIndexes()) {
      const w = other.chunk(c)!;
      const p = this.span(c);
      let hit = false;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) {
        if ((p[i] & w[i]) === 0) continue;
        p[i] &= ~w[i];
        hit = true;
      }
      if (hit) this.recount(c, true);
      any ||= hit;
    }
    return any;
  }

  /** Clears bit `vbn`; returns false when it was already clear. */
  clear(vbn: number): boolean {
    const i = vbn >>> 5;
    const m = 1 << (vbn & 31);
    if ((this.words[i] & m) === 0) return false;
    this.words[i] &= ~m;
    const c = (vbn / BITS_PER_CHUNK) | 0;
    this.chunkPopulation[c]--;
    this.population--;
    this.dirtyChunks.add(c);
    return true;
  }

  /** The words of chunk `c` (a view, not a copy). */
  chunkWords(c: number): Uint32Array {
    const w = this.span(c);
    return this.resident ? keepAlive(w, this) : w;
  }

  /** Chunk `c`'s words for use within one call of this class (not kept alive: never handed out). */
  private span(c: number): Uint32Array {
    return this.words.subarray(c * WORDS_PER_CHUNK, (c + 1) * WORDS_PER_CHUNK);
  }

  /** Chunk `c` as bytes (a view over the plane's memory). */
  chunkBytes(c: number): Buffer {
    const b = Buffer.from(this.words.buffer, this.words.byteOffset + c * 4096, 4096);
    return this.resident ? keepAlive(b, this) : b;
  }

  /** Replaces chunk `c` with `bytes` (4096 bytes, or null for all-zero) without marking it dirty. */
  loadChunk(c: number, bytes: Uint8Array | null): void {
    if (bytes === null && this.chunkPopulation[c] === 0) return; // a hole over a clear chunk: nothing to do
    const dst = this.span(c);
    if (bytes === null) dst.fill(0);
    else new Uint8Array(dst.buffer, dst.byteOffset, 4096).set(bytes.subarray(0, 4096));
    const before = this.chunkPopulation[c];
    const after = popcountWords(dst);
    this.chunkPopulation[c] = after;
    this.population += after - before;
  }

  /** Recounts chunk `c` after its words were changed directly, and marks it dirty when it changed. */
  recount(c: number, markDirty: boolean): void {
    const before = this.chunkPopulation[c];
    const after = popcountWords(this.span(c));
    this.chunkPopulation[c] = after;
    this.population += after - before;
    if (markDirty) this.dirtyChunks.add(c);
  }

  /** Makes this plane an exact copy of `other` (same block count). */
  copyFrom(other: BitPlane): void {
    this.words.set(other.words);
    this.chunkPopulation.set(other.chunkPopulation);
    this.population = other.population;
  }

  /** ORs `other` into this plane, chunk by chunk, visiting only chunks populated in `other`. */
  orWith(other: BitPlane): void {
    for (let c = 0; c < other.chunks; c++) {
      if (other.chunkPopulation[c] === 0) continue;
      const a = this.span(c);
      const b = other.span(c);
      let changed = false;
      for (let i = 0; i < a.length; i++) {
        const v = (a[i] | b[i]) >>> 0;
        if (v !== a[i]) {
          a[i] = v;
          changed = true;
        }
      }
      if (changed) this.recount(c, true);
    }
  }

  /** Clears every bit (marks changed chunks dirty). */
  clearAll(): void {
    for (let c = 0; c < this.chunks; c++) {
      if (this.chunkPopulation[c] !== 0) {
        this.span(c).fill(0);
        this.recount(c, true);
      }
    }
  }

  /** Calls `fn` for every set bit, in ascending order. */
  forEach(fn: (vbn: number) => void): void {
    for (let c = 0; c < this.chunks; c++) if (this.chunkPopulation[c] !== 0) forEachSetBit(this.span(c), c * BITS_PER_CHUNK, fn);
  }

}

/** Chunks needed for a plane over `blockCount` blocks. */
export function chunkCount(blockCount: number): number {
  return Math.ceil(blockCount / BITS_PER_CHUNK);
}
