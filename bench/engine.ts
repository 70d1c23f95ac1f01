/** Engine foundation benchmarks (issue: engine foundation). */
import { spawnSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume } from '../core/fs/volume.js';
import { copyFromHost } from '../core/fs/host-copy.js';
import { benchDir, randomFiles, readHostFile, removeDir, writeHostFile } from './lib/files.js';
import { dropCaches, median, shell, time, type Result } from './lib/measure.js';

const MiB = 2 ** 20;

/** Snapshot create on a 2^28-block volume ÷ copying one plane (32 MiB) in memory. */
export async function snapshotCreate(quick: boolean): Promise<Result[]> {
  const dir = await benchDir();
  try {
    const v = await Volume.create(join(dir, 'tera.img'), { sizeBytes: 2 ** 40, cpIntervalMs: 0 });
    await v.writeFile('/data', Buffer.alloc(8 * MiB, 1));
    await v.sync();
    const runs = quick ? 10 : 40;
    const snap: number[] = [];
    for (let i = 0; i < runs; i++) {
      await v.writeFile(`/f${i}`, Buffer.alloc(16384, i));
      await v.sync();
      snap.push(await time(() => v.createSnapshot(`s${i}`)));
    }
    await v.close();
    const src = Buffer.alloc(2 ** 28 / 8, 1);
    const dst = Buffer.alloc(2 ** 28 / 8);
    const copy: number[] = [];
    for (let i = 0; i < 21; i++) copy.push(await time(() => src.copy(dst)));
    const s = median(snap);
    const c = median(copy);
    return [
      {
        name: 'snapshot create, 2^28 blocks (1 TiB sparse)',
        figure: `${s.toFixed(2)} ms vs plane copy ${c.toFixed(2)} ms`,
        ratio: s / c,
        target: 5,
        absoluteOk: s < 100,
        detail: `median of ${runs}; includes the CP (3 fdatasyncs); also < 100 ms: ${s < 100 ? 'yes' : 'no'}`,
      },
    ];
  } finally {
    await removeDir(dir);
  }
}

/** Writing 1 GiB of files (and the final CP) ÷ dd; reading it back ÷ reading an equal host file. */
export async function writeRead(quick: boolean): Promise<Result[]> {
  const dir = await benchDir();
  const total = quick ? 256 * MiB : 1024 * MiB;
  try {
    const src = await randomFiles(dir, 16, total / 16);
    const ddMs = median(
      await Promise.all(
        [0].map(() =>
          time(() => shell(`dd if=/dev/zero of=${join(dir, 'dd.bin')} bs=1M count=${total / MiB} conv=fdatasync`)),
        ),
      ),
    );
    const nodeMs = await time(() => writeHostFile(join(dir, 'host.bin'), total));
    let engineMs = 0;
    const image = join(dir, 'v.img');
    const v = await Volume.create(image, { sizeBytes: total * 2 + 256 * MiB, cpIntervalMs: 0 });
    engineMs = await time(async () => {
      await copyFromHost(v, src, '/src');
      await v.sync();
    });
    const names = (await readdir(src)).sort();
    // Alternate engine and host reads, cold each time, and take medians: this disk is shared and noisy.
    const engineReads: number[] = [];
    const hostReads: number[] = [];
    let cold = false;
    for (let round = 0; round < (quick ? 3 : 5); round++) {
      cold = await dropCaches();
      engineReads.push(
        await time(async () => {
          for (const n of names) for await (const c of v.readChunks(`/src/${n}`, { reuse: true })) void c;
        }),
      );
      await dropCaches();
      hostReads.push(
        await time(async () => {
          for (const n of names) await readHostFile(join(src, n));
        }),
      );
    }
    const engineRead = median(engineReads);
    const hostRead = median(hostReads);
    await v.close();
    return [
      {
        name: `write ${total / MiB} MiB of files incl. final CP`,
        figure: `${engineMs.toFixed(0)} ms vs dd ${ddMs.toFixed(0)} ms`,
        ratio: engineMs / ddMs,
        target: 2,
        detail: `${((total / MiB / engineMs) * 1000).toFixed(0)} MB/s; node write of random data + fdatasync: ${nodeMs.toFixed(0)} ms (ratio ${(engineMs / nodeMs).toFixed(2)}×)`,
      },
      {
        name: `read ${total / MiB} MiB of files back`,
        figure: `${engineRead.toFixed(0)} ms vs host ${hostRead.toFixed(0)} ms`,
        ratio: engineRead / hostRead,
        target: 1.7,
        detail: `${cold ? 'cold cache (dropped before each)' : 'warm cache'}; 4 MiB reads on both sides; engine verifies every block's CRC-32`,
      },
    ];
  } finally {
    await removeDir(dir);
  }
}

/** Resident memory after opening a 1 TiB volume with 64 snapshots, measured in a fresh process. */
export async function residentMemory(quick: boolean): Promise<Result[]> {
  const dir = await benchDir();
  try {
    const image = join(dir, 'tera.img');
    const v = await Volume.create(image, { sizeBytes: 2 ** 40, cpIntervalMs: 0 });
    for (let i = 0; i < 64; i++) {
      await v.writeFile(`/f${i % 8}`, Buffer.alloc(quick ? 65536 : 1 << 20, i));
      await v.createSnapshot(`s${i}`);
    }
    await v.close();
    const script = `import { Volume } from ${JSON.stringify(join(process.cwd(), 'core/fs/volume.ts'))};
const base = process.memoryUsage().rss;
const v = await Volume.open(${JSON.stringify(image)});
const info = await v.info();
console.log(JSON.stringify({ rss: process.memoryUsage().rss, base, snapshots: info.snapshotCount }));
await v.close();`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`memory probe failed: ${child.stderr}`);
    const out = child.stdout;
    const m = JSON.parse(out.trim().split('\n').pop()!) as { rss: number; base: number; snapshots: number };
    const rssMiB = m.rss / MiB;
    return [
      {
        name: 'resident memory after opening 1 TiB with 64 snapshots',
        figure: `${rssMiB.toFixed(0)} MiB`,
        ratio: rssMiB / 300,
        target: 1,
        detail: `target ≤ 300 MiB (ratio is RSS ÷ 300 MiB); the Node + tsx process alone: ${(m.base / MiB).toFixed(0)} MiB; ${m.snapshots} snapshots`,
      },
    ];
  } finally {
    await removeDir(dir);
  }
}
