/** Test data for benchmarks: incompressible host files and temp folders. */
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

/** A fresh temp folder (on the same disk as the images). */
export function benchDir(): Promise<string> {
  return mkdtemp(join(process.env.SNAPPLANE_BENCH_DIR ?? tmpdir(), 'snapplane-bench-'));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Writes `count` files of `bytes` random bytes into `dir`/src; returns the folder. */
export async function randomFiles(dir: string, count: number, bytes: number): Promise<string> {
  const src = join(dir, 'src');
  await mkdir(src, { recursive: true });
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let i = 0; i < count; i++) {
    const fh = await open(join(src, `f${i}.bin`), 'w');
    for (let done = 0; done < bytes; done += buf.length) {
      randomFillSync(buf);
      await fh.write(buf, 0, Math.min(buf.length, bytes - done));
    }
    await fh.close();
  }
  return src;
}

/** Reads a host file start to end through one reused buffer (the baseline for engine reads). */
export async function readHostFile(path: string, chunk = 4 << 20): Promise<number> {
  const fh = await open(path, 'r');
  const buf = Buffer.allocUnsafe(chunk);
  let n = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, null);
    if (bytesRead === 0) break;
    n += bytesRead;
  }
  await fh.close();
  return n;
}

/** Writes `bytes` from a reused random buffer to a new file and fdatasyncs it (a fair baseline for the engine's writes). */
export async function writeHostFile(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  const buf = Buffer.allocUnsafe(1 << 20);
  randomFillSync(buf);
  for (let done = 0; done < bytes; done += buf.length) await fh.write(buf, 0, Math.min(buf.length, bytes - done));
  await fh.datasync();
  await fh.close();
}
