/**
 * Image streams: a full volume copy ÷ `cp --sparse=always` of the image, an incremental update after 1% of
 * blocks changed ÷ `rsync --inplace --no-whole-file` of the image (and restic, when installed), and restoring a
 * level-0+1+2 chain ÷ the full copy.
 */
import { existsSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { SnapplaneService } from '../core/service/index.js';
import { Volume } from '../core/fs/volume.js';
import { benchDir, randomFiles, removeDir } from './lib/files.js';
import { dropCaches, median, shell, time, type Result } from './lib/measure.js';

const MiB = 2 ** 20;

export async function streams(quick: boolean): Promise<Result[]> {
  // The baselines are other tools' runs: say which one is missing rather than fail on its exit status.
  for (const tool of ['cp', 'rsync']) {
    if (!['/usr/bin', '/bin'].some((d) => existsSync(join(d, tool)))) throw new Error(`the streams benchmark needs ${tool} for its baseline (apt-get install -y ${tool})`);
  }
  const dir = await benchDir();
  const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
  try {
    const used = quick ? 512 * MiB : 4096 * MiB;
    const fileSize = 64 * MiB;
    const src = join(dir, 'src.img');
    await s.createVolume(src, used + used / 4);
    const host = await randomFiles(dir, used / fileSize, fileSize);
    await s.put(src, host, '/data');
    await rm(host, { recursive: true, force: true });
    await s.snapCreate(src, 'l0');
    await s.close(src);
    const rounds = quick ? 1 : 3;

    // Full copy vs cp --sparse=always (plus a sync of the copy, as the engine flushes its own).
    const full: number[] = [];
    const cp: number[] = [];
    for (let r = 0; r < rounds; r++) {
      await rm(join(dir, 'copy.img'), { force: true });
      await rm(join(dir, 'cp.img'), { force: true });
      await dropCaches();
      full.push(await time(async () => {
        await s.copy(src, join(dir, 'copy.img'), 'l0');
        await s.closeAll();
      }));
      // The faster of two back-to-back cp runs: the engine's copy goes around the page cache, and a cp right after
      // it has the host supply its page-cache memory anew, which costs this VM 2× and more.
      const tries: number[] = [];
      for (let k = 0; k < 2; k++) {
        await rm(join(dir, 'cp.img'), { force: true });
        await dropCaches();
        tries.push(await time(() => shell(`cp --sparse=always ${src} ${join(dir, 'cp.img')} && sync ${join(dir, 'cp.img')}`)));
      }
      cp.push(Math.min(...tries));
    }
    // The rsync baseline needs the old copy as a plain file: the image as it was at l0.
    await shell(`cp --sparse=always ${src} ${join(dir, 'old.img')}`);

    // Change 1% of the used blocks in place (4 KiB writes spread over the files), take l1.
    const blocks = used / 4096;
    const changes = Math.floor(blocks / 100);
    const buf = Buffer.alloc(4096);
    const files = used / fileSize;
    let vol = await Volume.open(src, { cpIntervalMs: 0 });
    for (let i = 0; i < changes; i++) {
      randomFillSync(buf);
      await vol.writeAt(`/data/f${i % files}.bin`, ((i * 7919) % (fileSize / 4096)) * 4096, buf);
    }
    await vol.createSnapshot('l1');
    await vol.close();
    await dropCaches();
    const incr = await time(async () => {
      await s.copy(src, join(dir, 'copy.img'), 'l1 - l0');
      await s.closeAll();
    });
    await dropCaches();
    const rsync = await time(() => shell(`rsync -I --inplace --no-whole-file ${src} ${join(dir, 'old.img')}`));

    // restic: the data as a folder, backed up, changed by 1%, backed up again (incremental); informational.
    let resticNote = 'restic not installed';
    if (existsSync('/usr/bin/restic') && !quick) {
      try {
        const folder = join(dir, 'folder');
        await s.get({ volume: src }, '/data', folder);
        const env = `RESTIC_PASSWORD=bench RESTIC_REPOSITORY=${join(dir, 'restic')}`;
        await shell(`${env} restic init -q`);
        await shell(`${env} restic backup -q ${folder}`);
        const fh = await open(join(folder, 'f0.bin'), 'r+');
        for (let i = 0; i < changes; i++) {
          randomFillSync(buf);
          await fh.write(buf, 0, 4096, ((i * 7919) % (used / 4096)) * 4096 % fileSize);
        }
        await fh.close();
        await dropCaches();
        const rt = await time(() => shell(`${env} restic backup -q ${folder}`));
        resticNote = `restic incremental backup of the same data as a folder after the same 1% change: ${rt.toFixed(0)} ms`;
      } catch (e) {
        resticNote = `restic failed: ${(e as Error).message.split('\n')[0]}`;
      }
    }

    // Level chain: l0 full, l1 over l0, l2 over l1; restore all three into a new volume.
    await s.closeAll();
    vol = await Volume.open(src, { cpIntervalMs: 0 });
    for (let i = 0; i < changes; i++) {
      randomFillSync(buf);
      await vol.writeAt(`/data/f${(i * 3) % files}.bin`, ((i * 104729) % (fileSize / 4096)) * 4096, buf);
    }
    await vol.createSnapshot('l2');
    await vol.close();
    const b0 = join(dir, 'b.level0');
    const b1 = join(dir, 'b.level1');
    const b2 = join(dir, 'b.level2');
    await s.sendToFile(src, 'l0', b0);
    await s.sendToFile(src, 'l1 - l0', b1);
    await s.sendToFile(src, 'l2 - l1', b2);
    await s.closeAll();
    const restores: number[] = [];
    for (let r = 0; r < rounds; r++) {
      await rm(join(dir, 'restored.img'), { force: true });
      await dropCaches();
      restores.push(await time(async () => {
        await s.restore(join(dir, 'restored.img'), [b0, b1, b2]);
        await s.closeAll();
      }));
    }
    const f = median(full);
    const c = median(cp);
    const rs = median(restores);
    const gib = (used / 2 ** 30).toFixed(used >= 2 ** 30 ? 0 : 1);
    return [
      { name: `full copy of a volume with ${gib} GiB used`, figure: `${f.toFixed(0)} ms vs cp --sparse=always ${c.toFixed(0)} ms`, ratio: f / c, target: 1.25, detail: `${((used / f) * 1000 / MiB).toFixed(0)} MiB/s; cold cache; median of ${rounds} (copies ${full.map((x) => x.toFixed(0)).join(', ')} ms; cp, each the faster of two back-to-back runs, ${cp.map((x) => x.toFixed(0)).join(', ')} ms); send → receive in one process, blocks at the same VBNs, final CP included` },
      { name: `incremental update after 1% of blocks changed (${changes} blocks)`, figure: `${incr.toFixed(0)} ms vs rsync --inplace ${rsync.toFixed(0)} ms`, ratio: incr / rsync, target: 0.05, detail: `the planes give the changed blocks; rsync reads both images whole. ${resticNote}` },
      { name: 'restore of a level-0 + 1 + 2 chain from backup files', figure: `${rs.toFixed(0)} ms vs full copy ${f.toFixed(0)} ms`, ratio: rs / f, target: 1.3, detail: `chain checked before writing; median of ${rounds}` },
    ];
  } finally {
    await s.closeAll().catch(() => undefined);
    await removeDir(dir);
  }
}
