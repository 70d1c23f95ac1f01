/**
 * A destination whose host file system cannot hold what comes: a full copy that cannot fit is refused before a
 * block is written; one that runs out half-way keeps what landed, says to make room, and resumes once there is.
 * On a small tmpfs mounted for the test (root only: skipped where mounting is not allowed), here and behind a
 * `snapplane serve` whose root is on it.
 */
import { execFileSync } from 'node:child_process';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SnapplaneService } from '../../../core/service/index.js';
import { makeKey, snapshots, startServer, treeDigest, treeOf, writeAndSnapshot } from '../../helpers/replication.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { canMountTmpfs, mountTmpfs, unmountTmpfs } from '../../helpers/tmpfs.js';

const temp = useTempDir('host-space');
const MiB = 2 ** 20;

afterAll(() => unmountTmpfs());

describe.skipIf(!canMountTmpfs())('a destination host file system that is too small', () => {
  it('refuses a full copy up front; an incremental that runs out keeps what landed and resumes once there is room', async () => {
    const small = mountTmpfs(join(temp(), 'small'), 48);
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(temp(), 'state.json') });
    const key = await makeKey(temp());
    // The endpoint makes a resume point every 1 MiB (not every 10 s), so a short transfer has some to keep.
    const server = await startServer(small, key, 0, { ...process.env, SNAPPLANE_RESUME_POINT_MS: '0' });
    try {
      const src = join(temp(), 'src.img');
      await s.createVolume(src, 128 * MiB);
      await s.closeAll();
      await writeAndSnapshot(src, '/one.bin', 20 * MiB, 1, 'm1');
      await s.masterMark(src, 'm1', true);
      const dest = `127.0.0.1:${server.port}/r`;
      expect(await s.replicate(src, dest, { keyFile: key })).toMatchObject({ kind: 'full', to: 'm1' });
      await s.closeAll();

      // Leave 8 MiB: a full copy (20 MiB), here or there, cannot fit, and is refused before anything is made.
      const used = Number(execFileSync('df', ['--output=used', '-B1', small]).toString().split('\n')[1]);
      await writeFile(join(small, 'filler'), Buffer.alloc(48 * MiB - used - 8 * MiB, 1));
      const before = await readdir(small);
      const upFront = /the full stream of .* needs at least .* more on the host file system holding .*small, which has .* free; nothing was written/;
      await expect(s.replicate(src, join(small, 'local.img'))).rejects.toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(upFront) });
      await expect(s.replicate(src, `127.0.0.1:${server.port}/r2`, { keyFile: key })).rejects.toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(upFront) });
      expect(await readdir(small)).toEqual(before);

      // An incremental of 15 MiB: the image holds 20 MiB already, so it may fit and starts; it runs out half-way.
      await writeAndSnapshot(src, '/two.bin', 15 * MiB, 2, 'm2');
      await s.masterMark(src, 'm2', true);
      await s.closeAll();
      await expect(s.replicate(src, dest, { keyFile: key })).rejects.toMatchObject({
        code: 'ENOSPC',
        message: expect.stringMatching(/host file system holding it is full .*blocks that landed are kept \(they hold host space\): make room on the host, then the next replication .* resumes from them/),
      });
      await s.closeAll();
      // The destination is still exactly m1.
      const r = join(small, 'r');
      expect((await snapshots(r)).map((x) => x.name)).toEqual(['m1']);
      expect(treeDigest(await treeOf(r))).toBe(treeDigest(await treeOf(src, 'm1')));

      await rm(join(small, 'filler'));
      const again = await s.replicate(src, dest, { keyFile: key });
      expect(again).toMatchObject({ kind: 'incremental', from: 'm1', to: 'm2' });
      expect(again.resumedFromVbn).toBeGreaterThan(0);
      expect(treeDigest(await treeOf(r))).toBe(treeDigest(await treeOf(src, 'm2')));
      expect((await s.fsck(r)).clean).toBe(true);
      await s.closeAll();
    } finally {
      await server.kill();
    }
  });
});
