import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { SnapplaneService } from '../../../core/service/index.js';
import { pattern } from '../../helpers/model.js';

let dir: string;
let s: SnapplaneService;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-tape-'));
  s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
});
afterAll(async () => {
  await s.closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe('tape backup', () => {
  it('spans tapes of fixed capacity, runs the next-tape hook, verifies, restores, and restores one file', async () => {
    const vol = join(dir, 'v.img');
    await s.createVolume(vol, 64 * 2 ** 20);
    const host = join(dir, 'h');
    await mkdir(host);
    for (let i = 0; i < 12; i++) await writeFile(join(host, `f${i}.bin`), pattern(1_500_000, i));
    await s.put(vol, host, '/data');
    await s.snapCreate(vol, 'mon');
    await writeFile(join(host, 'f1.bin'), pattern(700_000, 11));
    await s.put(vol, join(host, 'f1.bin'), '/data/f1.bin');
    await s.snapCreate(vol, 'tue');
    const loaded: string[] = [];
    const t0 = join(dir, 'tapes0');
    const r = await s.sendToTape(vol, 'mon', t0, { tapeSize: 5 * 2 ** 20, beforeTape: async (n, path) => void loaded.push(`load ${n} ${basename(path)}`) });
    expect(r.tapes).toBe(4); // about 17.3 MiB of stream on 5 MiB tapes
    expect((await readdir(t0)).sort()).toEqual(['tape-0001.tap', 'tape-0002.tap', 'tape-0003.tap', 'tape-0004.tap']);
    expect(loaded).toEqual(['load 2 tape-0002.tap', 'load 3 tape-0003.tap', 'load 4 tape-0004.tap']);
    const t1 = join(dir, 'tapes1');
    await s.sendToTape(vol, 'tue - mon', t1, { tapeSize: 2 * 2 ** 20 });
    const v = await s.verify([t0, t1]);
    expect(v.ok).toBe(true);
    const restored = join(dir, 'restored.img');
    await s.restore(restored, [t0, t1]);
    expect((await s.fsck(restored)).clean).toBe(true);
    await s.get({ volume: `${restored}` }, '/data/f1.bin', join(dir, 'f1-restored.bin'));
    expect((await readFile(join(dir, 'f1-restored.bin'))).equals(pattern(700_000, 11))).toBe(true);
    const one = await s.restoreFile([t0, t1], '/data/f3.bin', join(dir, 'f3.bin'));
    expect((await readFile(join(dir, 'f3.bin'))).equals(pattern(1_500_000, 3))).toBe(true);
    // The file (1.5 MB) and the metadata on its path, in whole 1 MiB records: a fraction of the 18 MiB of backups.
    expect(one.backupBytesRead).toBeLessThan(6 * 2 ** 20);
    // A missing tape is named, and a hook that fails stops the backup.
    await rename(join(t0, 'tape-0003.tap'), join(dir, 'away.tap'));
    const bad = await s.verify([t0]);
    expect(bad.ok).toBe(false);
    expect(bad.backups[0].error).toMatch(/tape-0004.tap is tape 4, expected tape 3|not the last tape/);
    const refuse = async (): Promise<void> => {
      throw new Error('operator did not load tape 2');
    };
    await expect(s.sendToTape(vol, 'mon', join(dir, 'tapes2'), { tapeSize: 5 * 2 ** 20, beforeTape: refuse })).rejects.toThrow(/did not load tape 2/);
    await expect(s.sendToTape(vol, 'mon', t1, { tapeSize: 2 * 2 ** 20 })).rejects.toThrow(/already holds tapes/);
  }, 60_000);
});
