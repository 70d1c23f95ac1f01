/**
 * Plane algebra in WebAssembly SIMD. The expression, compiled to one fused pass (kernel-compiler.ts), reads each
 * operand and writes the result 16 bytes per instruction and counts the result's bits on the way. Operands that
 * live in the plane arena (plane-arena.ts: every bit plane that fits there) are read in place; others are copied
 * into the kernel's scratch regions a batch at a time, small enough to stay in cache.
 */
import { fusedKernelModule, type FusedOp } from './kernel-compiler.js';
import { ARENA_MAX_PAGES, allocate, arenaMemory, arenaOffset, keepAlive, releaseNow, releaseWith } from './plane-arena.js';

/** One step of a compiled expression: push operand `index`, or combine the top two entries. */
export type KernelOp = { op: 'load'; index: number } | { op: 'union' | 'difference' | 'intersection' };

interface KernelMemory {
  buffer: ArrayBufferLike;
}
/** The WebAssembly API, typed here because core/ is compiled without the DOM library that declares it. */
interface WasmApi {
  Memory: new (d: { initial: number }) => KernelMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
type Fused = (...addresses: number[]) => number;

// Compiled modules by program and memory kind: evaluations of the same expression shape reuse them.
const modules = new Map<string, object>();

/**
 * Runs one compiled expression over batches of up to `batchWords` words per operand. Bind every operand for a
 * batch (`bind` or `fill`), then `run` each segment of it.
 */
export class PlaneKernel {
  private readonly memory: KernelMemory;
  /** True when the kernel works in the plane arena (operands there are read in place). */
  readonly inArena: boolean;
  private readonly base: number;
  private readonly regionBytes: number;
  private readonly address: number[];
  private readonly variants = new Map<string, { fn: Fused | null; slots: number[] }>();
  private current: { fn: Fused | null; slots: number[] } | null = null;
  private readonly args: number[];

  constructor(
    private readonly program: KernelOp[],
    private readonly operands: number,
    readonly batchWords: number,
  ) {
    if (batchWords % 16 !== 0) throw new RangeError('batchWords must be a multiple of 16');
    this.regionBytes = batchWords * 4;
    // Operand regions, the result region, then one u32 count per segment (segments are ≥ 16 words).
    const bytes = (operands + 1) * this.regionBytes + batchWords / 4;
    const at = allocate(bytes, false); // scratch: every region is written before it is read
    if (at >= 0) {
      this.memory = arenaMemory()!;
      this.base = at;
      this.inArena = true;
      releaseWith(this, at, bytes);
    } else {
      // The arena is full (or absent): a memory of the kernel's own, every operand copied in.
      this.memory = new wasm.Memory({ initial: Math.ceil(bytes / 65536) });
      this.base = 0;
      this.inArena = false;
    }
    this.address = new Array<number>(operands).fill(-1);
    this.args = new Array<number>(operands + 4).fill(0);
    this.counts = this.view(this.base + (operands + 1) * this.regionBytes, batchWords / 16);
  }

  /** Set bits per segment of the last `run`'s result. */
  readonly counts: Uint32Array;

  /** Gives the kernel's scratch back to the arena; the kernel and every view it handed out are dead after this. */
  dispose(): void {
    if (this.inArena) releaseNow(this);
  }

  /** Scratch region `k` (operand k's copy; region `operands` is the result's). */
  region(k: number): Uint32Array {
    const w = new Uint32Array(this.memory.buffer, this.base + k * this.regionBytes, this.batchWords);
    return this.inArena ? keepAlive(w, this) : w;
  }

  /** The address of the result region (for `run` when the result is not written in place). */
  get resultRegion(): number {
    return this.base + this.operands * this.regionBytes;
  }

  /** Words at `address` of the kernel's memory (a view; the kernel overwrites its own regions on the next run). */
  view(address: number, words: number): Uint32Array {
    const w = new Uint32Array(this.memory.buffer, address, words);
    return this.inArena ? keepAlive(w, this) : w;
  }

  /** Binds operand `k` for the next runs: `words` read in place when in the arena, else copied; null = all clear. */
  bind(k: number, words: Uint32Array | null): void {
    if (words === null) return this.setAddress(k, -1);
    const at = this.inArena ? arenaOffset(words) : -1;
    if (at >= 0) return this.setAddress(k, at);
    if (words.length > this.batchWords) throw new RangeError('operand longer than the batch');
    this.region(k).set(words);
    this.setAddress(k, this.base + k * this.regionBytes);
  }

  /** Copies `words` (or zeros, for null) into segment `j` of operand k's scratch region and binds k to it. */
  fill(k: number, j: number, segmentWords: number, words: Uint32Array | null): void {
    const region = this.region(k);
    if (words) region.set(words.subarray(0, segmentWords), j * segmentWords);
    else region.fill(0, j * segmentWords, (j + 1) * segmentWords);
    this.setAddress(k, this.base + k * this.regionBytes);
  }

  /**
   * Evaluates the first `segments` × `segmentWords` words of every bound operand, writes the result at address
   * `out` of the kernel's memory, leaves each segment's set bits in `counts` and returns their total. When the
   * result is empty by construction (absent operands fold it away) nothing is written and the counts are 0.
   */
  run(segments: number, segmentWords: number, out: number): number {
    if (segmentWords % 16 !== 0) throw new RangeError('segments must be multiples of 16 words');
    if (segments * segmentWords > this.batchWords) throw new RangeError('more segments than the batch holds');
    const v = (this.current ??= this.variant());
    if (!v.fn) {
      this.counts.fill(0, 0, segments);
      return 0;
    }
    const n = v.slots.length;
    for (let s = 0; s < n; s++) this.args[s] = this.address[v.slots[s]];
    this.args[n] = out;
    this.args[n + 1] = segmentWords * 4;
    this.args[n + 2] = segments;
    this.args[n + 3] = this.counts.byteOffset;
    return v.fn.apply(null, this.args);
  }

  private setAddress(k: number, at: number): void {
    if ((this.address[k] < 0) !== (at < 0)) this.current = null;
    this.address[k] = at;
  }

  /** The fused function for the present operands (absent ones fold away), compiled on first use. */
  private variant(): { fn: Fused | null; slots: number[] } {
    const key = this.address.map((a) => (a < 0 ? '0' : '1')).join('');
    const known = this.variants.get(key);
    if (known) return known;
    const slots: number[] = [];
    const stack: (FusedOp[] | null)[] = [];
    for (const step of this.program) {
      if (step.op === 'load') {
        if (this.address[step.index] < 0) stack.push(null);
        else {
          let s = slots.indexOf(step.index);
          if (s < 0) s = slots.push(step.index) - 1;
          stack.push([{ op: 'load', index: s }]);
        }
        continue;
      }
      const b = stack.pop()!;
      const a = stack.pop()!;
      if (step.op === 'union') stack.push(a && b ? [...a, ...b, { op: 'or' }] : (a ?? b));
      else if (step.op === 'difference') stack.push(a && b ? [...a, ...b, { op: 'andnot' }] : a);
      else stack.push(a && b ? [...a, ...b, { op: 'and' }] : null);
    }
    const ops = stack.pop()!;
    let fn: Fused | null = null;
    if (ops) {
      const pages = this.inArena ? ARENA_MAX_PAGES : this.memory.buffer.byteLength / 65536;
      const id = `${JSON.stringify(ops)}|${slots.length}|${this.inArena ? 'arena' : pages}`;
      let mod = modules.get(id);
      if (!mod) {
        mod = new wasm.Module(fusedKernelModule(ops, slots.length, pages, this.inArena));
        if (modules.size >= 256) modules.clear();
        modules.set(id, mod);
      }
      fn = (new wasm.Instance(mod, { env: { memory: this.memory } }).exports as { run: Fused }).run;
    }
    const v = { fn, slots };
    this.variants.set(key, v);
    return v;
  }
}
