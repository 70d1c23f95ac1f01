/**
 * Sends to remote destinations reuse their read ring and wire frames from one send to the next (fresh memory costs
 * a page fault per 4 KiB). Lent buffers must never be shared by two sends at once: two replications from one service
 * run concurrently to one endpoint, then again incrementally, and every destination equals its source's snapshot
 * (a buffer in two streams would change bytes under a record's checksum or land in the wrong destination).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SnapplaneService } from '../../../core/service/index.js';
import { spareBuffers } from '../../../core/common/spare-buffers.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { makeKey, newMaster, seeded, startServer, treeOf, writeAndSnapshot } from '../../helpers/replication.js';
import { expectSameTree } from '../../helpers/model.js';

const dir = useTempDir('spare-buffers');

describe('spare buffers', () => {
  it('hands back what was given, keeps at most its limit, and makes fresh memory only when none is kept', () => {
    const spares = spareBuffers(4096, 2);
    const a = spares.take();
    const b = spares.take();
    const c = spares.take();
    expect(spares.made).toBe(3);
    spares.give(a);
    spares.give(b);
    spares.give(c); // beyond the limit: dropped
    const again = [spares.take(), spares.take()];
    expect(again).toContain(a);
    expect(again).toContain(b);
    expect(spares.made).toBe(3);
    expect(spares.take()).not.toBe(c);
    expect(spares.made).toBe(4);
  });

  it('two concurrent replications to one endpoint, then incremental ones: each destination equals its source', async () => {
    const key = await makeKey(dir());
    const root = join(dir(), 'remote');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(root);
    const server = await startServer(root, key);
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir(), 'state.json') });
    try {
      const sources = [join(dir(), 'a.img'), join(dir(), 'b.img')];
      for (const [k, src] of sources.entries()) {
        await s.createVolume(src, 96 << 20);
        await s.closeAll();
        // More than a read ring's 14 MiB each, so each send goes round its ring.
        await writeAndSnapshot(src, '/big.bin', 24 << 20, 100 + k, 'm0');
        await s.masterMark(src, 'm0', true);
      }
      await s.closeAll();
      const dest = (k: number): string => `127.0.0.1:${server.port}/d${k}`;
      const rnd = seeded(7);
      for (let round = 0; round < 3; round++) {
        if (round > 0) for (const src of sources) await newMaster(src, `m${round}`, rnd, 40);
        const results = await Promise.all(sources.map((src, k) => s.replicate(src, dest(k), { keyFile: key })));
        await s.closeAll();
        for (const [k, src] of sources.entries()) {
          expect(results[k].to).toBe(`m${round}`);
          expectSameTree(await treeOf(join(root, `d${k}`), `m${round}`), await treeOf(src, `m${round}`), `d${k} after round ${round}`);
        }
      }
    } finally {
      await s.closeAll();
      await server.kill();
    }
  }, 120_000);
});
