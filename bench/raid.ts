/** RAID-4 benchmarks: sequential read on a 4+1 group vs a single image, degraded vs healthy, rebuild vs dd. */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume } from '../core/fs/volume.js';
import { copyFromHost } from '../core/fs/host-copy.js';
import { Raid4Device } from '../core/raid/raid4-device.js';
import { openDeviceAt } from '../core/raid/open-device.js';
import { benchDir, randomFiles, removeDir } from './lib/files.js';
import { dropCaches, median, shell, time, type Result } from './lib/measure.js';

const MiB = 2 ** 20;

async function readAll(v: Volume, names: string[]): Promise<number> {
  return time(async () => {
    for (const n of names) for await (const c of v.readChunks(`/src/${n}`, { reuse: true })) void c;
  });
}

export async function raid(quick: boolean): Promise<Result[]> {
  const dir = await benchDir();
  const total = quick ? 256 * MiB : 1024 * MiB;
  try {
    const src = await randomFiles(dir, 8, total / 8);
    const names = (await readdir(src)).sort();
    const single = await Volume.create(join(dir, 'single.img'), { sizeBytes: total + 256 * MiB, cpIntervalMs: 0 });
    await copyFromHost(single, src, '/src');
    await single.close();
    const group = join(dir, 'grp');
    // The rebuild figure is for a 1 GiB member: the group holds 4 GiB, a quarter of it the files read above.
    const memberBytes = quick ? 256 * MiB : 1024 * MiB;
    const dev = await Raid4Device.create(group, 4, memberBytes);
    await Volume.format(dev);
    await dev.close();
    const open = (readOnly = false): Promise<Volume> => Volume.open(group, { cpIntervalMs: 0, openDevice: openDeviceAt, readOnly });
    const g = await open();
    await copyFromHost(g, src, '/src');
    await g.close();

    // This machine's disk swings by half between runs: three cold reads of each, alternated, and their medians.
    const singles: number[] = [];
    const healthies: number[] = [];
    let cold = false;
    for (let round = 0; round < 3; round++) {
      const s = await Volume.open(join(dir, 'single.img'), { readOnly: true });
      await dropCaches();
      singles.push(await readAll(s, names));
      await s.close();
      const healthy = await open(true);
      cold = await dropCaches();
      healthies.push(await readAll(healthy, names));
      await healthy.close();
    }
    const singleMs = median(singles);
    const healthyMs = median(healthies);
    await rm(join(group, 'data-1.img'));
    const degraded = await open(true);
    await dropCaches();
    const degradedMs = await readAll(degraded, names);
    await degraded.close();

    // Rebuild the missing member: only stripes that hold data are read and written (a quarter of this member).
    const w = await open();
    const rdev = w.device as Raid4Device;
    await w.exclusive(() => rdev.beginReplace(1, 'data-1b.img'));
    await dropCaches();
    let rebuilt = 0;
    const rebuildMs = await time(async () => {
      for (;;) {
        const step = await w.exclusive(() => rdev.rebuildStep(4096, (vbn, count) => w.holdsData(vbn, count)));
        rebuilt += step.rebuilt;
        if (step.complete) break;
      }
    });
    const memberMiB = (rdev.stripeCount * 4096) / MiB;
    await w.close();
    const ddMs = await time(() =>
      shell(`dd if=/dev/zero of=${join(dir, 'dd.bin')} bs=1M count=${Math.round(memberMiB)} conv=fdatasync`),
    );
    return [
      {
        name: `sequential read ${total / MiB} MiB, RAID-4 4+1 vs single image`,
        figure: `${healthyMs.toFixed(0)} ms vs ${singleMs.toFixed(0)} ms`,
        ratio: healthyMs / singleMs,
        target: 1.2,
        detail: `medians of 3 alternated runs (group ${healthies.map((x) => x.toFixed(0)).join(', ')} ms; single ${singles.map((x) => x.toFixed(0)).join(', ')} ms); ${cold ? 'cold' : 'warm'} cache; members on one disk`,
      },
      {
        name: 'degraded read (one data member missing) vs healthy',
        figure: `${degradedMs.toFixed(0)} ms vs ${healthyMs.toFixed(0)} ms`,
        ratio: degradedMs / healthyMs,
        target: 2,
        detail: 'every stripe read from the 4 remaining members, XOR in WebAssembly SIMD',
      },
      {
        name: `rebuild a ${memberMiB.toFixed(0)} MiB member vs dd of the same size`,
        figure: `${rebuildMs.toFixed(0)} ms vs ${ddMs.toFixed(0)} ms`,
        ratio: rebuildMs / ddMs,
        target: 2,
        detail: `online rebuild in 16 MiB steps under the volume lock; ${rebuilt} of ${rdev.stripeCount} stripes hold data and were rebuilt (${((rebuilt * 4096) / MiB).toFixed(0)} MiB)`,
      },
    ];
  } finally {
    await removeDir(dir);
  }
}
