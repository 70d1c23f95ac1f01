/**
 * The compiled plane kernel against a word-by-word JavaScript reference: random expression programs over random
 * operand words, with random operands marked absent (all clear), checked word for word and bit count per segment.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PlaneKernel, type KernelOp } from '../../../core/planes/plane-kernel.js';

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

describe('fused plane kernel', () => {
  it('equals the reference word for word, with per-segment counts, for any program and absent operands', () => {
    const SEGMENTS = 4;
    const SEGMENT = 32;
    fc.assert(
      fc.property(
        treeArb,
        fc.array(fc.boolean(), { minLength: OPERANDS, maxLength: OPERANDS }),
        fc.array(fc.uint32Array({ minLength: SEGMENTS * SEGMENT, maxLength: SEGMENTS * SEGMENT }), { minLength: OPERANDS, maxLength: OPERANDS }),
        fc.integer({ min: 1, max: SEGMENTS }),
        (tree, present, data, segments) => {
          const program: KernelOp[] = [];
          compile(tree, program);
          const kernel = new PlaneKernel(program, OPERANDS, SEGMENTS * SEGMENT);
          // Absent operands keep garbage in their regions: the kernel must not read them.
          for (let k = 0; k < OPERANDS; k++) kernel.region(k).set(present[k] ? data[k] : data[k].map((x) => x ^ 0x5a5a5a5a));
          const words = segments * SEGMENT;
          const out = kernel.run(present, words, SEGMENT);
          const expected = Array.from({ length: words }, (_, i) => reference(tree, data.map((d, k) => (present[k] ? d[i] : 0))));
          if (out === null) {
            expect(expected.every((x) => x === 0)).toBe(true);
            return;
          }
          expect([...out.subarray(0, words)]).toEqual(expected);
          for (let j = 0; j < segments; j++) expect(kernel.counts[j]).toBe(expected.slice(j * SEGMENT, (j + 1) * SEGMENT).reduce((s, x) => s + bits(x), 0));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuses segments that do not divide the run', () => {
    const kernel = new PlaneKernel([{ op: 'load', index: 0 }], 1, 64);
    expect(() => kernel.run([true], 64, 24)).toThrow(RangeError);
  });
});
