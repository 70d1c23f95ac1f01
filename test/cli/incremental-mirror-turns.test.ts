/**
 * An incremental mirror's update and a reconstruct or verify take turns on its sparse structure. An update writes
 * new blocks over VBNs only older states use, so a reconstruct that began before two updates would have read blocks
 * of a later state into an earlier one (a "successful" reconstruct of a damaged volume). Now the one that comes
 * second is refused with LOCKED naming the other, and changes nothing. The other side here holds the structure's
 * lock through the same code a running reconstruct or update uses, in this test's process.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { json, ok, snapplane } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { treeOf } from '../helpers/replication.js';
import { expectSameTree } from '../helpers/model.js';
import { IncrementalMirror } from '../../core/transfer/incremental-mirror.js';
import type { MirrorInfo } from '../../core/api/index.js';

const dir = useTempDir('inc-turns');

describe('an incremental mirror shared by an update and a reconstruct', () => {
  it('refuses the second one (LOCKED, naming the first), changes nothing, and both work after', async () => {
    process.env.SNAPPLANE_HOME = join(dir(), 'home');
    const src = join(dir(), 'src.img');
    const fast = join(dir(), 'fast');
    await ok('volume', 'create', src, '--size', '32M');
    await writeFile(join(dir(), 'a.bin'), Buffer.alloc(300_000, 1));
    await ok('put', src, join(dir(), 'a.bin'), '/a.bin');
    await ok('mirror', 'create', 'off', src, fast, '--kind', 'incremental', '--slow', `file:${join(dir(), 'base.snap')}`);
    await ok('mirror', 'update', 'off');
    await writeFile(join(dir(), 'b.bin'), Buffer.alloc(200_000, 2));
    await ok('put', src, join(dir(), 'b.bin'), '/b.bin');
    const before = await json<MirrorInfo>('mirror', 'status', 'off');
    const inUse = (what: string): RegExp => new RegExp(`^snapplane: the incremental mirror in '${fast}' is in use by process ${process.pid} \\(${what}\\) on ${hostname()} since \\S+Z; try again when that ends \\(LOCKED\\)\\n$`);

    await IncrementalMirror.exclusive(fast, 'mirror reconstruct', async () => {
      const update = await snapplane('mirror', 'update', 'off');
      expect(update.code).toBe(1);
      expect(update.stderr).toMatch(inUse('mirror reconstruct'));
      const verify = await snapplane('mirror', 'verify', 'off');
      expect(verify.code).toBe(1);
      expect(verify.stderr).toMatch(inUse('mirror reconstruct'));
    });
    expect((await json<MirrorInfo>('mirror', 'status', 'off')).lastCommon).toEqual(before.lastCommon);

    const out = join(dir(), 'rebuilt.img');
    await IncrementalMirror.exclusive(fast, 'mirror update', async () => {
      const rec = await snapplane('mirror', 'reconstruct', 'off', out);
      expect(rec.code).toBe(1);
      expect(rec.stderr).toMatch(/^snapplane: the incremental mirror in '.*' is in use by process \d+ \(mirror update\) on \S+ since \S+Z; try again when that ends; nothing was reconstructed into '.*rebuilt\.img' \(LOCKED\)\n$/);
    });
    expect(existsSync(out)).toBe(false);

    // Their turn now: the update lands, and the reconstruct equals the source as of it.
    await ok('mirror', 'update', 'off');
    const after = await json<MirrorInfo>('mirror', 'status', 'off');
    expect(after.lastCommon).not.toBe(before.lastCommon);
    await ok('mirror', 'reconstruct', 'off', out);
    expectSameTree(await treeOf(out), await treeOf(src, after.lastCommon!), 'the reconstruct');
    expect((await ok('mirror', 'verify', 'off')).stdout).toMatch(/all match/);
    expect(existsSync(join(fast, 'delta.lock'))).toBe(false);
  }, 120_000);

  it('a reconstruct and a verify still run from a fast folder mounted read-only (no lock can be written; no update can run)', async (ctx) => {
    const src = join(dir(), 'ro-src.img');
    const fast = join(dir(), 'ro-fast');
    await ok('volume', 'create', src, '--size', '16M');
    await writeFile(join(dir(), 'c.bin'), Buffer.alloc(100_000, 3));
    await ok('put', src, join(dir(), 'c.bin'), '/c.bin');
    await ok('mirror', 'create', 'ro', src, fast, '--kind', 'incremental', '--slow', `file:${join(dir(), 'ro-base.snap')}`);
    await ok('mirror', 'update', 'ro');
    await ok('put', src, join(dir(), 'c.bin'), '/d.bin');
    await ok('mirror', 'update', 'ro');
    // A read-only bind mount needs root and a kernel that allows it; elsewhere this case cannot be set up.
    try {
      execFileSync('mount', ['--bind', fast, fast], { stdio: 'ignore' });
    } catch {
      ctx.skip();
    }
    try {
      execFileSync('mount', ['-o', 'remount,ro,bind', fast], { stdio: 'ignore' });
      const out = join(dir(), 'ro-rebuilt.img');
      await ok('mirror', 'reconstruct', 'ro', out);
      const last = (await json<MirrorInfo>('mirror', 'status', 'ro')).lastCommon!;
      expectSameTree(await treeOf(out), await treeOf(src, last), 'the reconstruct from a read-only folder');
      expect((await ok('mirror', 'verify', 'ro')).stdout).toMatch(/all match/);
      const update = await snapplane('mirror', 'update', 'ro');
      expect(update.code).toBe(1);
      expect(update.stderr).toMatch(/read-only file system.*\(IO\)\n$/);
    } finally {
      execFileSync('umount', [fast], { stdio: 'ignore' });
    }
  }, 120_000);
});
