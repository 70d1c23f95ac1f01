/**
 * Plane algebra in WebAssembly SIMD (core/common/simd-kernel.wat). A batch of operand words is copied into the module's
 * memory (small enough to stay in cache), combined there 16 bytes per instruction, counted, and copied out:
 * memory traffic is one read of each operand and one write of the result, about what a copy costs.
 */
import { simdKernel, type SimdKernel } from '../common/simd.js';

/** One step of a compiled expression: push operand `index`, or combine the top two entries. */
export type KernelOp = { op: 'load'; index: number } | { op: 'union' | 'difference' | 'intersection' };

/** Runs one compiled expression over batches of words; each operand has a region of `batchWords` words. */
export class PlaneKernel {
  private readonly exports: SimdKernel;
  private words: Uint32Array;
  private readonly regionBytes: number;
  private readonly temps: number;

  constructor(
    private readonly program: KernelOp[],
    private readonly operands: number,
    readonly batchWords: number,
  ) {
    if (batchWords % 16 !== 0) throw new RangeError('batchWords must be a multiple of 16');
    this.regionBytes = batchWords * 4;
    // Operand regions, then one temporary region per load at most (intermediate results).
    this.temps = program.filter((p) => p.op === 'load').length;
    this.exports = simdKernel((operands + this.temps) * this.regionBytes);
    this.words = new Uint32Array(this.exports.memory.buffer);
  }

  /** Operand `k`'s region (fill it before `run`). */
  region(k: number): Uint32Array {
    return this.words.subarray(k * this.batchWords, (k + 1) * this.batchWords);
  }

  /**
   * Evaluates the program over the first `words` words of each region; `present[k]` false means operand k is all
   * clear in this batch (its region is not read). Returns the region holding the result, or null when it is empty
   * by construction. The result region is overwritten by the next run.
   */
  run(present: boolean[], words: number): Uint32Array | null {
    const stack: (number | null)[] = [];
    const bytes = Math.ceil(words / 16) * 64;
    const at = (k: number): number => k * this.regionBytes;
    const free: number[] = Array.from({ length: this.temps }, (_, i) => this.operands + i);
    const isTemp = (x: number | null): x is number => x !== null && x >= this.operands;
    // Element-wise ops may write over either input, so a result reuses an input's temporary when it has one.
    const combine = (fn: 'or' | 'andnot' | 'and', a: number, b: number): number => {
      let d: number;
      if (isTemp(a)) {
        d = a;
        if (isTemp(b)) free.push(b);
      } else if (isTemp(b)) d = b;
      else d = free.pop()!;
      this.exports[fn](at(d), at(a), at(b), bytes);
      return d;
    };
    const drop = (x: number | null): void => {
      if (isTemp(x)) free.push(x);
    };
    for (const step of this.program) {
      if (step.op === 'load') {
        stack.push(present[step.index] ? step.index : null);
        continue;
      }
      const b = stack.pop()!;
      const a = stack.pop()!;
      if (step.op === 'union') {
        if (a === null || b === null) stack.push(a ?? b);
        else stack.push(combine('or', a, b));
      } else if (step.op === 'difference') {
        if (a === null) {
          drop(b);
          stack.push(null);
        } else if (b === null) stack.push(a);
        else stack.push(combine('andnot', a, b));
      } else if (a === null || b === null) {
        drop(a);
        drop(b);
        stack.push(null);
      } else stack.push(combine('and', a, b));
    }
    const r = stack.pop()!;
    return r === null ? null : this.region(r);
  }

  /** Set bits in `words` words of a region returned by `run`, starting at word `from` (multiples of 16). */
  popcount(result: Uint32Array, from: number, words: number): number {
    return this.exports.popcount(result.byteOffset + from * 4, words * 4);
  }
}

