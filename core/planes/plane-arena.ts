/**
 * The plane arena: one shared WebAssembly memory where bit planes and evaluated images keep their words, so the
 * plane kernel reads its operands and writes its result in place instead of copying planes in and out.
 *
 * A shared memory is used because growing it never detaches the views already handed out (a plain one would
 * invalidate every plane's words on each growth). Space is taken in 4 KiB units, first fit, and given back when
 * its owner object is garbage-collected; an owner keeps itself alive through the views it hands out
 * (`keepAlive`), so memory is never reused while anything can still read it. When the arena cannot grow (its
 * 4 GiB limit, or no shared memory on this runtime), `allocate` returns -1 and callers use ordinary memory.
 */

/** Allocation unit: one plane chunk. */
export const ARENA_UNIT = 4096;
const PAGE = 65536;
const MAX_PAGES = 65536;

interface SharedMemory {
  buffer: ArrayBufferLike;
  grow(pages: number): number;
}
interface WasmMemoryApi {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => SharedMemory;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmMemoryApi }).WebAssembly;

let memory: SharedMemory | null = null;
let unavailable = false;
let size = 0;
// Memory above this offset was never handed out, so it is still the zeros a new WebAssembly page starts with.
let fresh = 0;
// Buffers the memory has had (one per growth): a view on any of them is in the arena.
const buffers = new WeakSet<object>();
// Free spans [offset, bytes], sorted by offset and coalesced.
const free: [number, number][] = [];
// What owns each live span's views, so the span outlives every view handed out.
const owners = new WeakMap<object, object>();
const registry = new FinalizationRegistry<[number, number]>(([offset, bytes]) => release(offset, bytes));

/** The arena's memory (created on first use), or null when this runtime has no shared WebAssembly memory. */
export function arenaMemory(): SharedMemory | null {
  if (memory || unavailable) return memory;
  try {
    memory = new wasm.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
    size = memory.buffer.byteLength;
    buffers.add(memory.buffer);
    free.push([0, size]);
  } catch {
    unavailable = true;
  }
  return memory;
}

/** The arena's highest page count; compiled kernels declare it for the memory they import. */
export const ARENA_MAX_PAGES = MAX_PAGES;

/**
 * Takes `bytes` (rounded up to 4 KiB) of arena memory, zeroed unless `zeroed` is false (for space the caller
 * overwrites whole); returns its offset, or -1 when the arena is full.
 */
export function allocate(bytes: number, zeroed = true): number {
  const mem = arenaMemory();
  if (!mem || bytes <= 0) return -1;
  const need = Math.ceil(bytes / ARENA_UNIT) * ARENA_UNIT;
  let i = free.findIndex(([, b]) => b >= need);
  if (i < 0) {
    const last = free.at(-1);
    const tail = last && last[0] + last[1] === size ? last[1] : 0;
    // Grow by at least a quarter, so many small allocations do not grow the memory one page at a time.
    const pages = Math.max(Math.ceil((need - tail) / PAGE), Math.ceil(size / PAGE / 4));
    const grown = growBy(mem, pages) || growBy(mem, Math.ceil((need - tail) / PAGE));
    if (!grown) return -1;
    i = free.findIndex(([, b]) => b >= need);
  }
  const [offset, b] = free[i];
  if (b === need) free.splice(i, 1);
  else free[i] = [offset + need, b - need];
  // Reused memory holds an earlier owner's words; memory never handed out is zero and stays untouched.
  if (zeroed && offset < fresh) new Uint8Array(mem.buffer, offset, Math.min(need, fresh - offset)).fill(0);
  fresh = Math.max(fresh, offset + need);
  return offset;
}

function growBy(mem: SharedMemory, pages: number): boolean {
  if (size / PAGE + pages > MAX_PAGES) return false;
  try {
    mem.grow(pages);
  } catch {
    return false;
  }
  const old = size;
  size = mem.buffer.byteLength;
  buffers.add(mem.buffer);
  const last = free.at(-1);
  if (last && last[0] + last[1] === old) last[1] += size - old;
  else free.push([old, size - old]);
  return true;
}

/** Gives a span back (offset and bytes as allocated). */
export function release(offset: number, bytes: number): void {
  const need = Math.ceil(bytes / ARENA_UNIT) * ARENA_UNIT;
  let i = 0;
  while (i < free.length && free[i][0] < offset) i++;
  free.splice(i, 0, [offset, need]);
  // Coalesce with the neighbours on both sides.
  if (i + 1 < free.length && free[i][0] + free[i][1] === free[i + 1][0]) {
    free[i][1] += free[i + 1][1];
    free.splice(i + 1, 1);
  }
  if (i > 0 && free[i - 1][0] + free[i - 1][1] === free[i][0]) {
    free[i - 1][1] += free[i][1];
    free.splice(i, 1);
  }
}

/** Gives the span back once `owner` is garbage-collected (its views keep it alive: see keepAlive), or at releaseNow. */
export function releaseWith(owner: object, offset: number, bytes: number): void {
  registry.register(owner, [offset, bytes], owner);
  const spans = spansOf.get(owner);
  if (spans) spans.push([offset, bytes]);
  else spansOf.set(owner, [[offset, bytes]]);
}
const spansOf = new WeakMap<object, [number, number][]>();

/**
 * Tells the collector that `owner` holds `bytes` of arena memory. It cannot see arena memory and would let dead
 * owners pile up, each new span touching fresh pages (a loop of dropped 32 MiB planes reached 3.6 GiB resident
 * without this, 0.3 GiB with it): a buffer of that size, never written so it takes no pages of its own, is counted
 * as the owner's external memory and makes the collector run as often as for ordinary memory.
 */
export function account(owner: object, bytes: number): void {
  // Unzeroed (allocUnsafeSlow: its own backing store, not the pool): zeroing would write, and so take, the pages.
  ballast.set(owner, [...(ballast.get(owner) ?? []), Buffer.allocUnsafeSlow(bytes)]);
}
const ballast = new WeakMap<object, Buffer[]>();

/**
 * Gives back now every span `owner` holds, for an owner that knows no view of them is left (the collector is
 * not told about arena memory, so waiting for it lets dead owners' spans pile up and new ones touch fresh pages).
 */
export function releaseNow(owner: object): void {
  registry.unregister(owner);
  for (const [offset, bytes] of spansOf.get(owner) ?? []) release(offset, bytes);
  spansOf.delete(owner);
  ballast.delete(owner);
}

/** Makes `view` keep `owner` (and so its arena span) alive for as long as the view itself is reachable. */
export function keepAlive<T extends object>(view: T, owner: object): T {
  owners.set(view, owner);
  return view;
}

/** Words [offset, offset + 4 × words) of the arena. */
export function arenaWords(offset: number, words: number): Uint32Array {
  return new Uint32Array(arenaMemory()!.buffer, offset, words);
}

/** The arena offset of `view`'s first byte, or -1 when the view is not arena memory. */
export function arenaOffset(view: ArrayBufferView): number {
  return buffers.has(view.buffer) ? view.byteOffset : -1;
}

/** Bytes the arena holds and how many of them are free (for tests and diagnostics). */
export function arenaUsage(): { size: number; free: number; spans: number } {
  return { size, free: free.reduce((s, [, b]) => s + b, 0), spans: free.length };
}
