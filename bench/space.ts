/** Space accounting: bytes freed by deleting 32 snapshots on a 2^28-block volume vs reading those planes once. */
import { join } from 'node:path';
import { Volume } from '../core/fs/volume.js';
import { benchDir, removeDir } from './lib/files.js';
import { median, time, type Result } from './lib/measure.js';

export async function space(quick: boolean): Promise<Result[]> {
  const dir = await benchDir();
  try {
    const v = await Volume.create(join(dir, 'tera.img'), { sizeBytes: 2 ** 40, cpIntervalMs: 0 });
    // Spread data over the whole VBN range so every plane chunk is populated, then take 40 snapshots.
    const names: string[] = [];
    for (let i = 0; i < 40; i++) {
      await v.writeFile(`/f${i % 10}`, Buffer.alloc(quick ? 64 * 1024 : 512 * 1024, i));
      await v.createSnapshot(`s${i}`);
      names.push(`s${i}`);
    }
    const set = names.slice(4, 36);
    const runs: number[] = [];
    for (let r = 0; r < (quick ? 3 : 7); r++) runs.push(await time(() => v.space(set)));
    await v.close();
    // Floor: reading 32 planes of 2^28 bits (32 MiB each) from memory once.
    const planes = Array.from({ length: 32 }, () => new Uint32Array(2 ** 28 / 32).fill(0x5555));
    const floor: number[] = [];
    for (let r = 0; r < 5; r++) {
      floor.push(
        await time(() => {
          let x = 0;
          for (const p of planes) for (let i = 0; i < p.length; i += 1) x ^= p[i];
          return x;
        }),
      );
    }
    const s = median(runs);
    const f = median(floor);
    return [
      {
        name: 'space freed by deleting 32 snapshots, 2^28 blocks',
        figure: `${s.toFixed(0)} ms vs reading 32 planes ${f.toFixed(0)} ms`,
        ratio: s / f,
        target: 3,
        detail: 'planes are sparse on this volume (only populated chunks are stored and read), so the engine touches far less than 32 × 32 MiB',
      },
    ];
  } finally {
    await removeDir(dir);
  }
}
