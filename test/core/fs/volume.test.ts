import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile, stat, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { SnapplaneError } from '../../../core/common/errors.js';
import { walkTree } from '../../../core/fs/walk.js';
import { Raid4Device } from '../../../core/raid/raid4-device.js';
import { openDeviceAt } from '../../../core/raid/open-device.js';
import type { OpenOptions } from '../../../core/fs/volume.js';

type Kind = 'image' | 'raid4';

/** Creates a volume of about `sizeBytes` usable space on an image file or a 4+1 RAID-4 group. */
async function createVolume(kind: Kind, at: string, sizeBytes: number, opts: OpenOptions = {}): Promise<Volume> {
  if (kind === 'image') return Volume.create(at, { sizeBytes, ...opts });
  const dev = await Raid4Device.create(at, 4, Math.ceil(sizeBytes / 4) + 9 * 4096);
  await Volume.format(dev);
  await dev.close();
  return Volume.open(at, { ...opts, openDevice: openDeviceAt });
}

function openVolume(at: string, opts: OpenOptions = {}): Promise<Volume> {
  return Volume.open(at, { ...opts, openDevice: openDeviceAt });
}

let dir: string;
let path: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-vol-'));
  path = join(dir, 'v.img');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SnapplaneError);
    return (e as SnapplaneError).code;
  }
  throw new Error('expected an error');
}

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 17 + (i >> 12)) & 255;
  return b;
}

async function dataVbns(v: Volume, p: string): Promise<number[]> {
  const internal = v as unknown as { ns: { resolve(p: string): Promise<{ inode: Parameters<typeof walkTree>[0] }> }; ctx: Parameters<typeof walkTree>[1] };
  const r = await internal.ns.resolve(p);
  const out: number[] = [];
  await walkTree(r.inode, internal.ctx, p, (ptr, level) => {
    if (level === 0) out.push(ptr.vbn);
  });
  return out;
}

describe('volume lifecycle', () => {
  it('creates a sparse image, reopens it and keeps the data', async () => {
    const v = await Volume.create(path, { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
    await v.writeFile('/a.txt', Buffer.from('alpha'));
    await v.close();
    const st = await stat(path);
    expect(st.size).toBe(64 * 2 ** 20);
    expect(st.blocks * 512).toBeLessThan(4 * 2 ** 20); // sparse
    const r = await Volume.open(path, { readOnly: true });
    expect((await r.readFile('/a.txt')).toString()).toBe('alpha');
    const info = await r.info();
    expect(info.blockCount).toBe(16384);
    expect(info.freeBlocks + info.activeBlocks + info.snapshotOnlyBlocks).toBe(info.blockCount);
    await r.close();
  });

  it('refuses bad sizes, existing images, missing volumes and foreign files', async () => {
    expect(await code(Volume.create(path, { sizeBytes: 1000 }))).toBe('INVALID');
    const v = await Volume.create(path, { sizeBytes: 2 ** 20, cpIntervalMs: 0 });
    await v.close();
    expect(await code(Volume.create(path, { sizeBytes: 2 ** 20 }))).toBe('EXISTS');
    expect(await code(Volume.open(join(dir, 'missing.img')))).toBe('NOT_FOUND');
    const junk = join(dir, 'junk.img');
    await writeFile(junk, Buffer.alloc(2 ** 20, 1));
    expect(await code(Volume.open(junk))).toBe('BAD_FORMAT');
  });

  it('allows one writer; the second gets LOCKED naming the holder; readers may open alongside', async () => {
    const v = await Volume.create(path, { sizeBytes: 2 ** 20, cpIntervalMs: 0 });
    try {
      await Volume.open(path);
      throw new Error('second writer opened');
    } catch (e) {
      expect((e as SnapplaneError).code).toBe('LOCKED');
      expect((e as Error).message).toContain(String(process.pid));
    }
    const r = await Volume.open(path, { readOnly: true });
    await r.close();
    await v.close();
    const again = await Volume.open(path);
    await again.close();
  });

  it('a dead writer\'s lock is taken over', async () => {
    const v = await Volume.create(path, { sizeBytes: 2 ** 20, cpIntervalMs: 0 });
    await v.close();
    await writeFile(`${path}.lock`, JSON.stringify({ pid: 2 ** 22 + 12345, host: (await import('node:os')).hostname(), since: 'x' }));
    const w = await Volume.open(path);
    await w.close();
  });
});

describe.each(['image', 'raid4'] as Kind[])('files and folders (%s)', (kind) => {
  let v: Volume;
  beforeEach(async () => {
    v = await createVolume(kind, path, 64 * 2 ** 20, { cpIntervalMs: 0 });
  });
  afterEach(async () => {
    await v.close().catch(() => undefined);
  });

  it('round-trips sizes around block boundaries, sparse growth and truncation', async () => {
    for (const size of [0, 1, 4095, 4096, 4097, 24 * 4096, 24 * 4096 + 1, 600 * 4096 + 7]) {
      const data = pattern(size, size);
      await v.writeFile(`/f${size}`, data);
      expect((await v.readFile(`/f${size}`)).equals(data)).toBe(true);
    }
    await v.sync();
    await v.truncate('/f4097', 10);
    await v.writeAt('/f4097', 9000, Buffer.from('end'));
    const got = await v.readFile('/f4097');
    expect(got.length).toBe(9003);
    expect(got.subarray(0, 10).equals(pattern(4097, 4097).subarray(0, 10))).toBe(true);
    expect(got.subarray(10, 9000).every((b) => b === 0)).toBe(true);
    expect(got.subarray(9000).toString()).toBe('end');
    const r = await v.fsck();
    expect(r.issues).toEqual([]);
  });

  it('keeps modes, owners, mtimes and symbolic links', async () => {
    await v.writeFile('/x', Buffer.from('x'), { mode: 0o640, uid: 12, gid: 34, mtimeMs: 1_000_000_000_000 });
    await v.symlink('/l', '../x/y', { mtimeMs: 2_000_000_000_000 });
    const st = await v.stat('/x');
    expect([st.mode, st.uid, st.gid, st.mtime]).toEqual([0o640, 12, 34, new Date(1_000_000_000_000).toISOString()]);
    expect(await v.readlink('/l')).toBe('../x/y');
    expect((await v.stat('/l')).type).toBe('symlink');
  });

  it('names each error: missing, exists, not a folder, is a folder, not empty, outside', async () => {
    await v.mkdir('/d');
    await v.writeFile('/d/f', Buffer.from('1'));
    expect(await code(v.readFile('/nope'))).toBe('NOT_FOUND');
    expect(await code(v.mkdir('/d'))).toBe('EXISTS');
    expect(await code(v.writeFile('/d/f/g', Buffer.from('')))).toBe('NOT_DIR');
    expect(await code(v.readFile('/d'))).toBe('IS_DIR');
    expect(await code(v.remove('/d'))).toBe('NOT_EMPTY');
    expect(await code(v.readFile('/../etc/passwd'))).toBe('OUTSIDE');
    expect(await code(v.rename('/d', '/d/inside'))).toBe('INVALID');
    expect(await code(v.remove('/'))).toBe('INVALID');
    await v.remove('/d', { recursive: true });
    expect(await v.readdir('/')).toEqual([]);
  });

  it('renames across folders and replaces an existing file', async () => {
    await v.mkdir('/a/b', { parents: true });
    await v.writeFile('/a/b/one', Buffer.from('one'));
    await v.writeFile('/two', Buffer.from('two'));
    await v.rename('/a/b/one', '/two');
    expect((await v.readFile('/two')).toString()).toBe('one');
    expect(await v.readdir('/a/b')).toEqual([]);
    await v.rename('/a', '/c');
    expect((await v.readdir('/c')).map((e) => e.name)).toEqual(['b']);
    expect((await v.fsck()).clean).toBe(true);
  });

  it('fills up with ENOSPC and stays at its last CP, fsck clean', async () => {
    const small = join(dir, 'small.img');
    const s = await createVolume(kind, small, 2 * 2 ** 20, { cpIntervalMs: 0 });
    await s.writeFile('/keep', pattern(10_000, 1));
    await s.sync();
    expect(await code(s.writeFile('/big', pattern(3 * 2 ** 20, 2)))).toBe('ENOSPC');
    await s.abort();
    const r = await openVolume(small);
    expect((await r.readFile('/keep')).equals(pattern(10_000, 1))).toBe(true);
    expect(await code(r.readFile('/big'))).toBe('NOT_FOUND');
    expect((await r.fsck()).clean).toBe(true);
    // Deleting still works on a nearly full volume.
    await r.writeFile('/fill', pattern(1_200_000, 3));
    await r.remove('/fill');
    await r.sync();
    expect((await r.fsck()).clean).toBe(true);
    await r.close();
  });

  it('commits on the timer and on the dirty threshold', async () => {
    await v.close();
    const t = await openVolume(path, { cpIntervalMs: 50, dirtyThresholdBytes: 256 * 1024 });
    const g0 = (await t.info()).generation;
    await t.writeFile('/big', pattern(2 * 2 ** 20, 9));
    const g1 = (await t.info()).generation;
    expect(g1).toBeGreaterThan(g0 + 2); // threshold CPs during the write
    await t.writeFile('/small', Buffer.from('s'));
    await new Promise((r) => setTimeout(r, 300));
    expect((await t.info()).generation).toBeGreaterThan(g1);
    // Crash without close: the timer's CP already has the file.
    const r = await openVolume(path, { readOnly: true });
    expect((await r.readFile('/small')).toString()).toBe('s');
    await r.close();
    await t.close();
  });
});

describe.each(['image', 'raid4'] as Kind[])('snapshots (%s)', (kind) => {
  let v: Volume;
  beforeEach(async () => {
    v = await createVolume(kind, path, 64 * 2 ** 20, { cpIntervalMs: 0 });
  });
  afterEach(async () => {
    await v.close().catch(() => undefined);
  });

  it('creates, lists with unique counts, renames, holds and deletes, freeing exactly the unique blocks', async () => {
    await v.writeFile('/a', pattern(40 * 4096, 1));
    const s1 = await v.createSnapshot('s1');
    expect(s1.uniqueBlocks).toBe(0);
    await v.writeFile('/a', pattern(10 * 4096, 2));
    const list = await v.listSnapshots();
    expect(list.map((s) => s.name)).toEqual(['s1']);
    expect(list[0].uniqueBlocks).toBeGreaterThanOrEqual(40);
    expect(await code(v.createSnapshot('s1'))).toBe('EXISTS');
    expect(await code(v.createSnapshot('bad name'))).toBe('INVALID');
    await v.renameSnapshot('s1', 'monday');
    await v.setSnapshotFlags('monday', { hold: true });
    expect(await code(v.deleteSnapshot('monday'))).toBe('HELD');
    await v.setSnapshotFlags('monday', { hold: false });
    const before = await v.info();
    const unique = (await v.listSnapshots())[0].uniqueBlocks;
    await v.deleteSnapshot('monday');
    const after = await v.info();
    expect(after.freeBlocks - before.freeBlocks).toBeGreaterThanOrEqual(unique);
    expect(after.snapshotOnlyBlocks).toBe(0);
    expect(await code(v.deleteSnapshot('monday'))).toBe('NOT_FOUND');
    expect((await v.fsck()).clean).toBe(true);
  });

  it('deleting snapshots one by one among many keeps the summary the OR of the rest and frees what space() said', async () => {
    // Twelve snapshots, each after rewriting part of two files: blocks shared by some, held alone by others.
    await v.writeFile('/a', pattern(300 * 4096, 1));
    await v.writeFile('/b', pattern(200 * 4096, 2));
    for (let k = 0; k < 12; k++) {
      await v.writeAt(k % 2 ? '/a' : '/b', ((k * 37) % 150) * 4096, pattern(30 * 4096, 10 + k));
      await v.createSnapshot(`s${k}`);
    }
    for (const k of [5, 0, 11, 7, 1, 2, 3, 4, 6, 8, 9, 10]) {
      const freed = (await v.space([`s${k}`])).freedBlocks;
      const before = (await v.info()).freeBlocks;
      await v.deleteSnapshot(`s${k}`);
      await v.sync();
      // What space() said, less the few blocks the block map's own rewrite takes.
      expect((await v.info()).freeBlocks - before, `deleting s${k}`).toBeGreaterThanOrEqual(freed - 8);
      // fsck compares the summary with the OR of the remaining planes, chunk by chunk.
      expect((await v.fsck()).issues, `after deleting s${k}`).toEqual([]);
    }
    expect(v.blockMap!.summary.count).toBe(0);
  });

  it('browses a snapshot read-only and diffs two snapshots', async () => {
    await v.mkdir('/docs');
    await v.writeFile('/docs/keep', Buffer.from('k'));
    await v.writeFile('/docs/change', Buffer.from('v1'));
    await v.writeFile('/docs/gone', Buffer.from('g'));
    await v.createSnapshot('one');
    await v.writeFile('/docs/change', Buffer.from('v2'));
    await v.remove('/docs/gone');
    await v.mkdir('/new');
    await v.writeFile('/new/file', Buffer.from('n'));
    await v.createSnapshot('two');
    const d = await v.diffSnapshots('one', 'two');
    expect(d.added).toEqual(['/new', '/new/file']);
    expect(d.removed).toEqual(['/docs/gone']);
    expect(d.changed).toEqual(['/docs/change']);
    await v.close();
    const snap = await openVolume(path, { snapshot: 'one' });
    expect((await snap.readFile('/docs/change')).toString()).toBe('v1');
    expect((await snap.readFile('/docs/gone')).toString()).toBe('g');
    expect(await code(snap.writeFile('/x', Buffer.from('')))).toBe('READ_ONLY');
    await snap.close();
  });

  it('diff skips subtrees whose pointers are equal', async () => {
    for (let i = 0; i < 200; i++) await v.writeFile(`/f${i}`, Buffer.from(`file ${i}`));
    await v.createSnapshot('a');
    await v.writeFile('/f150', Buffer.from('changed'));
    await v.createSnapshot('b');
    const d = await v.diffSnapshots('a', 'b');
    expect(d.changed).toEqual(['/f150']);
    expect(d.sharedInodeBlocksSkipped).toBeGreaterThan(0);
    expect(d.inodeBlocksCompared).toBeLessThan(4);
  });

  it('restores a file by pointing at the snapshot\'s blocks (no data copy)', async () => {
    const data = pattern(100 * 4096, 5);
    await v.writeFile('/big', data);
    await v.createSnapshot('s');
    const snapBlocks = await dataVbns(v, '/big');
    await v.remove('/big');
    await v.sync();
    const freeBefore = (await v.info()).freeBlocks;
    await v.restoreFromSnapshot('s', '/big');
    await v.sync();
    expect((await v.readFile('/big')).equals(data)).toBe(true);
    expect(await dataVbns(v, '/big')).toEqual(snapBlocks);
    // Only metadata was written: far fewer than the 100 data blocks.
    expect(freeBefore - (await v.info()).freeBlocks).toBeLessThan(10);
    await v.restoreFromSnapshot('s', '/big', { to: '/copy/of/big' });
    expect((await v.readFile('/copy/of/big')).equals(data)).toBe(true);
    expect((await v.fsck()).clean).toBe(true);
  });

  it('reverts the volume to a snapshot and keeps later snapshots', async () => {
    await v.writeFile('/a', Buffer.from('a1'));
    await v.createSnapshot('s1');
    await v.writeFile('/a', Buffer.from('a2'));
    await v.writeFile('/b', Buffer.from('b'));
    await v.createSnapshot('s2');
    await v.writeFile('/c', Buffer.from('c'));
    await v.revertToSnapshot('s1');
    expect((await v.readFile('/a')).toString()).toBe('a1');
    expect((await v.readdir('/')).map((e) => e.name)).toEqual(['a']);
    expect((await v.listSnapshots()).map((s) => s.name)).toEqual(['s1', 's2']);
    expect((await v.fsck()).clean).toBe(true);
    await v.writeFile('/after', Buffer.from('x'));
    await v.deleteSnapshot('s1');
    await v.deleteSnapshot('s2');
    expect((await v.fsck()).clean).toBe(true);
    expect((await v.info()).snapshotOnlyBlocks).toBe(0);
  });

  it('shadow snapshots do not pin space; reused blocks make them stale', async () => {
    const small = join(dir, 'shadow.img');
    const s = await createVolume(kind, small, 2 * 2 ** 20, { cpIntervalMs: 0 });
    await s.writeFile('/f', pattern(200 * 4096, 1));
    await s.createSnapshot('sh', { shadow: true });
    const info = await s.info();
    expect(info.snapshotOnlyBlocks).toBe(0);
    await s.remove('/f');
    await s.sync();
    const freed = await s.info();
    expect(freed.freeBlocks).toBeGreaterThan(info.freeBlocks + 190);
    // Reuse the space: the shadow loses blocks and says so.
    await s.writeFile('/g', pattern(300 * 4096, 2));
    await s.sync();
    const planes = await s.planes();
    expect(planes.find((p) => p.name === 'sh')!.kind).toBe('shadow');
    expect(await code(s.restoreFromSnapshot('sh', '/f'))).toBe('INVALID');
    expect((await s.fsck()).clean).toBe(true);
    await s.close();
  });

  it('a shadow snapshot is flagged stale in the same CP that reuses its blocks (survives a crash right after)', async () => {
    const small = join(dir, 'stale.img');
    const s = await createVolume(kind, small, 4 * 2 ** 20, { cpIntervalMs: 0 });
    await s.writeFile('/a', pattern(1600 * 1024, 1));
    await s.createSnapshot('sh', { shadow: true });
    await s.remove('/a');
    await s.sync();
    await s.writeFile('/b', pattern(2000 * 1024, 2));
    await s.sync();
    await s.abort();
    const r = await openVolume(small);
    const sh = (await r.listSnapshots()).find((x) => x.name === 'sh')!;
    expect(sh.flags).toMatchObject({ shadow: true, stale: true });
    expect(await code(r.restoreFromSnapshot('sh', '/a'))).toBe('INVALID');
    await r.close();
  });

  it('block indexes past 2^32 do not alias earlier blocks', async () => {
    await v.writeFile('/f', Buffer.alloc(4096, 0x41));
    await v.sync();
    await v.writeAt('/f', 2 ** 32 * 4096, Buffer.alloc(4096, 0x42));
    await v.sync();
    const fh = (await v.readChunks('/f')[Symbol.asyncIterator]().next()).value as Buffer;
    expect(fh[0]).toBe(0x41);
    expect((await v.stat('/f')).size).toBe(2 ** 32 * 4096 + 4096);
    expect((await v.fsck()).clean).toBe(true);
  });

  it('holds 255 snapshots and refuses the 256th', async () => {
    await v.writeFile('/a', Buffer.from('a'));
    for (let i = 0; i < 255; i++) await v.createSnapshot(`s${i}`);
    expect(await code(v.createSnapshot('one-too-many'))).toBe('LIMIT');
    expect((await v.fsck()).clean).toBe(true);
  });

  it('planes report blocks set and blocks held only by each plane', async () => {
    await v.writeFile('/a', pattern(20 * 4096, 1));
    await v.createSnapshot('s1');
    await v.writeFile('/a', pattern(20 * 4096, 2));
    const planes = await v.planes();
    expect(planes[0].name).toBe('active');
    const s1 = planes.find((p) => p.name === 's1')!;
    expect(s1.uniqueBlocks).toBeGreaterThanOrEqual(20);
    expect(planes[0].uniqueBlocks).toBeGreaterThanOrEqual(20);
  });
});

describe('checksums', () => {
  it('a flipped bit in a data block fails the read with CHECKSUM naming file and VBN', async () => {
    const v = await Volume.create(path, { sizeBytes: 8 * 2 ** 20, cpIntervalMs: 0 });
    await v.writeFile('/victim', pattern(8192, 3));
    await v.close();
    const r0 = await Volume.open(path, { readOnly: true });
    const [vbn] = await dataVbns(r0, '/victim');
    await r0.close();
    const fh = await open(path, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, vbn * 4096 + 100);
    b[0] ^= 0x10;
    await fh.write(b, 0, 1, vbn * 4096 + 100);
    await fh.close();
    const r = await Volume.open(path, { readOnly: true });
    try {
      await r.readFile('/victim');
      throw new Error('read corrupted data');
    } catch (e) {
      const err = e as SnapplaneError;
      expect(err.code).toBe('CHECKSUM');
      expect(err.vbn).toBe(vbn);
      expect(err.path).toBe('/victim');
    }
    const report = await r.fsck();
    expect(report.clean).toBe(false);
    expect(report.issues.some((i) => i.kind === 'checksum' && i.vbn === vbn)).toBe(true);
    await r.close();
  });
});
