/** SparsePlane's set operations against a plain set of VBNs, on random sets (fast-check). */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SparsePlane } from '../../../core/planes/sparse-plane.js';

const vbns = fc.array(fc.oneof(fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 32_700, max: 32_840 })), { maxLength: 400 });

function planeOf(xs: number[]): SparsePlane {
  const p = new SparsePlane();
  for (const x of xs) p.set(x);
  return p;
}

/** Runs of consecutive VBNs, cut where a run crosses a 32,768-block chunk edge (as runCount counts them). */
function runsOf(xs: number[]): number {
  const sorted = [...new Set(xs)].sort((a, b) => a - b);
  return sorted.filter((x, i) => i === 0 || sorted[i - 1] !== x - 1 || x % 32_768 === 0).length;
}

describe('SparsePlane', () => {
  it('counts runs of set bits as a sorted list does', () => {
    fc.assert(
      fc.property(vbns, (xs) => {
        expect(planeOf(xs).runCount()).toBe(runsOf(xs));
      }),
    );
    expect(planeOf([31, 32, 33, 63, 64, 100]).runCount()).toBe(3);
  });

  it('addAll sets exactly the union and keeps the other plane unchanged', () => {
    fc.assert(
      fc.property(vbns, vbns, (xs, ys) => {
        const a = planeOf(xs);
        const b = planeOf(ys);
        a.addAll(b);
        const union = new Set([...xs, ...ys]);
        expect(a.count).toBe(union.size);
        for (const x of union) expect(a.has(x)).toBe(true);
        expect(b.count).toBe(new Set(ys).size);
        // Chunks are copied, not shared: changing the union leaves b alone.
        for (const y of ys) a.set(y + 1);
        expect(b.count).toBe(new Set(ys).size);
      }),
    );
  });
});
