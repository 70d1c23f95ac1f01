/**
 * Receives that fail lose nothing, and ones that can land do (the CLI, as a storage admin runs it):
 * - `receive --force` / `copy --force` discard the destination's changes only together with a stream that commits:
 *   a stream received before, a corrupt one or a truncated one leaves the volume as it was;
 * - after `snap revert` or `snap restore` on the source, an incremental whose blocks a snapshot of the destination
 *   holds with the same bytes lands.
 */
import { describe, expect, it } from 'vitest';
import { readFile, readdir, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { flipByte, json, ok, snapplane, snapshotNames } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';
import type { FsckReport, ReceiveReport, VolumeInfo } from '../../core/api/index.js';

const tmp = useTempDir('recv-force');

async function files(vol: string): Promise<string[]> {
  const r = await ok('ls', vol, '/');
  return r.stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/).at(-1)!);
}
async function generation(vol: string): Promise<number> {
  return (await json<VolumeInfo>('volume', 'info', vol)).generation;
}
async function host(name: string, text: string | Buffer): Promise<string> {
  const p = join(tmp(), name);
  await writeFile(p, text);
  return p;
}

describe('receive --force commits the discarding only with the stream', () => {
  it('a stream received before, a corrupt one and a truncated one leave the local changes; a good one replaces them', async () => {
    const d = tmp();
    process.env.SNAPPLANE_HOME = join(d, 'home');
    const src = join(d, 's.img');
    await mkdir(join(d, 'd'));
    await writeFile(join(d, 'd', 'f1'), Buffer.alloc(300_000, 7));
    await ok('volume', 'create', src, '--size', '64M');
    await ok('put', src, join(d, 'd'), '/d');
    await ok('snap', 'create', src, 's1');
    await ok('put', src, await host('m.txt', 'more\n'.repeat(3000)), '/d/m.txt');
    await ok('snap', 'create', src, 's2');
    const full = join(d, 'full.snap');
    const inc = join(d, 'inc.snap');
    await ok('send', src, 's1', '-o', full);
    await ok('send', src, 's2 - s1', '-o', inc);
    const imp = await host('imp.txt', 'important\n'.repeat(3000));

    // Received before: refused up front, saying so, and nothing changes (no CP either).
    const rf2 = join(d, 'rf2.img');
    await ok('receive', rf2, '-i', full);
    await ok('receive', rf2, '-i', inc);
    await ok('put', rf2, imp, '/important.txt');
    const before = await generation(rf2);
    const forced = await snapplane('receive', rf2, '-i', inc, '--force');
    expect(forced.code).toBe(1);
    expect(await files(rf2)).toEqual(['d/', 'important.txt']);
    expect(await generation(rf2)).toBe(before);
    const plain = await snapplane('receive', rf2, '-i', inc);
    for (const again of [forced, plain]) {
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/'.*rf2\.img' already has snapshot 's2' \(this stream was received before\) \(EXISTS\)/);
    }

    // A corrupt and a truncated stream fail with BAD_STREAM and leave the changes and the snapshots.
    const bad = join(d, 'bad.snap');
    await flipByte(inc, bad, (await stat(inc)).size - 3000);
    const cut = join(d, 'cut.snap');
    await writeFile(cut, (await readFile(inc)).subarray(0, 10_000));
    const rf3 = join(d, 'rf3.img');
    await ok('receive', rf3, '-i', full);
    await ok('put', rf3, imp, '/important.txt');
    for (const stream of [bad, cut]) {
      const r = await snapplane('receive', rf3, '-i', stream, '--force');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/\(BAD_STREAM\)/);
      expect(await files(rf3)).toEqual(['d/', 'important.txt']);
      expect(await snapshotNames(rf3)).toEqual(['s1']);
      expect((await json<FsckReport>('fsck', rf3)).clean).toBe(true);
    }
    await ok('get', rf3, '/important.txt', join(d, 'imp-back.txt'));
    expect(await readFile(join(d, 'imp-back.txt'), 'utf8')).toBe('important\n'.repeat(3000));

    // The good stream lands and discards them (its blocks land where the discarded file was: held until it verified).
    const r = await json<ReceiveReport>('receive', rf3, '-i', inc, '--force');
    expect(r.current).toBe('s2');
    expect(await files(rf3)).toEqual(['d/']);
    expect(await snapshotNames(rf3)).toEqual(['s1', 's2']);
    expect((await json<FsckReport>('fsck', rf3)).clean).toBe(true);
    await ok('get', rf3, '/d/m.txt', join(d, 'm-back.txt'));
    expect(await readFile(join(d, 'm-back.txt'), 'utf8')).toBe('more\n'.repeat(3000));
    expect((await readdir(d)).filter((f) => f.startsWith('rf3.img.'))).toEqual([]);
  }, 120_000);

  it('copy --force into a volume that has the top already reverts nothing', async () => {
    const d = tmp();
    process.env.SNAPPLANE_HOME = join(d, 'home');
    const src = join(d, 'c.img');
    await ok('volume', 'create', src, '--size', '16M');
    await ok('put', src, await host('t1', 'one\n'), '/t1');
    await ok('snap', 'create', src, 'T2');
    await ok('put', src, await host('t3', 'three\n'), '/t3');
    await ok('snap', 'create', src, 'T3');
    const dst = join(d, 'c3.img');
    await ok('copy', src, dst, 'T2');
    await ok('copy', src, dst, 'T3 - T2');
    await ok('put', dst, await host('mine', 'mine\n'), '/mine');
    const before = await generation(dst);
    const r = await snapplane('copy', src, dst, 'T3 - T2', '--force');
    expect(r.code).toBe(1);
    expect(await files(dst)).toEqual(['mine', 't1', 't3']);
    expect(await generation(dst)).toBe(before);
    expect(r.stderr).toMatch(/already has snapshot 'T3' \(this stream was received before\) \(EXISTS\)/);
  }, 60_000);
});

describe('an incremental after a revert or a restore on the source', () => {
  it('lands by copy: the blocks it shares with A come with the bytes the destination has', async () => {
    const d = tmp();
    process.env.SNAPPLANE_HOME = join(d, 'home');
    for (const [name, back] of [['rv.img', ['snap', 'revert', 'A', '--yes']], ['sr.img', ['snap', 'restore', 'A', '/f']]] as const) {
      const src = join(d, name);
      await ok('volume', 'create', src, '--size', '16M');
      await ok('put', src, await host('sv1', 'v1\n'.repeat(5000)), '/f');
      await ok('snap', 'create', src, 'A');
      await ok('put', src, await host('sv2', 'version2\n'.repeat(5000)), '/f');
      await ok('snap', 'create', src, 'B');
      await ok(back[0], back[1], src, ...back.slice(2));
      await ok('put', src, await host('n.txt', 'n\n'), '/n');
      await ok('snap', 'create', src, 'C');
      const copy = `${src}.copy`;
      await ok('copy', src, copy, 'B + A');
      expect((await json<ReceiveReport>('copy', src, copy, 'C - B')).current).toBe('C');
      expect(await snapshotNames(copy)).toEqual(['A', 'B', 'C']);
      expect((await json<FsckReport>('fsck', copy)).clean).toBe(true);
      for (const [snap, text] of [['A', 'v1\n'], ['B', 'version2\n'], ['C', 'v1\n']]) {
        const out = join(d, `out-${name}-${snap}`);
        await ok('get', `${copy}@${snap}`, '/f', out);
        expect(await readFile(out, 'utf8')).toBe(text.repeat(5000));
      }
    }
  }, 120_000);
});
