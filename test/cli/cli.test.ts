import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lstat, mkdir, mkdtemp, open, readFile, readlink, rm, stat, symlink, utimes, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { json, ok, snapplane } from './cli-helpers.js';
import { Volume } from '../../core/fs/volume.js';
import type { DirEntryInfo, FsckReport, MirrorInfo, MirrorSetReport, MirrorUpdateReport, PlaneInfo, ScheduleInfo, SnapshotDiff, SnapshotInfo, SpaceReport, VolumeInfo } from '../../core/api/index.js';

let dir: string;
let vol: string;
let src: string;

function oneLineError(stderr: string): void {
  const lines = stderr.trim().split('\n');
  expect(lines.length).toBe(1);
  expect(lines[0]).toMatch(/^snapplane: /);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-cli-'));
  // Schedules and history go to a private state folder (children inherit the environment).
  process.env.SNAPPLANE_HOME = join(dir, 'home');
  vol = join(dir, 'v.img');
  src = join(dir, 'src');
  await mkdir(join(src, 'docs', 'deep'), { recursive: true });
  await writeFile(join(src, 'docs', 'a.txt'), 'alpha\n');
  await writeFile(join(src, 'docs', 'deep', 'b.bin'), Buffer.alloc(300_000, 7));
  await writeFile(join(src, 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(src, 'run.sh'), 0o750);
  await symlink('docs/a.txt', join(src, 'link'));
  await utimes(join(src, 'docs', 'a.txt'), new Date('2025-01-02T03:04:05Z'), new Date('2025-01-02T03:04:05Z'));
  await ok('volume', 'create', vol, '--size', '64M');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('snapplane CLI', () => {
  it('volume create and info report the volume in JSON', async () => {
    const info = await json<VolumeInfo>('volume', 'info', vol);
    expect(info.blockCount).toBe(16384);
    expect(info.freeBytes).toBeGreaterThan(60 * 2 ** 20);
    expect(info.device.kind).toBe('image');
    const human = await ok('volume', 'info', vol);
    expect(human.stdout).toMatch(/free:\s+\d/);
    // A volume goes into an existing folder (no parents made, for an image or a group), and the error says which.
    for (const args of [[], ['--raid', '3']]) {
      const missing = await snapplane('volume', 'create', join(dir, 'no-such-folder', 'v'), '--size', '16M', ...args);
      expect(missing.code).toBe(1);
      oneLineError(missing.stderr);
      expect(missing.stderr).toContain(`the folder '${join(dir, 'no-such-folder')}' does not exist (NOT_FOUND)`);
      const underFile = await snapplane('volume', 'create', join(vol, 'v'), '--size', '16M', ...args);
      expect(underFile.stderr).toContain(`'${vol}' is not a folder (NOT_FOUND)`);
    }
    await expect(stat(join(dir, 'no-such-folder'))).rejects.toThrow();
  });

  it('put and get round-trip a folder with modes, times and symlinks', async () => {
    const put = await json<{ files: number; bytes: number }>('put', vol, src, '/');
    expect(put.files).toBe(3);
    const ls = await json<DirEntryInfo[]>('ls', vol, '/src');
    expect(ls.map((e) => e.name)).toEqual(['docs', 'link', 'run.sh']);
    expect(ls.find((e) => e.name === 'link')).toMatchObject({ type: 'symlink', target: 'docs/a.txt' });
    expect(ls.find((e) => e.name === 'run.sh')!.mode).toBe(0o750);
    const out = join(dir, 'out');
    await ok('get', vol, '/src', out);
    expect(await readFile(join(out, 'docs', 'a.txt'), 'utf8')).toBe('alpha\n');
    expect((await readFile(join(out, 'docs', 'deep', 'b.bin'))).equals(Buffer.alloc(300_000, 7))).toBe(true);
    expect((await stat(join(out, 'run.sh'))).mode & 0o777).toBe(0o750);
    expect((await stat(join(out, 'docs', 'a.txt'))).mtime.toISOString()).toBe('2025-01-02T03:04:05.000Z');
    expect((await lstat(join(out, 'link'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(out, 'link'))).toBe('docs/a.txt');
  });

  it('mkdir, mv, rm and sync', async () => {
    await ok('mkdir', vol, '/x/y/z', '-p');
    await ok('mv', vol, '/x/y', '/moved');
    expect((await json<DirEntryInfo[]>('ls', vol, '/moved')).map((e) => e.name)).toEqual(['z']);
    const rmDir = await snapplane('rm', vol, '/moved');
    expect(rmDir.code).toBe(1);
    oneLineError(rmDir.stderr);
    expect(rmDir.stderr).toContain('NOT_EMPTY');
    await ok('rm', vol, '/moved', '-r');
    await ok('rm', vol, '/x', '-r');
    const s = await json<{ generation: number }>('sync', vol);
    expect(s.generation).toBeGreaterThan(1);
  });

  it('snapshots: create, list, diff, restore, rename, hold, delete, revert, planes, space, browse', async () => {
    await ok('snap', 'create', vol, 'mon');
    await ok('rm', vol, '/src/docs/a.txt');
    await ok('put', vol, join(src, 'run.sh'), '/src/new.sh');
    await ok('snap', 'create', vol, 'tue');
    const list = await json<SnapshotInfo[]>('snap', 'list', vol);
    expect(list.map((s) => s.name)).toEqual(['mon', 'tue']);
    const diff = await json<SnapshotDiff>('snap', 'diff', vol, 'mon', 'tue');
    expect(diff.added).toEqual(['/src/new.sh']);
    expect(diff.removed).toEqual(['/src/docs/a.txt']);
    // At a snapshot, info gives the snapshot's own figures (what it holds, what only it holds) beside the volume's.
    const at = await json<VolumeInfo>('volume', 'info', `${vol}@mon`);
    const mon = list.find((x) => x.name === 'mon')!;
    expect(at.snapshot).toBe('mon');
    expect(at.snapshotFigures).toEqual({ createdAt: mon.createdAt, blocks: mon.blocks, bytes: mon.blocks * 4096, uniqueBlocks: mon.uniqueBlocks, uniqueBytes: mon.uniqueBlocks * 4096 });
    expect(at.snapshotFigures!.uniqueBlocks).toBeGreaterThan(0);
    expect((await ok('volume', 'info', `${vol}@mon`)).stdout).toMatch(/snapshot holds: +.* \(\d+ blocks\); only it: .* \(what deleting it frees\)/);
    const browse = await json<DirEntryInfo[]>('ls', `${vol}@mon`, '/src/docs');
    expect(browse.map((e) => e.name)).toEqual(['a.txt', 'deep']);
    await ok('snap', 'restore', vol, 'mon', '/src/docs/a.txt');
    expect((await json<DirEntryInfo[]>('ls', vol, '/src/docs')).map((e) => e.name)).toEqual(['a.txt', 'deep']);
    await ok('snap', 'rename', vol, 'tue', 'tuesday');
    await ok('snap', 'hold', vol, 'mon');
    const held = await snapplane('snap', 'delete', vol, 'mon');
    expect(held.code).toBe(1);
    expect(held.stderr).toContain('HELD');
    await ok('snap', 'release', vol, 'mon');
    const planes = await json<PlaneInfo[]>('planes', vol);
    expect(planes.map((p) => p.name)).toEqual(['active', 'mon', 'tuesday']);
    const space = await json<SpaceReport>('space', vol, '--delete', 'mon');
    const before = await json<VolumeInfo>('volume', 'info', vol);
    await ok('snap', 'delete', vol, 'mon');
    const after = await json<VolumeInfo>('volume', 'info', vol);
    // Deleting frees what was predicted (the CP's own metadata churn may differ by a few blocks).
    expect(Math.abs(after.freeBytes - before.freeBytes - space.freedBytes)).toBeLessThanOrEqual(8 * 4096);
    const refuse = await snapplane('snap', 'revert', vol, 'tuesday');
    expect(refuse.code).toBe(2);
    expect(refuse.stderr).toMatch(/--yes/);
    await ok('snap', 'revert', vol, 'tuesday', '--yes');
    const revertedLs = await json<DirEntryInfo[]>('ls', vol, '/src/docs');
    expect(revertedLs.map((e) => e.name)).toEqual(['deep']);
    const fsck = await json<FsckReport>('fsck', vol);
    expect(fsck.clean).toBe(true);
  });

  it('every error exits non-zero with a one-line reason', async () => {
    const cases: [string[], RegExp][] = [
      [['volume', 'info', join(dir, 'missing.img')], /does not exist \(NOT_FOUND\)/],
      [['volume', 'create', join(dir, 'bad.img'), '--size', '12Q'], /bad size '12Q'/],
      [['volume', 'create', join(dir, 'zero.img'), '--size', '0'], /bad size '0'/],
      [['volume', 'create', vol, '--size', '8M'], /already exists \(EXISTS\)/],
      [['snap', 'create', vol, 'tuesday'], /snapshot 'tuesday' already exists.*\(EXISTS\)/],
      [['ls', vol, '/../etc'], /outside the volume \(OUTSIDE\)/],
      [['get', vol, '/nope', join(dir, 'nope')], /no such file or folder '\/nope' \(NOT_FOUND\)|no such file/],
      [['snap', 'delete', vol, 'nosuch'], /no snapshot 'nosuch'.*\(NOT_FOUND\)/],
      [['ls', `${vol}@nosuch`], /no snapshot 'nosuch'/],
    ];
    for (const [args, msg] of cases) {
      const r = await snapplane(...args);
      expect(r.code, args.join(' ')).not.toBe(0);
      oneLineError(r.stderr);
      expect(r.stderr, args.join(' ')).toMatch(msg);
    }
    const unknown = await snapplane('frobnicate');
    expect(unknown.code).toBe(2);
  });

  it('a full volume: ENOSPC, and the volume stays at its last CP, fsck clean', async () => {
    const small = join(dir, 'small.img');
    await ok('volume', 'create', small, '--size', '2M');
    const keep = join(dir, 'keep.txt');
    await writeFile(keep, 'keep me');
    await ok('put', small, keep, '/keep.txt');
    const big = join(dir, 'big.bin');
    await writeFile(big, Buffer.alloc(3 * 2 ** 20, 1));
    const r = await snapplane('put', small, big, '/big.bin');
    expect(r.code).toBe(1);
    oneLineError(r.stderr);
    expect(r.stderr).toContain('ENOSPC');
    expect((await json<DirEntryInfo[]>('ls', small, '/')).map((e) => e.name)).toEqual(['keep.txt']);
    const fsck = await snapplane('fsck', small);
    expect(fsck.code).toBe(0);
    // Counts in words: one file and the root folder.
    expect(fsck.stdout).toMatch(/^clean: 1 file, 1 folder, 0 links, \d+ blocks, 0 snapshots checked \(CP #\d+\)$/m);
  });

  it('a checksum error names the file and the VBN; fsck exits 1', async () => {
    const img = join(dir, 'rot.img');
    await ok('volume', 'create', img, '--size', '8M');
    const f = join(dir, 'rot.bin');
    const marker = Buffer.alloc(8192, 0);
    marker.write('SNAPPLANE-ROT-MARKER');
    await writeFile(f, marker);
    await ok('put', img, f, '/rot.bin');
    const image = await readFile(img);
    const at = image.indexOf('SNAPPLANE-ROT-MARKER');
    expect(at).toBeGreaterThan(0);
    const fh = await open(img, 'r+');
    await fh.write(Buffer.from('X'), 0, 1, at + 3);
    await fh.close();
    const r = await snapplane('get', img, '/rot.bin', join(dir, 'rot-out.bin'));
    expect(r.code).toBe(1);
    oneLineError(r.stderr);
    expect(r.stderr).toContain(`'/rot.bin' at VBN ${Math.floor(at / 4096)}`);
    expect(r.stderr).toContain('CHECKSUM');
    const fsck = await snapplane('fsck', img, '--json');
    expect(fsck.code).toBe(1);
    expect((JSON.parse(fsck.stdout) as FsckReport).issues[0]).toMatchObject({ kind: 'checksum', vbn: Math.floor(at / 4096) });
  });

  it('a damaged block of the snapshot table: the active files are still read and copied out, writes and snapshots are refused saying so, fsck reports it', async () => {
    const img = join(dir, 'table.img');
    await ok('volume', 'create', img, '--size', '8M');
    const f = join(dir, 'keep.txt');
    await writeFile(f, 'the data an administrator wants back\n');
    await ok('put', img, f, '/keep.txt');
    await ok('snap', 'create', img, 'before-damage');
    const v = await Volume.open(img, { readOnly: true, cpIntervalMs: 0 });
    const tableVbn = (await v.snapshots.tree.committedBlocks())[0].vbn;
    await v.close();
    const table = await open(img, 'r+');
    await table.write(Buffer.from('XX'), 0, 2, tableVbn * 4096 + 100);
    await table.close();
    // The active file system's root is in fsinfo: its files are read as before.
    expect((await ok('ls', img, '/')).stdout).toContain('keep.txt');
    await ok('get', img, '/', join(dir, 'rescued'));
    expect(await readFile(join(dir, 'rescued', 'keep.txt'), 'utf8')).toBe('the data an administrator wants back\n');
    const info = await snapplane('volume', 'info', img);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(new RegExp(`snapshots: +UNREADABLE: the snapshots of '.*table.img' cannot be read: checksum mismatch in 'snapshot table' at VBN ${tableVbn}`));
    // What needs the table says what is wrong and what still works; nothing is written.
    const before = await readFile(img);
    for (const args of [['snap', 'list', img], ['put', img, f, '/again.txt'], ['ls', `${img}@before-damage`, '/']]) {
      const r = await snapplane(...args);
      expect(r.code, args.join(' ')).toBe(1);
      oneLineError(r.stderr);
      expect(r.stderr).toContain(`checksum mismatch in 'snapshot table' at VBN ${tableVbn}`);
      expect(r.stderr).toContain('its active file system can still be read: `snapplane get');
    }
    expect((await readFile(img)).equals(before)).toBe(true);
    const broken = await snapplane('fsck', img, '--json');
    expect(broken.code).toBe(1);
    expect(JSON.parse(broken.stdout) as FsckReport).toMatchObject({
      clean: false,
      issues: [
        { kind: 'checksum', vbn: tableVbn, path: 'snapshot table', message: expect.stringMatching(new RegExp(`^checksum mismatch in 'snapshot table' at VBN ${tableVbn}`)) },
        { kind: 'structure', message: expect.stringMatching(/^snapshots not checked: the snapshots of .* cannot be read/) },
      ],
    });
    const text = await snapplane('fsck', img);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^checksum: checksum mismatch in 'snapshot table'.*\nstructure: snapshots not checked: .*\n2 issues: /);
  });

  it('a second writer is refused with LOCKED naming the holder', async () => {
    const img = join(dir, 'locked.img');
    await ok('volume', 'create', img, '--size', '8M');
    // Hold the volume open for writing from another process through the service facade.
    const holder = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `import { SnapplaneService } from ${JSON.stringify(join(process.cwd(), 'core/service/index.ts'))};
         const s = new SnapplaneService({ cpIntervalMs: 0 });
         await s.mkdir(${JSON.stringify(img)}, '/held', false);
         console.log('holding');
         setTimeout(async () => { await s.closeAll(); }, 60000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => holder.stdout!.on('data', (d: Buffer) => d.toString().includes('holding') && resolve()));
    try {
      const r = await snapplane('mkdir', img, '/second');
      expect(r.code).toBe(1);
      oneLineError(r.stderr);
      expect(r.stderr).toContain(`process ${holder.pid}`);
      expect(r.stderr).toContain('LOCKED');
      // Readers may still look.
      expect((await snapplane('ls', img)).code).toBe(0);
    } finally {
      holder.kill('SIGKILL');
    }
    // The holder died without closing: its lock is stale and is taken over.
    await new Promise((r) => setTimeout(r, 200));
    await ok('mkdir', img, '/third');
  });

  it('RAID-4: create, info with members, fail, replace, scrub', async () => {
    const group = join(dir, 'grp');
    await ok('volume', 'create', group, '--raid', '3', '--size', '16M');
    await ok('put', group, src, '/');
    const info = await json<VolumeInfo>('volume', 'info', group);
    expect(info.device.kind).toBe('raid4');
    expect(info.device.members.map((m) => m.role)).toEqual(['data', 'data', 'data', 'parity']);
    const failed = await json<VolumeInfo>('raid', 'fail', group, '1');
    expect(failed.device.degraded).toBe(true);
    const out = join(dir, 'raid-out');
    await ok('get', group, '/src/docs', out);
    expect((await readFile(join(out, 'deep', 'b.bin'))).equals(Buffer.alloc(300_000, 7))).toBe(true);
    const replaced = await json<VolumeInfo>('raid', 'replace', group, '1', 'data-1-new.img');
    expect(replaced.device.degraded).toBe(false);
    const scrub = await json<{ clean: boolean; parityStripesRepaired: number }>('raid', 'scrub', group);
    expect(scrub.clean).toBe(true);
    expect(scrub.parityStripesRepaired).toBe(0);
  });

  it('mirror create --at HH:MM [--on weekday]: a daily or weekly update time, shown by status; usage errors', async () => {
    const img = join(dir, 'at-src.img');
    await ok('volume', 'create', img, '--size', '16M');
    await ok('mirror', 'create', 'nightly', img, join(dir, 'at-m.img'), '--kind', 'full', '--at', '02:00');
    await ok('mirror', 'create', 'weekly', img, join(dir, 'at-w.img'), '--kind', 'full', '--at', '3:30', '--on', 'sun');
    const list = await json<MirrorInfo[]>('mirror', 'list');
    expect(list.map((m) => [m.name, m.every])).toEqual([
      ['nightly', 'at 02:00'],
      ['weekly', 'at 03:30 on sunday'],
    ]);
    // Never transferred: due at once.
    expect(Date.parse(list[0].nextAt!)).toBeLessThanOrEqual(Date.now());
    await ok('mirror', 'update', 'nightly');
    const next = new Date((await json<MirrorInfo>('mirror', 'status', 'nightly')).nextAt!);
    expect([next.getHours(), next.getMinutes()]).toEqual([2, 0]);
    expect(next.getTime() - Date.now()).toBeGreaterThan(0);
    expect(next.getTime() - Date.now()).toBeLessThanOrEqual(86_400_000);
    expect((await ok('mirror', 'status', 'nightly')).stdout).toMatch(/^schedule:\s+at 02:00, next /m);
    for (const [args, message] of [
      [['--every', '1h', '--at', '02:00'], 'give at most one of --every <interval> or --at <HH:MM>'],
      [['--on', 'monday'], '--on needs --at'],
    ] as const) {
      const r = await snapplane('mirror', 'create', 'bad', img, join(dir, 'bad.img'), '--kind', 'full', ...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(message);
      oneLineError(r.stderr);
    }
    const late = await snapplane('mirror', 'create', 'bad', img, join(dir, 'bad.img'), '--kind', 'full', '--at', '24:00');
    expect(late.code).toBe(1);
    expect(late.stderr).toContain("bad time '24:00': use HH:MM (00:00 to 23:59)");
    expect((await json<MirrorInfo[]>('mirror', 'list')).map((m) => m.name)).toEqual(['nightly', 'weekly']);
    // Not left for the daemon pass of the next test.
    await ok('mirror', 'delete', 'nightly');
    await ok('mirror', 'delete', 'weekly');
  });

  it('mirror set changes a schedule and limit in place (the next update stays incremental); says what changed; usage errors', async () => {
    const img = join(dir, 'set-src.img');
    const mirror = join(dir, 'set-m.img');
    await ok('volume', 'create', img, '--size', '16M');
    await ok('mirror', 'create', 'tune', img, mirror, '--kind', 'full', '--every', '1d');
    await ok('mirror', 'update', 'tune');
    const first = await json<MirrorInfo>('mirror', 'status', 'tune');
    const set = await ok('mirror', 'set', 'tune', '--every', '15m', '--limit', '50M');
    expect(set.stdout).toMatch(/^tune: schedule every 1d → every 15m; limit none → 50\.0 MiB\/s \(next update due \S+Z\)\n$/);
    const status = await ok('mirror', 'status', 'tune');
    expect(status.stdout).toMatch(/^schedule:\s+every 15m, next /m);
    expect(status.stdout).toMatch(/^limit:\s+50\.0 MiB\/s$/m);
    expect((await ok('mirror', 'set', 'tune', '--limit', '50M')).stdout).toBe('tune: nothing changed (schedule every 15m, limit 50.0 MiB/s)\n');
    const off = await json<MirrorSetReport>('mirror', 'set', 'tune', '--on-demand', '--no-limit');
    expect(off.changed).toEqual([
      { setting: 'schedule', from: 'every 15m', to: null },
      { setting: 'limit', from: 50 * 2 ** 20, to: null },
    ]);
    expect(off.mirror).toMatchObject({ every: null, limit: null, lastCommon: first.lastCommon });
    await ok('mkdir', img, '/more');
    const dry = await ok('mirror', 'update', 'tune', '--dry-run');
    expect(dry.stdout).toMatch(/^tune: would send mirror\.tune\.1 → mirror\.tune\.2 \(a new snapshot of the source\): about \d+ blocks, \S+ (B|KiB) as the source stands; nothing was sent\n$/);
    expect(await json<MirrorInfo>('mirror', 'status', 'tune')).toMatchObject({ lastCommon: first.lastCommon, lastTransferAt: first.lastTransferAt });
    const u = await json<MirrorUpdateReport>('mirror', 'update', 'tune');
    expect(u).toMatchObject({ transfer: 'incremental', from: first.lastCommon });
    for (const [args, message] of [
      [[], 'nothing to change: give --every, --at, --on-demand, --limit, --no-limit or --key-file'],
      [['--every', '1h', '--on-demand'], 'give at most one of --every <interval>, --at <HH:MM> or --on-demand'],
      [['--on', 'monday'], '--on needs --at'],
      [['--limit', '0'], '--limit must be a positive rate'],
    ] as const) {
      const r = await snapplane('mirror', 'set', 'tune', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
      oneLineError(r.stderr);
    }
    const key = await snapplane('mirror', 'set', 'tune', '--key-file', join(dir, 'any.key'));
    expect(key.code).toBe(1);
    expect(key.stderr).toContain('is for a remote destination (host:port/name)');
    const unknown = await snapplane('mirror', 'set', 'nosuch', '--every', '1h');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no mirror relationship 'nosuch'.*\(NOT_FOUND\)/);
    expect(await json<MirrorInfo>('mirror', 'status', 'tune')).toMatchObject({ every: null, limit: null });
    await ok('mirror', 'delete', 'tune');
  });

  it('mirror status in another shell shows how far a running update got; the source stays writable meanwhile', async () => {
    const img = join(dir, 'prog-src.img');
    await ok('volume', 'create', img, '--size', '24M');
    await writeFile(join(dir, 'prog.bin'), Buffer.alloc(3 << 20, 7));
    await ok('put', img, join(dir, 'prog.bin'), '/prog.bin');
    const mirror = join(dir, 'prog-m.img');
    await ok('mirror', 'create', 'prog', img, mirror, '--kind', 'full');
    await ok('mirror', 'update', 'prog');
    await writeFile(join(dir, 'prog2.bin'), Buffer.alloc(3 << 20, 8));
    await ok('put', img, join(dir, 'prog2.bin'), '/prog2.bin');
    // 512 KiB/s: about 6 s to watch it (a loaded machine takes a second or more for each command here).
    await ok('mirror', 'set', 'prog', '--limit', '512K');
    const running = snapplane('mirror', 'update', 'prog');
    let line = '';
    const t0 = Date.now();
    while (!/^state:\s+transferring: /m.test(line) && Date.now() - t0 < 15_000) line = (await ok('mirror', 'status', 'prog')).stdout;
    expect(line).toMatch(/^state:\s+transferring: \d+(\.\d+)? (B|KiB|MiB) of 3\.\d\d MiB \(\d{1,2}%\) at \S+Z$/m);
    expect((await ok('mirror', 'list')).stdout).toMatch(/^prog\s+full\s+transferring \d{1,2}%\s/m);
    // The update gives up its source's writer while the stream goes out (a SnapMirror source stays writable): a
    // write in another shell lands meanwhile.
    await ok('put', img, join(dir, 'prog.bin'), '/again.bin');
    // A writer still holding the source when the stream has landed: the update ends all the same, and leaves its
    // previous snapshot for the next update to delete.
    const w = await Volume.open(img, { cpIntervalMs: 0 });
    try {
      expect((await running).code).toBe(0);
    } finally {
      await w.close();
    }
    const after = await json<MirrorInfo>('mirror', 'status', 'prog');
    expect(after).toMatchObject({ state: 'idle', progress: null, lastCommon: 'mirror.prog.2' });
    const names = async (): Promise<string[]> => (await json<SnapshotInfo[]>('snap', 'list', img)).map((x) => x.name);
    expect(await names()).toEqual(['mirror.prog.1', 'mirror.prog.2']);
    // The mirror is the update's snapshot: without what was written during the transfer.
    expect((await json<DirEntryInfo[]>('ls', mirror, '/')).map((e) => e.name).sort()).toEqual(['prog.bin', 'prog2.bin']);
    await ok('mirror', 'set', 'prog', '--no-limit');
    await ok('mirror', 'update', 'prog');
    expect(await names()).toEqual(['mirror.prog.3']);
    expect((await json<DirEntryInfo[]>('ls', mirror, '/')).map((e) => e.name).sort()).toEqual(['again.bin', 'prog.bin', 'prog2.bin']);
    await ok('mirror', 'delete', 'prog');
  });

  it('schedules: add, list, dry run, run, remove; usage errors', async () => {
    const img = join(dir, 'sched.img');
    await ok('volume', 'create', img, '--size', '16M');
    // A new schedule's current slot has no snapshot yet: it is due now (the next run takes one), not at the next slot.
    expect((await ok('schedule', 'add', img, 'hourly', '--every', '1h', '--keep', '2')).stdout).toContain('its first snapshot is due now');
    await ok('schedule', 'add', img, 'weekly', '--at', '00:00', '--on', 'sunday', '--keep', '4');
    const list = await json<ScheduleInfo[]>('schedule', 'list', img);
    expect(list.map((x) => `${x.label} ${x.cadence} ${x.due}`)).toEqual(['hourly every 1h true', 'weekly at 00:00 on sunday true']);
    expect((await ok('schedule', 'list', img)).stdout).toMatch(/hourly\s+every 1h\s+2\s+due now/);
    const dry = await json<{ take: string[]; prune: string[]; dryRun: boolean }>('schedule', 'run', img, '--dry-run');
    expect(dry.dryRun).toBe(true);
    expect(dry.take.map((n) => n.split('-')[0]).sort()).toEqual(['hourly', 'weekly']);
    expect((await json<SnapshotInfo[]>('snap', 'list', img)).length).toBe(0);
    const run = await json<{ take: string[] }>('schedule', 'run', img);
    expect(run.take).toEqual(dry.take);
    expect((await json<SnapshotInfo[]>('snap', 'list', img)).map((x) => x.name).sort()).toEqual([...dry.take].sort());
    const again = await json<{ take: string[] }>('schedule', 'run', img);
    expect(again.take).toEqual([]);
    const taken = await json<ScheduleInfo[]>('schedule', 'list', img);
    expect(taken.map((x) => x.due)).toEqual([false, false]);
    expect(taken.every((x) => Date.parse(x.nextAt) > Date.now())).toBe(true);
    await ok('schedule', 'remove', img, 'weekly');
    const bad = await snapplane('schedule', 'add', img, 'x', '--every', '1h', '--at', '10:00', '--keep', '1');
    expect(bad.code).toBe(2);
    oneLineError(bad.stderr);
    const missing = await snapplane('schedule', 'remove', img, 'nosuch');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('NOT_FOUND');
    const daemon = await ok('daemon', '--once');
    // One pass: it does not claim to check every 30 s.
    expect(daemon.stdout).toContain('snapplane daemon: one pass over the schedules and mirrors (--once)');
    expect(daemon.stdout).not.toContain('every 30s');
  });

  it('demo builds a volume with a week of snapshots', async () => {
    const r = await ok('demo', '--dir', join(dir, 'demo'));
    expect(r.stdout).toContain('June7');
    expect(r.stdout).toContain('fsck: clean');
    const snaps = await json<SnapshotInfo[]>('snap', 'list', join(dir, 'demo', 'demo.img'));
    expect(snaps.length).toBe(7);
  });
});
