/**
 * put and get as a user runs them: each file lands whole (a full volume, Ctrl-C, SIGTERM or a killed put never
 * leave part of one), long names, setuid bits, and special files put cannot copy. Real child processes and signals.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdir, open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { DirEntryInfo, FsckReport } from '../../core/api/index.js';
import { json, ok, snapplane, type CliResult } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';

const tmp = useTempDir('put-get');
const BIN = join(process.cwd(), 'bin', 'snapplane.js');
beforeAll(() => {
  // History goes to a private state folder (children inherit the environment).
  process.env.SNAPPLANE_HOME = join(tmp(), 'home');
});

function start(...args: string[]): { pid: number; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal === 'SIGKILL' ? 137 : -1), stdout, stderr }));
  });
  return { pid: child.pid!, done };
}

async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + 60_000;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Bytes the image holds on the host: a put's data reaches it only at a CP. */
async function allocated(path: string): Promise<number> {
  return (await stat(path)).blocks * 512;
}

async function names(vol: string, path = '/'): Promise<string[]> {
  return (await json<DirEntryInfo[]>('ls', vol, path)).map((e) => e.name);
}

async function clean(vol: string): Promise<void> {
  expect((await json<FsckReport>('fsck', vol)).clean).toBe(true);
}

/**
 * A 256 MiB host file, big enough that a put of it commits mid-way (every 64 MiB). Not zeros: blocks of zeros
 * stay holes both ways (a put of them writes nothing, a get of them nothing on the host).
 */
async function bigFile(name: string): Promise<string> {
  const at = join(tmp(), name);
  const fh = await open(at, 'w');
  try {
    const piece = Buffer.alloc(4 << 20, 0x5a);
    for (let o = 0; o < 256 << 20; o += piece.length) await fh.write(piece, 0, piece.length, o);
  } finally {
    await fh.close();
  }
  return at;
}

describe('put lands each file whole', () => {
  it('a file that does not fit keeps the one it replaces, and the advice it gives works', async () => {
    const vol = join(tmp(), 'full.img');
    await ok('volume', 'create', vol, '--size', '8M');
    const old = randomBytes(4 << 20);
    await writeFile(join(tmp(), 'old.bin'), old);
    await ok('put', vol, join(tmp(), 'old.bin'), '/f.bin');
    // 12 MiB cannot fit at all: refused, the old file intact.
    await writeFile(join(tmp(), 'huge.bin'), Buffer.alloc(12 << 20, 1));
    const huge = await snapplane('put', vol, join(tmp(), 'huge.bin'), '/f.bin');
    expect(huge.code).toBe(1);
    expect(await names(vol)).toEqual(['f.bin']);
    await ok('get', vol, '/f.bin', join(tmp(), 'f1.out'));
    expect((await stat(join(tmp(), 'f1.out'))).size).toBe(old.length);
    expect((await readFile(join(tmp(), 'f1.out'))).equals(old)).toBe(true);
    expect(huge.stderr).toMatch(/^snapplane: volume '.*' is full: '\/f\.bin' needs 3,0\d\d blocks, the volume has room for [\d,]+ \([\d,]+ blocks free, less 128 kept for metadata\); '\/f\.bin' was kept as it was \(ENOSPC\)\n$/);
    await clean(vol);
    // 5 MiB would fit in the old one's place but not beside it: the error says so, and removing it first works.
    const next = randomBytes(5 << 20);
    await writeFile(join(tmp(), 'next.bin'), next);
    const beside = await snapplane('put', vol, join(tmp(), 'next.bin'), '/f.bin');
    expect(beside.code).toBe(1);
    expect(beside.stderr).toContain(`'/f.bin' was kept as it was: its new copy is written beside it until complete, so both must fit at once (removing '/f.bin' first makes room`);
    await ok('get', vol, '/f.bin', join(tmp(), 'f2.out'));
    expect((await readFile(join(tmp(), 'f2.out'))).equals(old)).toBe(true);
    await ok('rm', vol, '/f.bin');
    await ok('put', vol, join(tmp(), 'next.bin'), '/f.bin');
    await ok('get', vol, '/f.bin', join(tmp(), 'f3.out'));
    expect((await readFile(join(tmp(), 'f3.out'))).equals(next)).toBe(true);
    await clean(vol);
  });

  it('a file too big for an empty volume says what it needs and what there is; a folder put that fills it names where it stopped and what it kept', async () => {
    const vol = join(tmp(), 'g.img');
    await ok('volume', 'create', vol, '--size', '16M');
    await writeFile(join(tmp(), 'big.bin'), Buffer.alloc(20_000_000, 1));
    const big = await snapplane('put', vol, join(tmp(), 'big.bin'), '/big.bin');
    expect(big.code).toBe(1);
    // 4,883 data blocks and their indirect blocks, against 4,096 - 2 fsinfo - the root's blocks - 128 kept.
    expect(big.stderr).toMatch(/^snapplane: volume '.*g\.img' is full: '\/big\.bin' needs 4,89\d blocks, the volume has room for 3,9\d\d \(4,0\d\d blocks free, less 128 kept for metadata\); '\/big\.bin' was not created \(ENOSPC\)\n$/);
    expect(await names(vol)).toEqual([]);

    const folder = join(tmp(), 'many');
    await mkdir(folder);
    for (let i = 0; i < 30; i++) await writeFile(join(folder, `f${String(i).padStart(2, '0')}.bin`), randomBytes(1 << 20));
    const r = await snapplane('put', vol, folder, '/many');
    expect(r.code).toBe(1);
    const kept = await names(vol, '/many');
    expect(kept.length).toBeGreaterThan(5);
    expect(kept.length).toBeLessThan(30);
    const stoppedAt = `f${String(kept.length).padStart(2, '0')}.bin`;
    expect(r.stderr).toMatch(
      new RegExp(`^snapplane: volume '.*' is full: '/many/${stoppedAt}' needs 2\\d\\d blocks, the volume has room for \\d+ .*; '/many/${stoppedAt}' was not created; the put of '.*many' stopped there: ${kept.length} of its 30 files were put and are kept, the rest were not \\(ENOSPC\\)\n$`),
    );
    await clean(vol);
  });

  it('Ctrl-C and SIGTERM after a CP of the new copy keep the old file, say so and exit 130 / 143', async () => {
    const vol = join(tmp(), 'sig.img');
    await ok('volume', 'create', vol, '--size', '1G');
    await writeFile(join(tmp(), 'small.txt'), 'the old content\n');
    await ok('put', vol, join(tmp(), 'small.txt'), '/big.bin');
    const big = await bigFile('big.src');
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      const base = await allocated(vol);
      const put = start('put', vol, big, '/big.bin');
      await until('a CP of the put', async () => (await allocated(vol)) > base + (32 << 20));
      process.kill(put.pid, signal);
      const r = await put.done;
      expect(r.code).toBe(code);
      expect(r.stderr).toContain(`snapplane: put interrupted; '/big.bin' kept as it was (CANCELLED)\n`);
      expect(await names(vol)).toEqual(['big.bin']);
      await ok('get', vol, '/big.bin', join(tmp(), `${signal}.out`));
      expect(await readFile(join(tmp(), `${signal}.out`), 'utf8')).toBe('the old content\n');
      await clean(vol);
    }
    // A new file interrupted is not created at all.
    const base = await allocated(vol);
    const put = start('put', vol, big, '/new.bin');
    await until('a CP of the put', async () => (await allocated(vol)) > base + (32 << 20));
    process.kill(put.pid, 'SIGINT');
    expect((await put.done).stderr).toContain(`put interrupted; '/new.bin' not created (CANCELLED)`);
    expect(await names(vol)).toEqual(['big.bin']);
  });

  it("a killed put's temporary is removed by the next put into its folder", async () => {
    const vol = join(tmp(), 'killed.img');
    await ok('volume', 'create', vol, '--size', '1G');
    await ok('mkdir', vol, '/d');
    const big = await bigFile('killed.src');
    const put = start('put', vol, big, '/d/big.bin');
    // A reader sees what the put's CPs committed.
    await until('a CP of the put', async () => (await names(vol, '/d')).length > 0);
    process.kill(put.pid, 'SIGKILL');
    await put.done;
    // The CP committed the partial copy under its temporary name, never under the target's.
    const left = await names(vol, '/d');
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^\.snapplane-put-\d+-\d+\.tmp$/);
    await writeFile(join(tmp(), 'other.txt'), 'other\n');
    await ok('put', vol, join(tmp(), 'other.txt'), '/d/other.txt');
    expect(await names(vol, '/d')).toEqual(['other.txt']);
    await clean(vol);
  });
});

describe('get', () => {
  it('Ctrl-C removes the temporary, keeps the file it was replacing and says so', async () => {
    const vol = join(tmp(), 'get.img');
    await ok('volume', 'create', vol, '--size', '1G');
    await ok('put', vol, await bigFile('get.src'), '/big.bin');
    const out = join(tmp(), 'gi');
    await mkdir(out);
    await writeFile(join(out, 'big.bin'), 'keep me\n');
    const get = start('get', vol, '/big.bin', join(out, 'big.bin'));
    await until('the temporary to grow', async () => {
      const tmps = (await readdir(out)).filter((n) => n !== 'big.bin');
      return tmps.length === 1 && (await stat(join(out, tmps[0])).then((s) => s.size > 16 << 20, () => false));
    });
    process.kill(get.pid, 'SIGINT');
    const r = await get.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toContain(`snapplane: get interrupted; '${join(out, 'big.bin')}' kept as it was (CANCELLED)\n`);
    expect(await readdir(out)).toEqual(['big.bin']);
    expect(await readFile(join(out, 'big.bin'), 'utf8')).toBe('keep me\n');
  });

  it('a folder with a damaged file: the other files are got, and the get fails naming the damaged one and its VBN', async () => {
    const d = join(tmp(), 'damaged');
    await mkdir(join(d, 'src'), { recursive: true });
    const good = [randomBytes(20_000), randomBytes(9_000)];
    await writeFile(join(d, 'src', 'a.bin'), good[0]);
    await writeFile(join(d, 'src', 'c.bin'), good[1]);
    await writeFile(join(d, 'src', 'b.txt'), 'SNAPPLANE-DAMAGE-MARKER\n');
    const vol = join(d, 'v.img');
    await ok('volume', 'create', vol, '--size', '8M');
    await ok('put', vol, join(d, 'src'), '/src');
    const image = await readFile(vol);
    const at = image.indexOf('SNAPPLANE-DAMAGE-MARKER');
    image[at] ^= 0x20;
    await writeFile(vol, image);
    const r = await snapplane('get', vol, '/src', join(d, 'out'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`snapplane: 1 file or folder could not be read (checksum mismatch in '/src/b.txt' at VBN ${Math.floor(at / 4096)} on volume '${vol}'); 2 other files were got into '${join(d, 'out')}' (CHECKSUM)\n`);
    expect((await readdir(join(d, 'out'))).sort()).toEqual(['a.bin', 'c.bin']);
    expect((await readFile(join(d, 'out', 'a.bin'))).equals(good[0])).toBe(true);
    expect((await readFile(join(d, 'out', 'c.bin'))).equals(good[1])).toBe(true);
    // The damaged file on its own is an error, as before.
    expect((await snapplane('get', vol, '/src/b.txt', join(d, 'b.txt'))).stderr).toMatch(/checksum mismatch in '\/src\/b\.txt'/);
  });

  it("'-' writes a file to standard output, byte for byte; a folder is refused", async () => {
    const d = join(tmp(), 'stdout');
    await mkdir(d, { recursive: true });
    const data = randomBytes(3 << 20);
    await writeFile(join(d, 'f.bin'), data);
    const vol = join(d, 'v.img');
    await ok('volume', 'create', vol, '--size', '16M');
    await ok('put', vol, join(d, 'f.bin'), '/f.bin');
    await ok('snap', 'create', vol, 's1');
    await ok('rm', vol, '/f.bin');
    const out = await new Promise<{ code: number | null; bytes: Buffer; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'get', `${vol}@s1`, '/f.bin', '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const parts: Buffer[] = [];
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => parts.push(c));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('close', (code) => resolve({ code, bytes: Buffer.concat(parts), stderr }));
    });
    expect(out).toMatchObject({ code: 0, stderr: '' });
    expect(out.bytes.equals(data)).toBe(true);
    const folder = await snapplane('get', `${vol}@s1`, '/', '-');
    expect(folder.code).toBe(1);
    expect(folder.stderr).toBe("snapplane: '/' is a folder; only a file goes to standard output (name a host path to get it) (INVALID)\n");
    expect(await readdir(d)).not.toContain('-');
  });

  it('writes names of 255 bytes (its temporary name is short)', async () => {
    const vol = join(tmp(), 'names.img');
    await ok('volume', 'create', vol, '--size', '8M');
    const src = join(tmp(), 'names');
    await mkdir(src);
    const long = 'L'.repeat(255);
    await writeFile(join(src, long), 'long\n');
    await writeFile(join(src, 'short'), 'short\n');
    await ok('put', vol, src, '/n');
    const out = join(tmp(), 'names-out');
    const r = await ok('get', vol, '/n', out);
    expect(r.stdout).toBe('got 2 files, 1 folder, 11 B\n');
    expect(await readFile(join(out, long), 'utf8')).toBe('long\n');
    expect((await readdir(out)).sort()).toEqual([long, 'short']);
    await ok('get', vol, `/n/${long}`, join(tmp(), 'one-out'));
    expect(await readFile(join(tmp(), 'one-out'), 'utf8')).toBe('long\n');
  });

  it('keeps setuid and setgid bits', async () => {
    const vol = join(tmp(), 'modes.img');
    await ok('volume', 'create', vol, '--size', '8M');
    const src = join(tmp(), 'modes');
    await mkdir(src);
    await writeFile(join(src, 'suid'), '#!/bin/sh\n');
    await chmod(join(src, 'suid'), 0o4755);
    await writeFile(join(src, 'sgid'), '#!/bin/sh\n');
    await chmod(join(src, 'sgid'), 0o2755);
    await chmod(src, 0o2775);
    await ok('put', vol, src, '/m');
    const ls = await json<DirEntryInfo[]>('ls', vol, '/m');
    expect(ls.find((e) => e.name === 'suid')!.mode).toBe(0o4755);
    const out = join(tmp(), 'modes-out');
    await ok('get', vol, '/m', out);
    expect((await stat(join(out, 'suid'))).mode & 0o7777).toBe(0o4755);
    expect((await stat(join(out, 'sgid'))).mode & 0o7777).toBe(0o2755);
    expect((await stat(out)).mode & 0o7777).toBe(0o2775);
  });
});

describe('put of special files', () => {
  it('counts the sockets, FIFOs and devices of a folder it skips; one named on its own is an error', async () => {
    const vol = join(tmp(), 'special.img');
    await ok('volume', 'create', vol, '--size', '8M');
    const src = join(tmp(), 'special');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'a\n');
    execFileSync('mkfifo', [join(src, 'fifo')]);
    const r = await ok('put', vol, src, '/s');
    expect(r.stdout).toBe(`put 1 file, 1 folder, 2 B; skipped 1 special file (sockets, FIFOs, devices), the first '${join(src, 'fifo')}'\n`);
    expect((await json<{ skipped: number; firstSkipped: string }>('put', vol, src, '/s2')).skipped).toBe(1);
    expect(await names(vol, '/s')).toEqual(['a.txt']);
    const one = await snapplane('put', vol, join(src, 'fifo'), '/fifo');
    expect(one.code).toBe(1);
    expect(one.stderr).toBe(`snapplane: '${join(src, 'fifo')}' is a FIFO: put copies files, folders and symbolic links (INVALID)\n`);
    expect(await names(vol)).toEqual(['s', 's2']);
  });
});
