/** Result chunks of the plane kernel: where a run writes them, and how they become a result plane's chunks. */
import { WORDS_PER_CHUNK } from './bit-plane.js';
import { allocate, arenaWords } from './plane-arena.js';
import type { PlaneKernel } from './plane-kernel.js';
import type { SparsePlane } from './sparse-plane.js';

/**
 * Where the kernel writes result chunks: 1 MiB slabs of the arena owned by the result plane. A batch is written
 * at the slab's cursor and its empty chunks squeezed out, so a sparse result takes only the room of its
 * populated chunks. Without arena room, the kernel's own result region, populated chunks copied out.
 */
export class ResultSlabs {
  private static readonly SLAB = 256;
  private at = -1;
  private used = ResultSlabs.SLAB;
  private inSlab = false;

  constructor(
    private readonly plane: SparsePlane,
    private readonly kernel: PlaneKernel,
  ) {}

  /** Address for the next `n` chunks of results. */
  reserve(n: number): number {
    this.inSlab = false;
    if (!this.kernel.inArena) return this.kernel.resultRegion;
    if (this.used + n > ResultSlabs.SLAB) {
      const at = allocate(ResultSlabs.SLAB * 4096, false); // every kept slot is written by the kernel first
      if (at < 0) return this.kernel.resultRegion;
      this.plane.ownArena(at, ResultSlabs.SLAB * 4096);
      this.at = at;
      this.used = 0;
    }
    this.inSlab = true;
    return this.at + this.used * 4096;
  }

  /** Installs the populated chunks of the batch just written (chunks c0 …) into the result plane. */
  keep(c0: number, n: number): void {
    const counts = this.kernel.counts;
    if (!this.inSlab) {
      const out = this.kernel.view(this.kernel.resultRegion, n * WORDS_PER_CHUNK);
      for (let j = 0; j < n; j++) if (counts[j] !== 0) this.plane.setChunk(c0 + j, out.slice(j * WORDS_PER_CHUNK, (j + 1) * WORDS_PER_CHUNK), counts[j]);
      return;
    }
    const slab = arenaWords(this.at, ResultSlabs.SLAB * WORDS_PER_CHUNK);
    const start = this.used;
    for (let j = 0; j < n; j++) {
      if (counts[j] === 0) continue;
      const from = (start + j) * WORDS_PER_CHUNK;
      const to = this.used * WORDS_PER_CHUNK;
      if (from !== to) slab.copyWithin(to, from, from + WORDS_PER_CHUNK);
      this.plane.setChunk(c0 + j, slab.subarray(to, to + WORDS_PER_CHUNK), counts[j]);
      this.used++;
    }
  }
}
