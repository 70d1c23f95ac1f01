/**
 * A destination keeps its own metadata (block map and snapshot table) at the top of the volume, away from the
 * blocks its source allocates next, so incremental receives do not have to move it out of the way first.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { walkTree } from '../../../core/fs/walk.js';
import { planStream, writeStream } from '../../../core/stream/send.js';
import { StreamReader } from '../../../core/stream/reader.js';
import { receiveStream, type ReceiveReport } from '../../../core/stream/receive.js';
import { expectSameTree, pattern, readTree } from '../../helpers/model.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-placement-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function transfer(src: Volume, dst: Volume, expr: string): Promise<ReceiveReport> {
  const plan = await planStream(src, expr);
  const reader = new StreamReader(writeStream(src, plan));
  await reader.open();
  return receiveStream(dst, reader);
}

/** VBNs of the blocks of the destination's own metadata trees. */
async function metadataBlocks(v: Volume): Promise<number[]> {
  const out: number[] = [];
  for (const [tree, name] of [
    [v.blockMap!.tree, 'block map'],
    [v.snapshots.tree, 'snapshot table'],
  ] as const) {
    await walkTree(tree.inode, v.ctx, name, (p) => out.push(p.vbn));
  }
  return out;
}

function highestUsed(v: Volume): number {
  const map = v.blockMap!;
  for (let b = map.blockCount - 1; b >= 0; b--) if (map.active.has(b) || map.summary.has(b)) return b;
  return -1;
}

describe('metadata placement on a destination', () => {
  it('puts the block map and snapshot table at the top, so incrementals land without moving them', async () => {
    const src = await Volume.create(join(dir, 'src.img'), { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
    const dst = await Volume.create(join(dir, 'dst.img'), { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
    for (let f = 0; f < 4; f++) await src.writeFile(`/f${f}.bin`, pattern(2 ** 20, f));
    await src.createSnapshot('s0');
    await transfer(src, dst, 's0');
    for (let k = 1; k <= 4; k++) {
      // In-place changes: the source's copy-on-write puts the new blocks in the lowest free blocks.
      for (let f = 0; f < 4; f++) await src.writeAt(`/f${f}.bin`, ((k * 37 + f * 11) % 200) * 4096, pattern(3 * 4096, 100 + k));
      await src.createSnapshot(`s${k}`);
      const before = dst.fsinfo.generation;
      const report = await transfer(src, dst, `s${k} - s${k - 1}`);
      // One CP: the commit. A receive whose blocks land on the destination's metadata needs another to move it.
      expect(report.generation).toBe(before + 1);
      const sourceTop = highestUsed(src);
      for (const vbn of await metadataBlocks(dst)) expect(vbn, `metadata block after s${k}`).toBeGreaterThan(sourceTop);
      expectSameTree(await readTree(dst), await readTree(src), `after s${k}`);
    }
    expect((await dst.fsck()).issues).toEqual([]);
    await src.close();
    await dst.close();
  });

  it('allocates from the top down when asked, and reports a full volume the same way', async () => {
    const v = await Volume.create(join(dir, 'v.img'), { sizeBytes: 8 * 2 ** 20, cpIntervalMs: 0 });
    v.blockMap!.placement = 'top';
    await v.writeFile('/a.bin', pattern(64 * 4096, 1));
    await v.consistencyPoint();
    const data: number[] = [];
    const internal = v as unknown as { ns: { resolve(p: string): Promise<{ inode: Parameters<typeof walkTree>[0] }> } };
    await walkTree((await internal.ns.resolve('/a.bin')).inode, v.ctx, '/a.bin', (p, level) => {
      if (level === 0) data.push(p.vbn);
    });
    expect(data).toHaveLength(64);
    // Every data block sits in the top quarter of the volume (the bottom holds the format's own blocks).
    for (const vbn of data) expect(vbn).toBeGreaterThan((v.fsinfo.blockCount * 3) / 4);
    await expect(v.writeFile('/big.bin', pattern(16 * 2 ** 20, 2))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect((await v.fsck()).issues).toEqual([]);
    await v.close();
  });
});
