/**
 * Image evaluation: `a + b - c` over 2^28 blocks (three dense bit planes of 32 MiB, in memory as the engine keeps
 * its active, mark-on-allocate and shadow planes) by the engine's evaluator, result plane and count included ÷
 * copying the same three planes with Buffer.copy. Also measured: the same with the planes in ordinary memory
 * (copied into the kernel a batch at a time, as stored snapshot planes are after their read) and a plain
 * JavaScript loop.
 */
import { randomFillSync } from 'node:crypto';
import { BitPlane, chunkCount } from '../core/planes/bit-plane.js';
import { type KernelOp } from '../core/planes/plane-kernel.js';
import { evaluatePlanes } from '../core/image/evaluate.js';
import { median, time, type Result } from './lib/measure.js';
import { arenaUsage } from '../core/planes/plane-arena.js';

export async function image(quick: boolean): Promise<Result[]> {
  const blocks = 2 ** 28;
  const words = blocks / 32;
  const planes = [0, 1, 2].map(() => {
    const p = new BitPlane(blocks);
    if (!p.resident) throw new Error('the plane arena has no room for the benchmark planes');
    randomFillSync(p.words);
    for (let c = 0; c < p.chunks; c++) p.recount(c, false);
    return p;
  });
  const plain = planes.map((p) => p.words.slice());
  const copies = [0, 1, 2].map(() => new Uint32Array(words).fill(1));
  const out = new Uint32Array(words).fill(1);
  const program: KernelOp[] = [{ op: 'load', index: 0 }, { op: 'load', index: 1 }, { op: 'union' }, { op: 'load', index: 2 }, { op: 'difference' }];
  const chunks = chunkCount(blocks);
  const rounds = quick ? 5 : 11;
  let count = 0;
  let copiedCount = 0;
  const kernel: number[] = [];
  const copied: number[] = [];
  const copy: number[] = [];
  const js: number[] = [];
  const none = async (): Promise<null> => null;
  const all = (): boolean => true;
  for (let r = 0; r < rounds; r++) {
    kernel.push(
      await time(async () => {
        const image = await evaluatePlanes(program, planes, chunks, none, all);
        count = image.blocks;
        image.plane.release(); // as `image eval` does: only the size is reported
      }),
    );
    copy.push(await time(() => plain.forEach((p, k) => copies[k].set(p))));
    copied.push(
      await time(async () => {
        const image = await evaluatePlanes(program, ['stored', 'stored', 'stored'], chunks, async (k, c) => plain[k].subarray(c * 1024, (c + 1) * 1024), all);
        copiedCount = image.blocks;
        image.plane.release();
      }),
    );
    js.push(
      await time(() => {
        const [a, b, c] = plain;
        for (let i = 0; i < words; i++) out[i] = (a[i] | b[i]) & ~c[i];
      }),
    );
  }
  // Check the evaluator's answers against the loop's on the last round.
  let ref = 0;
  for (let i = 0; i < words; i++) {
    let w = (plain[0][i] | plain[1][i]) & ~plain[2][i];
    while (w) {
      w &= w - 1;
      ref++;
    }
  }
  if (ref !== count || ref !== copiedCount) throw new Error(`the evaluator counted ${count} and ${copiedCount} blocks, the reference ${ref}`);
  const k = median(kernel);
  const c = median(copy);
  return [
    {
      name: 'evaluate a + b - c over 2^28 blocks (dense planes)',
      figure: `${k.toFixed(1)} ms vs Buffer.copy of 3 planes ${c.toFixed(1)} ms`,
      ratio: k / c,
      target: 1,
      detail: `engine evaluator (evaluatePlanes): WebAssembly SIMD kernel compiled for the expression reads the planes in place in the plane arena, writes the result plane's chunks into arena slabs and counts them (${count} blocks); planes in ordinary memory, copied in 16 chunks at a time: ${median(copied).toFixed(1)} ms (${(median(copied) / c).toFixed(2)}×); a plain JS loop without counting: ${median(js).toFixed(1)} ms (${(median(js) / c).toFixed(2)}×); median of ${rounds}; plane arena ${(arenaUsage().size / 2 ** 20).toFixed(0)} MiB at the end`,
    },
  ];
}
