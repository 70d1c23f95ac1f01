/** put and get (copyFromHost / copyToHost) on real host folders and real volume images. */
import { describe, expect, it } from 'vitest';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { SnapplaneError } from '../../../core/common/errors.js';
import { copyFromHost } from '../../../core/fs/host-copy.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('host-copy');

async function folderOf(name: string, count: number, bytes: (i: number) => Buffer): Promise<string> {
  const at = join(tmp(), name);
  await mkdir(at);
  for (let i = 0; i < count; i++) await writeFile(join(at, `f${i}`), bytes(i));
  return at;
}

describe('put of many small files', () => {
  it('fills a small volume with what the files take, and a put that does not fit is refused cleanly', async () => {
    const v = await Volume.create(join(tmp(), 'small.img'), { sizeBytes: 8 << 20, cpIntervalMs: 0 });
    const line = (i: number): Buffer => Buffer.from(`file ${i}\n`);
    const many = await folderOf('many', 1500, line);
    const r = await copyFromHost(v, many, '/many');
    expect(r.files).toBe(1500);
    const twelve = await folderOf('twelve', 30, (i) => Buffer.alloc(12_000, i));
    expect((await copyFromHost(v, twelve, '/twelve')).files).toBe(30);
    await v.close();

    const again = await Volume.open(join(tmp(), 'small.img'), { cpIntervalMs: 0 });
    expect((await again.readdir('/many')).length).toBe(1500);
    expect((await again.readFile('/many/f1499')).toString()).toBe('file 1499\n');
    expect((await again.readFile('/twelve/f29')).equals(Buffer.alloc(12_000, 29))).toBe(true);
    // What is left (about a fifth of the volume) cannot hold 2 MiB more: ENOSPC, and what was there stays.
    const big = await folderOf('big', 8, (i) => Buffer.alloc(256 * 1024, i));
    const e = await copyFromHost(again, big, '/big').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SnapplaneError);
    expect((e as SnapplaneError).code).toBe('ENOSPC');
    await again.abort();
    const after = await Volume.open(join(tmp(), 'small.img'), { cpIntervalMs: 0 });
    expect((await after.readdir('/many')).length).toBe(1500);
    expect((await after.fsck()).clean).toBe(true);
    await after.close();
    expect((await readFile(join(many, 'f0'))).toString()).toBe('file 0\n');
  });
});
