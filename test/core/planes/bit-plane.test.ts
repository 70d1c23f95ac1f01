/** BitPlane.setMany (runs set a word at a time) against setting the same VBNs one by one. */
import { describe, expect, it } from 'vitest';
import { BITS_PER_CHUNK, BitPlane } from '../../../core/planes/bit-plane.js';
import { seeded } from '../../helpers/replication.js';

describe('BitPlane.setMany', () => {
  it('sets the same bits, counts and dirty chunks as set() for runs, single VBNs, repeats and bits already set', () => {
    const rnd = seeded(7);
    const size = 3 * BITS_PER_CHUNK + 1000;
    for (let round = 0; round < 20; round++) {
      const vbns: number[] = [];
      while (vbns.length < 5000) {
        const start = Math.floor(rnd() * size);
        // Runs of 1 to 300 (across word and chunk edges), sometimes a VBN again.
        const len = Math.min(size - start, 1 + Math.floor(rnd() * (rnd() < 0.5 ? 3 : 300)));
        for (let k = 0; k < len; k++) vbns.push(start + k);
        if (rnd() < 0.1) vbns.push(start);
      }
      const a = new BitPlane(size);
      const b = new BitPlane(size);
      // Some bits set before.
      for (let k = 0; k < 200; k++) {
        const v = Math.floor(rnd() * size);
        a.set(v);
        b.set(v);
      }
      a.dirtyChunks.clear();
      b.dirtyChunks.clear();
      const arr = Uint32Array.from(vbns);
      a.setMany(arr, arr.length - 3);
      for (const v of vbns.slice(0, -3)) b.set(v);
      expect(Buffer.from(a.words.buffer, a.words.byteOffset, a.words.byteLength).equals(Buffer.from(b.words.buffer, b.words.byteOffset, b.words.byteLength))).toBe(true);
      expect(a.count).toBe(b.count);
      expect([...a.chunkPopulation]).toEqual([...b.chunkPopulation]);
      expect([...a.dirtyChunks].sort()).toEqual([...b.dirtyChunks].sort());
    }
  });
});
