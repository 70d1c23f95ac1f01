/**
 * Creating a volume is all or nothing: the image is made under a temporary name and linked into place only when
 * formatted, so a creator that fails or is killed leaves no half-made volume (a receive that created one could
 * never finish, and every later open would call it "not a Snapplane volume").
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageFileDevice } from '../../../core/device/image-file-device.js';
import { Volume } from '../../../core/fs/volume.js';
import { VolumeLock } from '../../../core/fs/lock.js';
import { linkIntoPlace } from '../../../core/common/link-into-place.js';
import { seeded } from '../../helpers/replication.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const BIN = join(process.cwd(), 'bin', 'snapplane.js');
const temp = useTempDir('create');

describe('volume creation', () => {
  it('a format that fails leaves nothing at the path and no temporary image', async () => {
    const path = join(temp(), 'failed.img');
    await expect(ImageFileDevice.createWhole(path, 4096, async () => {
      throw new Error('disk went away');
    })).rejects.toThrow(/disk went away/);
    expect(await readdir(temp())).toEqual([]);
    const v = await Volume.create(path, { sizeBytes: 16 << 20, cpIntervalMs: 0 });
    await v.close();
    await expect(Volume.create(path, { sizeBytes: 16 << 20, cpIntervalMs: 0 })).rejects.toMatchObject({ code: 'EXISTS' });
  });

  it('removes a temporary image its dead creator left, and keeps a running creator\'s', async () => {
    const path = join(temp(), 'left.img');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      await writeFile(`${path}.creating-999999999`, 'half made');
      await writeFile(`${path}.creating-${child.pid}`, 'being made');
      const v = await Volume.create(path, { sizeBytes: 16 << 20, cpIntervalMs: 0 });
      await v.close();
      const left = (await readdir(temp())).filter((n) => n.startsWith('left.img.creating-'));
      expect(left).toEqual([`left.img.creating-${child.pid}`]);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a creator killed at random points leaves either no volume or a whole one, and its lock never blocks the next writer', async () => {
    const rnd = seeded(5);
    const outcomes = { absent: 0, whole: 0 };
    for (let i = 0; i < 12; i++) {
      const path = join(temp(), `killed-${i}.img`);
      const child = spawn(process.execPath, [BIN, 'volume', 'create', path, '--size', '2T'], { stdio: 'ignore' });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      // The CLI starts in ~0.25 s and creates in ~0.15 s here: the kills spread over both.
      setTimeout(() => child.kill('SIGKILL'), 150 + rnd() * 350);
      await exited;
      const names = await readdir(temp());
      if (!names.includes(`killed-${i}.img`)) {
        outcomes.absent++;
        continue;
      }
      outcomes.whole++;
      // Opened for writing at once: a lock the killed creator was taking is stale, not "being opened".
      const v = await Volume.open(path, { cpIntervalMs: 0 });
      try {
        expect((await v.fsck()).issues).toEqual([]);
      } finally {
        await v.close();
      }
    }
    expect(outcomes.absent + outcomes.whole).toBe(12);
  }, 60_000);

  it('a file is put in place without replacing one that is there', async () => {
    const [tmp, other, path] = ['a.tmp', 'b.tmp', 'placed'].map((n) => join(temp(), n));
    await writeFile(tmp, 'first');
    await writeFile(other, 'second');
    await linkIntoPlace(tmp, path);
    await expect(linkIntoPlace(other, path)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(path, 'utf8')).toBe('first');
  });

  it('the lock file appears with its holder in it, and taking it leaves no temporary file', async () => {
    const path = join(temp(), 'locked.img');
    const lock = await VolumeLock.acquire(path);
    try {
      const names = (await readdir(temp())).filter((n) => n.startsWith('locked.img'));
      expect(names).toEqual(['locked.img.lock']);
      await expect(VolumeLock.acquire(path)).rejects.toMatchObject({ code: 'LOCKED', message: expect.stringContaining(`process ${process.pid}`) });
    } finally {
      await lock.release();
    }
  });
});
