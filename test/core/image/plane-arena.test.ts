/**
 * The plane arena: spans are handed out zeroed, reused and coalesced; growing keeps earlier views valid; an owner
 * lives as long as any view it handed out; a plane gives its memory back early only when no view of it escaped;
 * and when the arena is full, planes and the kernel fall back to ordinary memory with the same answers.
 */
import { describe, expect, it } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ARENA_UNIT, allocate, arenaOffset, arenaUsage, arenaWords, keepAlive, release, releaseWith } from '../../../core/planes/plane-arena.js';
import { BitPlane, chunkCount } from '../../../core/planes/bit-plane.js';
import { SparsePlane } from '../../../core/planes/sparse-plane.js';
import { evaluatePlanes } from '../../../core/image/evaluate.js';
import type { KernelOp } from '../../../core/planes/plane-kernel.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const turn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

describe('plane arena', () => {
  it('hands out zeroed spans, reuses and coalesces what is given back', () => {
    const a = allocate(3 * ARENA_UNIT);
    const b = allocate(ARENA_UNIT);
    expect(a).toBeGreaterThanOrEqual(0);
    expect(b).toBeGreaterThanOrEqual(a + 3 * ARENA_UNIT);
    arenaWords(a, 3 * 1024).fill(0xdeadbeef);
    release(a, 3 * ARENA_UNIT);
    // First fit: a smaller request lands in the freed span, zeroed.
    const c = allocate(2 * ARENA_UNIT);
    expect(c).toBe(a);
    expect(arenaWords(c, 2 * 1024).every((w) => w === 0)).toBe(true);
    // Unzeroed on request: the earlier owner's words are still there.
    const d = allocate(100, false);
    expect(d).toBe(a + 2 * ARENA_UNIT);
    expect(arenaWords(d, 1024)[0]).toBe(0xdeadbeef);
    const spans = arenaUsage().spans;
    release(c, 2 * ARENA_UNIT);
    release(d, 100);
    // The three units are one span again (b still separates it from the free tail).
    expect(arenaUsage().spans).toBe(spans + 1);
    expect(allocate(3 * ARENA_UNIT)).toBe(a);
    release(a, 3 * ARENA_UNIT);
    release(b, ARENA_UNIT);
  });

  it('keeps earlier views valid when it grows', () => {
    const a = allocate(ARENA_UNIT);
    const view = arenaWords(a, 1024);
    view[7] = 42;
    const before = arenaUsage().size;
    const big = allocate(before + 64 * ARENA_UNIT);
    expect(big).toBeGreaterThanOrEqual(0);
    expect(arenaUsage().size).toBeGreaterThan(before);
    expect(view[7]).toBe(42);
    expect(arenaOffset(view)).toBe(a);
    expect(arenaOffset(new Uint32Array(4))).toBe(-1);
    release(big, before + 64 * ARENA_UNIT);
    release(a, ARENA_UNIT);
  });

  it('frees an owner’s span only after its last view is gone', async () => {
    const free0 = arenaUsage().free;
    let view: Uint32Array | null = (() => {
      const owner = {};
      const at = allocate(16 * ARENA_UNIT);
      releaseWith(owner, at, 16 * ARENA_UNIT);
      return keepAlive(arenaWords(at, 16 * 1024), owner);
    })();
    view[0] = 1;
    gc();
    await turn();
    gc();
    await turn();
    // The owner is unreachable except through the view: the span is still taken.
    expect(arenaUsage().free).toBe(free0 - 16 * ARENA_UNIT);
    view = null;
    for (let i = 0; i < 5 && arenaUsage().free !== free0; i++) {
      gc();
      await turn();
    }
    expect(arenaUsage().free).toBe(free0);
  });

  it('lets the collector see arena memory: dropped planes do not pile up', async () => {
    // 48 planes of 32 MiB, each written whole and dropped: 1.5 GiB if none were collected in time.
    for (let i = 0; i < 48; i++) {
      const p = new BitPlane(2 ** 28);
      p.words.fill(i + 1);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(arenaUsage().size).toBeLessThan(768 * 2 ** 20);
  });

  it('gives a result plane’s memory back early only when no chunk view escaped', async () => {
    const blocks = 32768 * 40;
    const a = new BitPlane(blocks);
    for (let v = 0; v < blocks; v += 7) a.set(v);
    const program: KernelOp[] = [{ op: 'load', index: 0 }];
    const run = (): Promise<{ plane: SparsePlane; blocks: number }> => evaluatePlanes(program, [a], chunkCount(blocks), async () => null, () => true);
    const free0 = arenaUsage().free;
    const quiet = await run();
    expect(quiet.blocks).toBe(a.count);
    expect(arenaUsage().free).toBeLessThan(free0);
    expect(quiet.plane.release()).toBe(true);
    expect(arenaUsage().free).toBe(free0);
    expect(quiet.plane.count).toBe(0);

    const looked = await run();
    const w = looked.plane.chunk(3)!;
    expect(looked.plane.release()).toBe(false);
    expect(w[0]).toBe(a.chunkWords(3)[0]);
    expect(looked.plane.count).toBe(a.count);
  });

  it('falls back to ordinary memory when full, with the same answers', async () => {
    const blocks = 32768 * 24;
    const planes = [0, 1, 2].map((k) => {
      const p = new BitPlane(blocks);
      for (let v = k; v < blocks; v += 3 + k) p.set(v);
      return p;
    });
    expect(planes.every((p) => p.resident)).toBe(true);
    // Planes made after earlier growth are still recognised as arena memory (the kernel then reads them in place).
    expect(planes.every((p) => arenaOffset(p.words) >= 0)).toBe(true);
    const program: KernelOp[] = [{ op: 'load', index: 0 }, { op: 'load', index: 1 }, { op: 'union' }, { op: 'load', index: 2 }, { op: 'difference' }];
    const evaluate = (ps: BitPlane[]): Promise<{ plane: SparsePlane; blocks: number }> => evaluatePlanes(program, ps, chunkCount(blocks), async () => null, () => true);
    const inArena = await evaluate(planes);
    // Take every byte the arena can still give (untouched memory, so this costs no RAM).
    const taken: [number, number][] = [];
    for (let bytes = 2 ** 31; bytes >= ARENA_UNIT; bytes /= 2) {
      for (let at = allocate(bytes, false); at >= 0; at = allocate(bytes, false)) taken.push([at, bytes]);
    }
    try {
      const outside = planes.map((p) => {
        const q = new BitPlane(blocks);
        q.words.set(p.words);
        for (let c = 0; c < q.chunks; c++) q.recount(c, false);
        return q;
      });
      expect(outside.some((p) => p.resident)).toBe(false);
      const fallback = await evaluate(outside);
      expect(fallback.blocks).toBe(inArena.blocks);
      for (const c of inArena.plane.chunkIndexes()) expect([...fallback.plane.chunk(c)!]).toEqual([...inArena.plane.chunk(c)!]);
      // Resident operands read by a kernel outside the arena are copied in: same answer again.
      expect((await evaluate(planes)).blocks).toBe(inArena.blocks);
    } finally {
      for (const [at, bytes] of taken) release(at, bytes);
    }
  });
});
