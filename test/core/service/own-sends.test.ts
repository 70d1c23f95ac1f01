/**
 * A snapshot that a send of this same process reads is not deleted under it. A send from a read-only view lists its
 * snapshots in `<image>.sending.json` for writers elsewhere; a writer of the same process skipped its own process's
 * entries, so in one engine (the console's: a backup or replication job beside a delete from another view) the
 * delete went through under the send (which would then read freed blocks, refused as stale once reused).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SnapplaneService } from '../../../core/service/index.js';
import { setLockHolderName } from '../../../core/fs/lock.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { treeOf, writeAndSnapshot } from '../../helpers/replication.js';
import { expectSameTree } from '../../helpers/model.js';

const dir = useTempDir('own-sends');

describe('a send of this process', () => {
  it('keeps its snapshot from a delete by a writer of the same process until it ends; then the delete goes', async () => {
    // As the console names itself (ConsoleHost): its locks and its sends' records say so.
    setLockHolderName('the snapplane console');
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir(), 'state.json') });
    try {
      const src = join(dir(), 'src.img');
      await s.createVolume(src, 64 << 20);
      await s.closeAll();
      await writeAndSnapshot(src, '/big.bin', 12 << 20, 11, 'mon');
      await s.masterMark(src, 'mon', true);
      await s.closeAll();
      const expected = await treeOf(src, 'mon');
      // Read-only (no writer is open here): ~3 s at 4 MiB/s.
      const run = s.replicate(src, join(dir(), 'copy.img'), { limit: 4 << 20 });
      run.catch(() => undefined); // awaited below; a failure meanwhile must not end the run as unhandled
      for (const t0 = Date.now(); !existsSync(`${src}.sending.json`); await new Promise((r) => setTimeout(r, 20))) {
        if (Date.now() - t0 > 10_000) throw new Error('no send recorded');
      }
      await s.masterMark(src, 'mon', false);
      await expect(s.snapDelete(src, 'mon')).rejects.toMatchObject({ code: 'HELD', message: expect.stringMatching(/^snapshot 'mon' is being sent by this process \(the snapplane console\) \(since \S+Z\); delete it after that transfer ends, or stop it first$/) as unknown as string });
      const r = await run;
      expect(r.to).toBe('mon');
      expectSameTree(await treeOf(join(dir(), 'copy.img')), expected, 'the copy');
      expect(existsSync(`${src}.sending.json`)).toBe(false);
      await s.snapDelete(src, 'mon');
      expect((await s.snapList({ volume: src })).map((x) => x.name)).toEqual([]);
    } finally {
      await s.closeAll();
    }
  }, 60_000);
});
