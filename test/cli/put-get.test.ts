/** put and get as a user runs them: long names and modes. Real child processes. */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ok } from './cli-helpers.js';
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
});
