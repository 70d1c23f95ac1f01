/**
 * Evaluates a storage-image expression over a volume's planes, word-parallel and one 32,768-block chunk at a
 * time, so a volume of any size with many planes evaluates without loading any plane whole.
 */
import { SnapplaneError } from '../common/errors.js';
import { BITS_PER_CHUNK, WORDS_PER_CHUNK, type BitPlane } from '../planes/bit-plane.js';
import { PlaneKernel, type KernelOp } from '../planes/plane-kernel.js';
import { SparsePlane } from '../planes/sparse-plane.js';
import { ResultSlabs } from '../planes/result-slabs.js';
import { ACTIVE_PLANE, SnapshotFlag, type SnapshotEntry } from '../fs/format.js';
import type { BlockMap } from '../fs/block-map.js';
import { namesIn, parseImageExpr, suggest, type ImageExpr } from './expression.js';

/** A name of the expression bound to a plane of the volume. */
export interface BoundPlane {
  name: string;
  plane: number;
  entry: SnapshotEntry | null;
}

/** The named pointer that follows the newest master snapshot. */
export const MASTER_POINTER = 'master';
/** The mark-on-allocate images: blocks that entered the active file system since their base, now and before the last swap. */
export const MARKS = '@moa';
export const MARKS_PREVIOUS = '@moa.previous';
const MARKS_PLANE = -1;
const MARKS_PREVIOUS_PLANE = -2;

/** Names whose blocks `expr` keeps somewhere (not only subtracts): all but those only ever on the right of a '-'. */
function addedNames(expr: ImageExpr, positive = true, out = new Set<string>()): Set<string> {
  if (expr.kind === 'name') {
    if (positive) out.add(expr.name);
  } else {
    addedNames(expr.left, positive, out);
    addedNames(expr.right, expr.kind === 'difference' ? !positive : positive, out);
  }
  return out;
}

/** Binds every name of `expr` to a plane: `active`, a snapshot, or the `master` named pointer. */
export function bindNames(expr: ImageExpr, source: string, entries: SnapshotEntry[], volume: string): Map<string, BoundPlane> {
  const bound = new Map<string, BoundPlane>();
  const added = addedNames(expr);
  for (const { name, column } of namesIn(expr)) {
    if (bound.has(name)) continue;
    if (name === 'active') {
      bound.set(name, { name, plane: ACTIVE_PLANE, entry: null });
      continue;
    }
    if (name === MARKS || name === MARKS_PREVIOUS) {
      bound.set(name, { name, plane: name === MARKS ? MARKS_PLANE : MARKS_PREVIOUS_PLANE, entry: null });
      continue;
    }
    let entry = entries.find((e) => e.name === name);
    if (!entry && name === MASTER_POINTER) {
      const masters = entries.filter((e) => e.flags & SnapshotFlag.master).sort((a, b) => b.generation - a.generation);
      if (masters.length === 0) throw new SnapplaneError('NOT_FOUND', `named pointer 'master' at column ${column} of "${source}" points nowhere: volume '${volume}' has no master snapshot`, { volume });
      entry = masters[0];
    }
    if (!entry) {
      const known = new Set(['active', 'master', ...entries.map((e) => e.name)]);
      // `June4-June3`: a '-' (or '+') right after a name is part of that name, as in `daily-2026-06-01`.
      const parts = name.split(/[+-]/);
      const glued = parts.length > 1 && parts.every((p) => known.has(p));
      const hint = glued ? null : suggest(name, ['active', ...entries.map((e) => e.name)]);
      throw new SnapplaneError('NOT_FOUND', `unknown snapshot '${name}' at column ${column} of "${source}"${glued ? ' (put spaces around - and + to use them as operators)' : hint ? `; did you mean '${hint}'?` : ''}`, { volume, snapshot: name });
    }
    // A stale shadow lost blocks: subtracting it only keeps blocks that were not strictly needed (the seed's
    // shadow base), but any other use would drop blocks the image needs.
    if (entry.flags & SnapshotFlag.stale && added.has(name)) {
      throw new SnapplaneError('INVALID', `shadow snapshot '${name}' (column ${column}) is no longer consistent: its blocks were reused (it can only be subtracted)`, { volume, snapshot: name });
    }
    bound.set(name, { name, plane: entry.plane, entry });
  }
  return bound;
}

/** The result of an evaluation: the image's plane (only populated chunks are stored) and its size. */
export interface EvaluatedImage {
  plane: SparsePlane;
  blocks: number;
  bound: Map<string, BoundPlane>;
}

function compile(e: ImageExpr, bound: Map<string, BoundPlane>, planes: number[], out: KernelOp[]): void {
  if (e.kind === 'name') {
    out.push({ op: 'load', index: planes.indexOf(bound.get(e.name)!.plane) });
    return;
  }
  compile(e.left, bound, planes, out);
  compile(e.right, bound, planes, out);
  out.push({ op: e.kind });
}

/** Reads chunk `c` of any plane as words (null when the chunk is all clear). */
export async function planeChunk(map: BlockMap, plane: number, c: number): Promise<Uint32Array | null> {
  if (plane === MARKS_PLANE || plane === MARKS_PREVIOUS_PLANE) {
    const marks = plane === MARKS_PLANE ? map.marks : map.marksPrevious;
    if (plane === MARKS_PLANE && !marks) throw new SnapplaneError('INVALID', 'the mark-on-allocate images exist only on a volume open for writing');
    return marks && marks.chunkPopulation[c] !== 0 ? marks.chunkWords(c) : null;
  }
  if (plane === ACTIVE_PLANE) return map.active.chunkPopulation[c] === 0 ? null : map.active.chunkWords(c);
  const shadow = map.shadows.get(plane);
  if (shadow) return shadow.chunkPopulation[c] === 0 ? null : shadow.chunkWords(c);
  if (map.summary.chunkPopulation[c] === 0) return null; // no regular snapshot has a block here
  const bytes = await map.readChunk(plane, c);
  return bytes ? new Uint32Array(bytes.buffer, bytes.byteOffset, WORDS_PER_CHUNK) : null;
}

/** Reads plane chunks (as planeChunk does). */
export type PlaneChunkReader = (plane: number, c: number) => Promise<Uint32Array | null>;

/**
 * A planeChunk reader for one operation (a plan, a receive): a stored snapshot plane is read 256 chunks (32 GiB of
 * volume) at a time in one pass over the block map file, and the last 16 such windows are kept, so the several
 * passes a plan makes over the same planes read each chunk from disk once, while a huge volume's planes still
 * stream. Only for one operation under the volume lock: a plane slot is reused after its snapshot is deleted.
 */
export function planeChunkReader(map: BlockMap): PlaneChunkReader {
  const WINDOW = 256;
  const KEEP = 16;
  const windows = new Map<string, Promise<(Buffer | null)[]>>();
  return async (plane, c) => {
    if (plane === MARKS_PLANE || plane === MARKS_PREVIOUS_PLANE || plane === ACTIVE_PLANE || map.shadows.has(plane)) return planeChunk(map, plane, c);
    if (map.summary.chunkPopulation[c] === 0) return null;
    const w0 = c - (c % WINDOW);
    const k = `${plane}/${w0}`;
    let win = windows.get(k);
    if (!win) {
      win = map.tree.readBlocksOrHoles(map.fileBlock(plane, w0), Math.min(WINDOW, map.summary.chunks - w0));
      windows.set(k, win);
      // At most KEEP windows (1 MiB each) stay: a huge volume's planes still stream instead of loading whole.
      if (windows.size > KEEP) windows.delete(windows.keys().next().value!);
    }
    const bytes = (await win)[c - w0];
    return bytes ? new Uint32Array(bytes.buffer, bytes.byteOffset, WORDS_PER_CHUNK) : null;
  };
}

/** Evaluates `source` over the volume's committed planes. */
export async function evaluateImage(source: string, map: BlockMap, entries: SnapshotEntry[], volume: string): Promise<EvaluatedImage> {
  const expr = parseImageExpr(source);
  const bound = bindNames(expr, source, entries, volume);
  return evaluateBound(expr, bound, map);
}

/** Where an operand's words come from: an in-memory bit plane, nowhere (all clear), or the stored snapshot plane. */
export type OperandSource = BitPlane | 'clear' | 'stored';

function operandSource(map: BlockMap, plane: number): OperandSource {
  if (plane === ACTIVE_PLANE) return map.active;
  if (plane === MARKS_PLANE) {
    if (!map.marks) throw new SnapplaneError('INVALID', 'the mark-on-allocate images exist only on a volume open for writing');
    return map.marks;
  }
  if (plane === MARKS_PREVIOUS_PLANE) return map.marksPrevious ?? 'clear';
  return map.shadows.get(plane) ?? 'stored';
}

/**
 * Evaluates a parsed expression whose names are already bound. In-memory planes are read in place by the kernel
 * (they live in the plane arena); stored snapshot planes come from `read` and are copied in a batch at a time.
 */
export async function evaluateBound(expr: ImageExpr, bound: Map<string, BoundPlane>, map: BlockMap, read: PlaneChunkReader = (p, c) => planeChunk(map, p, c)): Promise<EvaluatedImage> {
  const planes = [...new Set([...bound.values()].map((b) => b.plane))];
  const program: KernelOp[] = [];
  compile(expr, bound, planes, program);
  const empty = (c: number, p: { chunkPopulation: Uint32Array } | null): boolean => !p || !(p.chunkPopulation[c] > 0);
  // A chunk where no plane of the volume has a block cannot hold a bit of any image.
  const live = (c: number): boolean =>
    !(empty(c, map.active) && empty(c, map.summary) && empty(c, map.marks) && empty(c, map.marksPrevious) && [...map.shadows.values()].every((p) => empty(c, p)));
  const sources = planes.map((p) => operandSource(map, p));
  const { plane, blocks } = await evaluatePlanes(program, sources, map.active.chunks, (k, c) => read(planes[k], c), live);
  return { plane, blocks, bound };
}

/**
 * Runs a compiled expression over its operands' chunks [0, chunks) and returns the image: the kernel writes the
 * result's chunks straight into arena slabs the result plane owns. `read(k, c)` gives chunk c of a stored operand
 * k; chunks where `live` is false are skipped.
 */
export async function evaluatePlanes(program: KernelOp[], sources: OperandSource[], chunks: number, read: (k: number, c: number) => Promise<Uint32Array | null>, live: (c: number) => boolean): Promise<{ plane: SparsePlane; blocks: number }> {
  // Up to BATCH consecutive chunks are bound at once (fewer calls; copied operands stay in cache).
  const BATCH = 16;
  const kernel = new PlaneKernel(program, sources.length, BATCH * WORDS_PER_CHUNK);
  const result = new SparsePlane();
  const slabs = new ResultSlabs(result, kernel);
  let blocks = 0;
  try {
    for (let c0 = 0; c0 < chunks; c0 += BATCH) {
      const n = Math.min(BATCH, chunks - c0);
      let any = false;
      for (let j = 0; j < n && !any; j++) any = live(c0 + j);
      if (!any) continue;
      for (let k = 0; k < sources.length; k++) {
        const src = sources[k];
        if (src === 'clear') {
          kernel.bind(k, null);
          continue;
        }
        if (src !== 'stored') {
          let populated = false;
          for (let j = 0; j < n && !populated; j++) populated = src.chunkPopulation[c0 + j] > 0;
          kernel.bind(k, populated ? src.words.subarray(c0 * WORDS_PER_CHUNK, (c0 + n) * WORDS_PER_CHUNK) : null);
          continue;
        }
        let populated = false;
        for (let j = 0; j < n; j++) {
          const w = live(c0 + j) ? await read(k, c0 + j) : null;
          if (w) populated = true;
          kernel.fill(k, j, WORDS_PER_CHUNK, w);
        }
        if (!populated) kernel.bind(k, null);
      }
      blocks += kernel.run(n, WORDS_PER_CHUNK, slabs.reserve(n));
      slabs.keep(c0, n);
    }
  } finally {
    kernel.dispose();
  }
  return { plane: result, blocks };
}

/** Bits of chunk `c` as VBN runs [first, count], ascending. */
export function runsInChunk(c: number, words: Uint32Array): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  for (let i = 0; i < WORDS_PER_CHUNK; i++) {
    const w = words[i];
    if (w === 0) {
      if (start >= 0) {
        runs.push([start, c * BITS_PER_CHUNK + i * 32 - start]);
        start = -1;
      }
      continue;
    }
    if (w === 0xffffffff) {
      if (start < 0) start = c * BITS_PER_CHUNK + i * 32;
      continue;
    }
    for (let b = 0; b < 32; b++) {
      const vbn = c * BITS_PER_CHUNK + i * 32 + b;
      if ((w >>> b) & 1) {
        if (start < 0) start = vbn;
      } else if (start >= 0) {
        runs.push([start, vbn - start]);
        start = -1;
      }
    }
  }
  if (start >= 0) runs.push([start, (c + 1) * BITS_PER_CHUNK - start]);
  return runs;
}
