/**
 * Aggregated plane tiles for the console's bit-plane grid: per row of `blocksPerRow` blocks and per plane, how many
 * blocks are set, as a density byte. Computed word-parallel from the planes one 32,768-block chunk at a time
 * (popcounts over words, chunks no snapshot populates skipped via the summary plane), so the grid never needs a
 * whole plane, and a view of a 2^28-block volume touches only the chunks that hold blocks.
 */
import { BITS_PER_CHUNK, WORDS_PER_CHUNK, popcount32 } from '../planes/bit-plane.js';
import { ACTIVE_PLANE, type SnapshotEntry } from '../fs/format.js';
import type { BlockMap } from '../fs/block-map.js';
import type { SparsePlane } from '../planes/sparse-plane.js';

export interface TileRequest {
  firstVbn: number;
  blocksPerRow: number;
  rows: number;
  planes: number[];
}

export interface TileCounts {
  /** Rows at least partly inside the volume. */
  validRows: number;
  /** Plane-major density bytes: plane k's rows at [k*rows, (k+1)*rows). */
  densities: Uint8Array;
  /** Blocks set per plane over the whole range. */
  counts: number[];
}

type ChunkSource = (c: number) => Promise<Uint32Array | null> | Uint32Array | null;

/** Set bits of a chunk's words in bit range [from, to) of the chunk (0 ≤ from < to ≤ BITS_PER_CHUNK). */
export function countBits(words: Uint32Array, from: number, to: number): number {
  const first = from >>> 5;
  const last = (to - 1) >>> 5;
  const headMask = (0xffffffff << (from & 31)) >>> 0;
  const tailBits = ((to - 1) & 31) + 1;
  const tailMask = tailBits === 32 ? 0xffffffff : ((1 << tailBits) - 1) >>> 0;
  if (first === last) return popcount32(words[first] & headMask & tailMask);
  let n = popcount32(words[first] & headMask) + popcount32(words[last] & tailMask);
  for (let i = first + 1; i < last; i++) {
    const w = words[i];
    if (w !== 0) n += popcount32(w);
  }
  return n;
}

/** Blocks set per row of the request, for one plane given by its chunk source. */
async function rowCounts(source: ChunkSource, req: TileRequest, blockCount: number, counts: Float64Array): Promise<void> {
  counts.fill(0);
  const end = Math.min(blockCount, req.firstVbn + req.rows * req.blocksPerRow);
  if (req.firstVbn >= end) return;
  const c0 = Math.floor(req.firstVbn / BITS_PER_CHUNK);
  const c1 = Math.floor((end - 1) / BITS_PER_CHUNK);
  for (let c = c0; c <= c1; c++) {
    const words = await source(c);
    if (!words) continue;
    const chunkStart = c * BITS_PER_CHUNK;
    const a = Math.max(req.firstVbn, chunkStart);
    const b = Math.min(end, chunkStart + BITS_PER_CHUNK);
    for (let r = Math.floor((a - req.firstVbn) / req.blocksPerRow); ; r++) {
      const rowStart = req.firstVbn + r * req.blocksPerRow;
      const s = Math.max(a, rowStart);
      const e = Math.min(b, rowStart + req.blocksPerRow);
      if (s >= e) break;
      counts[r] += countBits(words, s - chunkStart, e - chunkStart);
      if (e >= b) break;
    }
  }
}

/** Density byte of `n` set blocks out of `of`: 0 only when none is set, 255 when all are. */
export function density(n: number, of: number): number {
  if (n <= 0 || of <= 0) return 0;
  return Math.max(1, Math.min(255, Math.round((255 * n) / of)));
}

function fillDensities(counts: Float64Array, req: TileRequest, blockCount: number, out: Uint8Array, offset: number): number {
  let total = 0;
  for (let r = 0; r < req.rows; r++) {
    const rowStart = req.firstVbn + r * req.blocksPerRow;
    const inRow = Math.min(blockCount, rowStart + req.blocksPerRow) - rowStart;
    out[offset + r] = inRow > 0 ? density(counts[r], inRow) : 0;
    total += counts[r];
  }
  return total;
}

/**
 * Snapshot plane chunks read from the block map file, kept per map (a regular snapshot's plane never changes
 * while its entry lives, so chunks are keyed by the snapshot's id).
 */
const chunkCaches = new WeakMap<BlockMap, Map<string, Uint32Array | null>>();
const CACHE_CHUNKS = 4096;

function planeSource(map: BlockMap, plane: number, entry: SnapshotEntry | undefined): ChunkSource {
  if (plane === ACTIVE_PLANE) return (c) => (map.active.chunkPopulation[c] === 0 ? null : map.active.chunkWords(c));
  const shadow = map.shadows.get(plane);
  if (shadow) return (c) => (shadow.chunkPopulation[c] === 0 ? null : shadow.chunkWords(c));
  if (!entry) return () => null; // a plane no snapshot uses: empty
  let cache = chunkCaches.get(map);
  if (!cache) {
    cache = new Map();
    chunkCaches.set(map, cache);
  }
  const lru = cache;
  return async (c) => {
    if (map.summary.chunkPopulation[c] === 0) return null; // no regular snapshot holds a block here
    const key = `${entry.id}:${entry.plane}:${c}`;
    const hit = lru.get(key);
    if (hit !== undefined) {
      lru.delete(key);
      lru.set(key, hit);
      return hit;
    }
    const bytes = await map.readChunk(plane, c);
    const words = bytes ? new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + WORDS_PER_CHUNK * 4)) : null;
    lru.set(key, words);
    if (lru.size > CACHE_CHUNKS) lru.delete(lru.keys().next().value as string);
    return words;
  };
}

/** Densities of the requested planes over the requested rows. */
export async function planeTiles(map: BlockMap, entries: SnapshotEntry[], req: TileRequest): Promise<TileCounts> {
  const blockCount = map.blockCount;
  const densities = new Uint8Array(req.planes.length * req.rows);
  const counts = new Float64Array(req.rows);
  const totals: number[] = [];
  for (let k = 0; k < req.planes.length; k++) {
    const plane = req.planes[k];
    const source = planeSource(map, plane, entries.find((e) => e.plane === plane));
    await rowCounts(source, req, blockCount, counts);
    totals.push(fillDensities(counts, req, blockCount, densities, k * req.rows));
  }
  const validRows = Math.max(0, Math.min(req.rows, Math.ceil((blockCount - req.firstVbn) / req.blocksPerRow)));
  return { validRows, densities, counts: totals };
}

/** Densities of an evaluated storage image over the requested rows. */
export async function imageTiles(image: SparsePlane, blockCount: number, req: TileRequest): Promise<{ densities: Uint8Array; blocks: number }> {
  const densities = new Uint8Array(req.rows);
  const counts = new Float64Array(req.rows);
  await rowCounts((c) => image.chunk(c), req, blockCount, counts);
  const blocks = fillDensities(counts, req, blockCount, densities, 0);
  return { densities, blocks };
}

/** The planes (of `planes`) that hold a block in [first, first+count), and the first VBN there any of them holds. */
export async function planesHolding(map: BlockMap, entries: SnapshotEntry[], planes: number[], first: number, count: number): Promise<{ holding: number[]; firstUsed: number | null }> {
  const end = Math.min(map.blockCount, first + count);
  const holding: number[] = [];
  let firstUsed: number | null = null;
  for (const plane of planes) {
    const source = planeSource(map, plane, entries.find((e) => e.plane === plane));
    let found = false;
    for (let c = Math.floor(first / BITS_PER_CHUNK); c * BITS_PER_CHUNK < end; c++) {
      const words = await source(c);
      if (!words) continue;
      const base = c * BITS_PER_CHUNK;
      const a = Math.max(first, base) - base;
      const b = Math.min(end, base + BITS_PER_CHUNK) - base;
      if (a >= b || countBits(words, a, b) === 0) continue;
      found = true;
      // The first set bit in [a, b).
      for (let v = a; v < b; v++) {
        if ((words[v >>> 5] & (1 << (v & 31))) !== 0) {
          if (firstUsed === null || base + v < firstUsed) firstUsed = base + v;
          break;
        }
        if ((v & 31) === 0 && words[v >>> 5] === 0) v += 31;
      }
      break;
    }
    if (found) holding.push(plane);
  }
  return { holding, firstUsed };
}
