/**
 * Putting one volume in place of another (a full resync's swap): whatever step a crash stopped it at, running it
 * again finishes it, and the volume in place is the replacement with its sidecars, never a mix.
 */
import { describe, expect, it } from 'vitest';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { replaceVolumeFiles } from '../../../core/fs/sidecar.js';
import { Raid4Device } from '../../../core/raid/raid4-device.js';
import { openDeviceAt } from '../../../core/raid/open-device.js';
import { pattern } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const temp = useTempDir('replace');

/** An image volume holding `/who` = `text`, with a mirror marker sidecar naming it. */
async function imageVolume(path: string, text: string): Promise<void> {
  const v = await Volume.create(path, { sizeBytes: 8 << 20, cpIntervalMs: 0 });
  await v.writeFile('/who', Buffer.from(text));
  await v.writeFile('/data', pattern(100_000, text.length));
  await v.close();
  await writeFile(`${path}.mirror.json`, JSON.stringify({ relationship: text }));
}

async function who(path: string): Promise<string> {
  const v = await Volume.open(path, { cpIntervalMs: 0, openDevice: openDeviceAt });
  try {
    return (await v.readFile('/who')).toString();
  } finally {
    await v.close();
  }
}

/** The folder's entries, sorted. */
async function entries(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

describe('a reader while a replacement takes a volume\'s place', () => {
  async function halfSwapped(name: string): Promise<{ old: string; repl: string }> {
    const d = join(temp(), name);
    await mkdir(d);
    const old = join(d, 'm.img');
    const repl = join(d, 'm.img.replacement');
    await imageVolume(old, 'old');
    await imageVolume(repl, 'replacement');
    // The swap's writer holds the lock; it has deleted the old volume and not yet renamed the copy.
    await writeFile(`${old}.lock`, 'held');
    await rm(`${old}.mirror.json`);
    await rm(old);
    return { old, repl };
  }

  it('waits for the copy to take the name, then reads it (no NOT_FOUND in between)', async () => {
    const { old, repl } = await halfSwapped('reader-waits');
    const swap = new Promise<void>((r) => setTimeout(() => void replaceVolumeFiles(old, repl).then(() => r()), 300));
    const v = await Volume.open(old, { readOnly: true, cpIntervalMs: 0 });
    try {
      expect((await v.readFile('/who')).toString()).toBe('replacement');
    } finally {
      await v.close();
    }
    await swap;
  });

  it('after a swap that stopped half-way (its process died), says what the missing volume is waiting for', async () => {
    const { old } = await halfSwapped('reader-told');
    await expect(Volume.open(old, { readOnly: true, cpIntervalMs: 0 })).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/is being replaced by a full resync's copy .*m\.img\.replacement.*the next `mirror update`/) });
  });
});

describe('replaceVolumeFiles', () => {
  // Each crash point: the steps a run got through before it stopped (the order replaceVolumeFiles takes them).
  const oldSidecars = async (d: string): Promise<void> => {
    await rm(join(d, 'm.img.mirror.json'));
    await rm(join(d, 'm.img.destinations.json'));
  };
  const crashes: [string, (dir: string) => Promise<void>][] = [
    ['before anything moved', async () => undefined],
    ['after the old sidecars went', oldSidecars],
    ['after the old image went', async (d) => {
      await oldSidecars(d);
      await rm(join(d, 'm.img'));
    }],
    ['after the new sidecars moved', async (d) => {
      await oldSidecars(d);
      await rm(join(d, 'm.img'));
      await rename(join(d, 'm.img.replacement.mirror.json'), join(d, 'm.img.mirror.json'));
    }],
    ['after the image moved too', async (d) => {
      await oldSidecars(d);
      await rm(join(d, 'm.img'));
      await rename(join(d, 'm.img.replacement.mirror.json'), join(d, 'm.img.mirror.json'));
      await rename(join(d, 'm.img.replacement'), join(d, 'm.img'));
    }],
  ];
  for (const [when, steps] of crashes) {
    it(`image volumes: a run stopped ${when} is finished by the next`, async () => {
      const d = join(temp(), when.replace(/\W+/g, '-'));
      await mkdir(d);
      const old = join(d, 'm.img');
      const repl = join(d, 'm.img.replacement');
      await imageVolume(old, 'old');
      await imageVolume(repl, 'replacement');
      // A sidecar only the old volume has: it must not outlive it.
      await writeFile(`${old}.destinations.json`, '[]');
      // The caller holds the old volume's lock throughout: it is not the replacement's to move or remove.
      await writeFile(`${old}.lock`, 'held');
      await steps(d);
      await replaceVolumeFiles(old, repl);
      expect(await entries(d)).toEqual(['m.img', 'm.img.lock', 'm.img.mirror.json']);
      await rm(`${old}.lock`);
      expect(await who(old)).toBe('replacement');
      expect(JSON.parse(await readFile(`${old}.mirror.json`, 'utf8'))).toEqual({ relationship: 'replacement' });
      // Once done, running it again changes nothing.
      await replaceVolumeFiles(old, repl);
      expect(await who(old)).toBe('replacement');
    });
  }

  it('RAID-4 groups: the folder is replaced whole, its sidecars inside it', async () => {
    const d = temp();
    const old = join(d, 'g');
    const repl = join(d, 'g.replacement');
    for (const [at, text] of [
      [old, 'old group'],
      [repl, 'new group'],
    ]) {
      const dev = await Raid4Device.create(at, 3, 4 << 20);
      await Volume.format(dev);
      await dev.close();
      const v = await Volume.open(at, { cpIntervalMs: 0, openDevice: openDeviceAt });
      await v.writeFile('/who', Buffer.from(text));
      await v.close();
      await writeFile(join(at, 'mirror.json'), JSON.stringify({ relationship: text }));
    }
    await replaceVolumeFiles(old, repl);
    expect((await entries(d)).filter((f) => f.startsWith('g'))).toEqual(['g']);
    expect(await who(old)).toBe('new group');
    expect((await readdir(old)).includes('mirror.json')).toBe(true);
  });
});
