/** put and get as a user runs them: long names, modes, and special files put cannot copy. Real child processes. */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DirEntryInfo } from '../../core/api/index.js';
import { json, ok, snapplane } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';

const tmp = useTempDir('put-get');
beforeAll(() => {
  // History goes to a private state folder (children inherit the environment).
  process.env.SNAPPLANE_HOME = join(tmp(), 'home');
});

describe('get', () => {
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

async function names(vol: string, path = '/'): Promise<string[]> {
  return (await json<DirEntryInfo[]>('ls', vol, path)).map((e) => e.name);
}

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
