/**
 * Creating a volume is all or nothing: the image is made under a temporary name and linked into place only when
 * formatted, so a creator that fails or is killed leaves no half-made volume (a receive that created one could
 * never finish, and every later open would call it "not a Snapplane volume").
 */
import { describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ImageFileDevice } from '../../../core/device/image-file-device.js';
import { Volume } from '../../../core/fs/volume.js';
import { VolumeLock } from '../../../core/fs/lock.js';
import { Raid4Device } from '../../../core/raid/raid4-device.js';
import { openDeviceAt } from '../../../core/raid/open-device.js';
import { SnapplaneService } from '../../../core/service/service.js';
import { linkIntoPlace } from '../../../core/common/link-into-place.js';
import { seeded } from '../../helpers/replication.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const BIN = join(process.cwd(), 'bin', 'snapplane.js');
const temp = useTempDir('create');
// The service's state file lives apart, so the folder listings below see only what creation left.
const stateDir = useTempDir('create-state');

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

  it('a RAID-4 group whose format fails leaves no folder; one made beforehand to hold it is kept empty', async () => {
    const dir = await mkdtemp(join(temp(), 'raid-'));
    const group = join(dir, 'grp');
    await expect(Raid4Device.createWhole(group, 3, 4 << 20, async () => {
      throw new Error('member went away');
    })).rejects.toThrow(/member went away/);
    expect(await readdir(dir)).toEqual([]);
    await mkdir(group);
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(stateDir(), 'state.json') });
    try {
      const info = await s.createVolume(group, 4 << 20, { raid: 3 });
      expect(info.device.kind).toBe('raid4');
      expect((await readdir(group)).sort()).toEqual(['data-0.img', 'data-1.img', 'data-2.img', 'parity.img', 'snapplane.lock']);
      await expect(s.createVolume(group, 4 << 20, { raid: 3 })).rejects.toMatchObject({ code: 'EXISTS' });
    } finally {
      await s.closeAll();
    }
    expect(await readdir(dir)).toEqual(['grp']);
  });

  it('a RAID-4 create killed at random points leaves either no group or a whole one, and never blocks the next create', async () => {
    const rnd = seeded(11);
    const dir = await mkdtemp(join(temp(), 'killed-raid-'));
    const outcomes = { absent: 0, whole: 0 };
    for (let i = 0; i < 10; i++) {
      const group = join(dir, `grp-${i}`);
      const child = spawn(process.execPath, [BIN, 'volume', 'create', group, '--size', '1T', '--raid', '4'], { stdio: 'ignore' });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      // The CLI starts in ~0.2 s and creates a group of 1 TiB members in ~0.1 s here: the kills spread over both.
      setTimeout(() => child.kill('SIGKILL'), 170 + rnd() * 200);
      await exited;
      if ((await readdir(dir)).includes(`grp-${i}`)) {
        outcomes.whole++;
      } else {
        outcomes.absent++;
        const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(stateDir(), 'state.json') });
        try {
          await s.createVolume(group, 2 ** 40, { raid: 4 });
        } finally {
          await s.closeAll();
        }
      }
      const v = await Volume.open(group, { cpIntervalMs: 0, openDevice: openDeviceAt });
      try {
        expect((await v.fsck()).issues).toEqual([]);
        expect(v.device.health().members.map((m) => m.state)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
      } finally {
        await v.close();
      }
    }
    expect(outcomes.absent + outcomes.whole).toBe(10);
    // The creates after the kills removed what the killed ones left.
    expect((await readdir(dir)).filter((n) => n.includes('.creating-'))).toEqual([]);
  }, 60_000);

  it('taking a lock removes temporary lock files of dead writers and keeps a running one\'s', async () => {
    const dir = await mkdtemp(join(temp(), 'lock-'));
    const path = join(dir, 'tmps.img');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      await writeFile(`${path}.lock.999999999.tmp`, '{"pid":999999999}');
      await writeFile(`${path}.lock.${child.pid}.tmp`, `{"pid":${child.pid}}`);
      const lock = await VolumeLock.acquire(path);
      await lock.release();
      expect(await readdir(dir)).toEqual([`tmps.img.lock.${child.pid}.tmp`]);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('works where the file system has no hard links (link fails with EPERM, as on FAT or exFAT): create, lock, a second writer refused', async () => {
    const dir = await mkdtemp(join(temp(), 'nolinks-'));
    const path = join(dir, 'x.img');
    const noLinks = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(join(process.cwd(), 'test', 'helpers', 'no-hard-links.mjs')).href}`, SNAPPLANE_HOME: join(stateDir(), 'nolinks') };
    const cli = (...args: string[]): Promise<{ code: number | null; stderr: string }> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [BIN, ...args], { env: noLinks, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (code) => resolve({ code, stderr }));
      });
    expect(await cli('volume', 'create', path, '--size', '16M')).toEqual({ code: 0, stderr: '' });
    expect(await readdir(dir)).toEqual(['x.img']);
    expect((await cli('volume', 'create', path, '--size', '16M')).stderr).toContain('(EXISTS)');
    const held = await VolumeLock.acquire(path);
    try {
      const refused = await cli('put', path, __filename, '/a.ts');
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`is open for writing by process ${process.pid}`);
    } finally {
      await held.release();
    }
    expect(await cli('put', path, __filename, '/a.ts')).toEqual({ code: 0, stderr: '' });
    expect(await readdir(dir)).toEqual(['x.img']);
    const v = await Volume.open(path, { cpIntervalMs: 0, readOnly: true });
    try {
      expect((await v.readdir('/')).map((e) => e.name)).toEqual(['a.ts']);
    } finally {
      await v.close();
    }
    // The preload does take hard links away in those children.
    const linkFails = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ['-e', "require('node:fs/promises').link(process.argv[1], process.argv[1] + '.l').then(() => console.log('linked'), (e) => console.log(e.code))", path], { env: noLinks, stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', () => resolve(out.trim()));
    });
    expect(linkFails).toBe('EPERM');
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

describe('an image file of the wrong size', () => {
  it('says how to give an enlarged or cut image its size back, and that command makes it open again', async () => {
    const path = join(temp(), 'grown.img');
    const v = await Volume.create(path, { sizeBytes: 16 << 20, cpIntervalMs: 0 });
    await v.writeFile('/a', Buffer.from('kept\n'));
    await v.close();
    await truncate(path, 24 << 20);
    const grown = await Volume.open(path).catch((e: unknown) => e);
    expect(grown).toMatchObject({ code: 'BAD_FORMAT' });
    expect((grown as Error).message).toContain(`the image file was enlarged (25165824 bytes; the volume is 16777216), and Snapplane volumes do not grow in place yet: give it its size back with \`truncate -s 16777216 ${path}\``);
    // The way back it names works (the command itself, as a user runs it).
    execFileSync('sh', ['-c', (grown as Error).message.match(/`(truncate -s \d+ [^`]+)`/)![1]!]);
    const back = await Volume.open(path, { readOnly: true });
    expect((await back.readFile('/a')).toString()).toBe('kept\n');
    await back.close();

    await truncate(path, 8 << 20);
    const cut = await Volume.open(path).catch((e: unknown) => e);
    expect(cut).toMatchObject({ code: 'BAD_FORMAT' });
    expect((cut as Error).message).toContain('the image file was cut short (8388608 bytes; the volume is 16777216), so the blocks past its end are gone');
  });
});
