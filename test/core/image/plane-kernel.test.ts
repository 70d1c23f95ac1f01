/**
 * The compiled plane kernel against a word-by-word JavaScript reference: random expression programs over random
 * operand words, read in place from the plane arena or copied in from ordinary memory, with random operands
 * absent (all clear), checked word for word and bit count per segment.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PlaneKernel, type KernelOp } from '../../../core/planes/plane-kernel.js';
import { allocate, arenaWords } from '../../../core/planes/plane-arena.js';

type Tree = { k: number } | { op: 'union' | 'difference' | 'intersection'; l: Tree; r: Tree };

const OPERANDS = 4;
const treeArb: fc.Arbitrary<Tree> = fc.letrec<{ t: Tree }>((tie) => ({
  t: fc.oneof(
    { depthSize: 'small' },
    fc.integer({ min: 0, max: OPERANDS - 1 }).map((k): Tree => ({ k })),
    fc.record({ op: fc.constantFrom('union' as const, 'difference' as const, 'intersection' as const), l: tie('t'), r: tie('t') }),
  ),
})).t;

function compile(t: Tree, out: KernelOp[]): void {
  if ('k' in t) out.push({ op: 'load', index: t.k });
  else {
    compile(t.l, out);
    compile(t.r, out);
    out.push({ op: t.op });
  }
}

function reference(t: Tree, w: number[]): number {
  if ('k' in t) return w[t.k];
  const l = reference(t.l, w);
  const r = reference(t.r, w);
  return (t.op === 'union' ? l | r : t.op === 'difference' ? l & ~r : l & r) >>> 0;
}

const bits = (x: number): number => {
  let n = 0;
  for (; x; x &= x - 1) n++;
  return n;
};

/** `words` placed in the plane arena (as a bit plane's words are), or left in ordinary memory. */
function place(words: Uint32Array, inArena: boolean, keep: object[]): Uint32Array {
  if (!inArena) return words;
  const at = allocate(words.length * 4);
  expect(at).toBeGreaterThanOrEqual(0);
  const w = arenaWords(at, words.length);
  w.set(words);
  keep.push(w);
  return w;
}

describe('fused plane kernel', () => {
  it('equals the reference word for word, with per-segment counts, for any program, placement and absent operands', () => {
    const SEGMENTS = 4;
    const SEGMENT = 32;
    fc.assert(
      fc.property(
        treeArb,
        fc.array(fc.boolean(), { minLength: OPERANDS, maxLength: OPERANDS }),
        fc.array(fc.boolean(), { minLength: OPERANDS + 1, maxLength: OPERANDS + 1 }),
        fc.array(fc.uint32Array({ minLength: SEGMENTS * SEGMENT, maxLength: SEGMENTS * SEGMENT }), { minLength: OPERANDS, maxLength: OPERANDS }),
        fc.integer({ min: 1, max: SEGMENTS }),
        (tree, present, inArena, data, segments) => {
          const program: KernelOp[] = [];
          compile(tree, program);
          const kernel = new PlaneKernel(program, OPERANDS, SEGMENTS * SEGMENT);
          const keep: object[] = [];
          // Absent operands' scratch regions hold garbage: the kernel must not read them.
          for (let k = 0; k < OPERANDS; k++) kernel.region(k).fill(0x5a5a5a5a);
          for (let k = 0; k < OPERANDS; k++) kernel.bind(k, present[k] ? place(data[k], inArena[k], keep) : null);
          // The result goes to an arena span of its own, or to the kernel's result region.
          const out = inArena[OPERANDS] ? allocate(SEGMENTS * SEGMENT * 4) : kernel.resultRegion;
          const words = segments * SEGMENT;
          const total = kernel.run(segments, SEGMENT, out);
          const counts = [...kernel.counts.subarray(0, segments)];
          const expected = Array.from({ length: words }, (_, i) => reference(tree, data.map((d, k) => (present[k] ? d[i] : 0))));
          for (let j = 0; j < segments; j++) expect(counts[j]).toBe(expected.slice(j * SEGMENT, (j + 1) * SEGMENT).reduce((s, x) => s + bits(x), 0));
          expect(total).toBe(counts.reduce((s, x) => s + x, 0));
          if (expected.some((x) => x !== 0)) expect([...kernel.view(out, words)]).toEqual(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuses segments that are not a multiple of 16 words', () => {
    const kernel = new PlaneKernel([{ op: 'load', index: 0 }], 1, 64);
    kernel.bind(0, new Uint32Array(64));
    expect(() => kernel.run(1, 24, kernel.resultRegion)).toThrow(RangeError);
    expect(() => kernel.run(5, 16, kernel.resultRegion)).toThrow(RangeError);
  });
});
