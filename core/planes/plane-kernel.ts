/**
 * Plane algebra in WebAssembly SIMD. Operand words are placed in regions of the kernel's memory (a batch small
 * enough to stay in cache); the expression, compiled to one fused pass (kernel-compiler.ts), combines them 16 bytes
 * per instruction, writes the result region and counts its bits. Memory traffic is one read of each operand and one
 * write of the result.
 */
import { fusedKernelModule, type FusedOp } from './kernel-compiler.js';

/** One step of a compiled expression: push operand `index`, or combine the top two entries. */
export type KernelOp = { op: 'load'; index: number } | { op: 'union' | 'difference' | 'intersection' };

/** The WebAssembly API, typed here because core/ is compiled without the DOM library that declares it. */
interface WasmApi {
  Memory: new (d: { initial: number }) => { buffer: ArrayBuffer };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
type Fused = (from: number, to: number) => number;

// Compiled modules by program and layout: evaluations of the same expression shape reuse them.
const modules = new Map<string, object>();

/** Runs one compiled expression over batches of words; each operand has a region of `batchWords` words. */
export class PlaneKernel {
  private readonly memory: { buffer: ArrayBuffer };
  private readonly words: Uint32Array;
  private readonly regionBytes: number;
  private readonly pages: number;
  private readonly variants = new Map<string, Fused | null>();
  /** Set bits per segment of the last `run`'s result. */
  readonly counts: Uint32Array;

  constructor(
    private readonly program: KernelOp[],
    private readonly operands: number,
    readonly batchWords: number,
  ) {
    if (batchWords % 16 !== 0) throw new RangeError('batchWords must be a multiple of 16');
    this.regionBytes = batchWords * 4;
    this.pages = Math.ceil(((operands + 1) * this.regionBytes) / 65536);
    this.memory = new wasm.Memory({ initial: this.pages });
    this.words = new Uint32Array(this.memory.buffer);
    this.counts = new Uint32Array(batchWords / 16);
  }

  /** Operand `k`'s region (fill it before `run`). */
  region(k: number): Uint32Array {
    return this.words.subarray(k * this.batchWords, (k + 1) * this.batchWords);
  }

  /**
   * Evaluates the program over the first `words` words of each region; `present[k]` false means operand k is all
   * clear in this batch (its region is not read). Returns the result region, or null when it is empty by
   * construction; `counts[j]` then holds the set bits of words [j × segmentWords, (j + 1) × segmentWords).
   * The result region is overwritten by the next run.
   */
  run(present: boolean[], words: number, segmentWords = words): Uint32Array | null {
    if (segmentWords % 16 !== 0 || words % segmentWords !== 0) throw new RangeError('segments must be multiples of 16 words that divide the run');
    const fn = this.variant(present);
    if (!fn) return null;
    const segBytes = segmentWords * 4;
    for (let j = 0, at = 0; at < words * 4; j++, at += segBytes) this.counts[j] = fn(at, at + segBytes);
    return this.region(this.operands);
  }

  /** The fused function for one pattern of present operands (absent ones fold away), compiled on first use. */
  private variant(present: boolean[]): Fused | null {
    const key = present.map((p) => (p ? '1' : '0')).join('');
    if (this.variants.has(key)) return this.variants.get(key)!;
    const stack: (FusedOp[] | null)[] = [];
    for (const step of this.program) {
      if (step.op === 'load') {
        stack.push(present[step.index] ? [{ op: 'load', index: step.index }] : null);
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
      const id = `${JSON.stringify(ops)}|${this.operands}|${this.regionBytes}|${this.pages}`;
      let mod = modules.get(id);
      if (!mod) {
        mod = new wasm.Module(fusedKernelModule(ops, this.operands, this.regionBytes, this.pages));
        if (modules.size >= 256) modules.clear();
        modules.set(id, mod);
      }
      fn = (new wasm.Instance(mod, { env: { memory: this.memory } }).exports as { run: Fused }).run;
    }
    this.variants.set(key, fn);
    return fn;
  }
}
