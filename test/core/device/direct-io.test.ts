/**
 * Bulk I/O around the page cache (O_DIRECT) on real image files: what lands and what is read is the same as through
 * the cache, both ways round with cached and dirty blocks, and where O_DIRECT is refused (tmpfs, a misaligned
 * buffer) the device falls back without a wrong byte.
 */
import { describe, expect, it, vi } from 'vitest';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ImageFileDevice } from '../../../core/device/image-file-device.js';
import { alignedBufferSet, isPageAligned } from '../../../core/common/aligned-buffers.js';
import { Volume } from '../../../core/fs/volume.js';
import { planStream, writeStream } from '../../../core/stream/send.js';
import { StreamReader } from '../../../core/stream/reader.js';
import { receiveStream } from '../../../core/stream/receive.js';
import { sendToFile } from '../../../core/stream/transfer.js';
import { fileBytes } from '../../../core/stream/backup-source.js';
import { expectSameTree } from '../../helpers/model.js';
import { treeOf } from '../../helpers/replication.js';
import { pattern } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const B = 4096;
const dir = useTempDir('direct');

async function checkDevice(path: string): Promise<void> {
  const dev = await ImageFileDevice.create(path, 2048);
  try {
    // Runs of 1, 256 (one pool buffer) and 300 blocks (more than one).
    const runs: [number, number][] = [
      [3, 1],
      [100, 256],
      [700, 300],
    ];
    for (const [vbn, count] of runs) {
      // Cached first: a direct write must not leave the old cached bytes visible.
      await dev.writeBlocks(vbn, Buffer.alloc(count * B, 0xee));
      expect((await dev.readBlocks(vbn, count))[0]).toBe(0xee);
      const data = randomBytes(count * B);
      await dev.writeBlocksDirect(vbn, data);
      expect((await dev.readBlocks(vbn, count)).equals(data), `buffered read of ${vbn}+${count}`).toBe(true);
      const into = alignedBufferSet(1, Math.ceil((count * B) / 65536) * 65536)[0].subarray(0, count * B);
      expect((await dev.readBlocksDirect(vbn, count, into)).equals(data), `direct read of ${vbn}+${count}`).toBe(true);
    }
    // Dirty in the cache, not flushed: a direct read still sees it.
    const dirty = randomBytes(8 * B);
    await dev.writeBlocks(1500, dirty);
    expect((await dev.readBlocksDirect(1500, 8, alignedBufferSet(1, 65536)[0].subarray(0, 8 * B))).equals(dirty)).toBe(true);
    // A buffer off alignment: O_DIRECT refuses it, the device reads through the cache instead.
    const odd = alignedBufferSet(1, 2 * 65536)[0].subarray(8, 8 + 8 * B);
    expect((await dev.readBlocksDirect(1500, 8, odd)).equals(dirty)).toBe(true);
    await dev.flush();
  } finally {
    await dev.close();
  }
  const reopened = await ImageFileDevice.open(path);
  try {
    expect((await reopened.readBlocks(1500, 8)).length).toBe(8 * B);
  } finally {
    await reopened.close();
  }
}

describe('page-aligned buffers', () => {
  it('are aligned as O_DIRECT needs (a misaligned one is refused), on a file system that has O_DIRECT', async () => {
    const path = join(dir(), 'align.bin');
    await (await open(path, 'w')).close();
    const fh = await open(path, constants.O_RDWR | constants.O_DIRECT).catch(() => null);
    // Without O_DIRECT here (tmpfs on older kernels) the devices fall back, tested below.
    if (!fh) return;
    try {
      const [a, b] = alignedBufferSet(2, 1 << 20);
      a.fill(1);
      b.fill(2);
      expect((await fh.write(a, 0, a.length, 0)).bytesWritten).toBe(a.length);
      expect((await fh.write(b, 0, 4096, 1 << 20)).bytesWritten).toBe(4096);
      await expect(fh.write(a.subarray(8), 0, 4096, 0)).rejects.toMatchObject({ code: 'EINVAL' });
    } finally {
      await fh.close();
    }
  });
});

describe('ImageFileDevice direct I/O', () => {
  it('writes and reads the same bytes as the page cache does, with cached and dirty blocks in the range', async () => {
    await checkDevice(join(dir(), 'direct.img'));
  });

  it('falls back to the page cache on a file system without O_DIRECT (tmpfs)', async () => {
    // /dev/shm is tmpfs on Linux; where it is missing there is no such file system to try.
    if (!existsSync('/dev/shm')) return;
    const path = join('/dev/shm', `snapplane-direct-${process.pid}.img`);
    try {
      await checkDevice(path);
      expect((await stat(path)).size).toBe(2048 * B);
    } finally {
      await rm(path, { force: true });
    }
  });

  it('a send that reads around the page cache produces the same stream as one through it', async () => {
    const path = join(dir(), 'send.img');
    const v = await Volume.create(path, { sizeBytes: 16 << 20, cpIntervalMs: 0 });
    try {
      for (let i = 0; i < 6; i++) await v.writeFile(`/f${i}`, pattern(300_000 + i * 4096, i));
      await v.createSnapshot('s1');
      await v.writeAt('/f2', 8192, pattern(50_000, 9));
      await v.createSnapshot('s2');
      const plan = await planStream(v, 's2 - s1', { now: () => 0 });
      const collect = async (stream: AsyncIterable<Buffer>): Promise<Buffer> => {
        const parts: Buffer[] = [];
        for await (const b of stream) parts.push(Buffer.from(b));
        return Buffer.concat(parts);
      };
      const cached = await collect(writeStream(v, plan, undefined, undefined, false));
      const reads = vi.spyOn(v.device as ImageFileDevice, 'readBlocksDirect');
      const direct = await collect(writeStream(v, plan, undefined, undefined, true, 0));
      expect(plan.sendBlocks).toBeGreaterThan(0);
      expect(reads).toHaveBeenCalled();
      expect(direct.equals(cached)).toBe(true);
    } finally {
      await v.close();
    }
  });

  it('a backup file read around the page cache gives the same bytes', async () => {
    const src = join(dir(), 'backup-src.img');
    const v = await Volume.create(src, { sizeBytes: 48 << 20, cpIntervalMs: 0 });
    const file = join(dir(), 'level0.snap');
    try {
      for (let i = 0; i < 4; i++) await v.writeFile(`/f${i}`, pattern(3_000_000 + i * 777, 40 + i));
      await v.createSnapshot('s1');
      await sendToFile(v, await planStream(v, 's1', { now: () => 0 }), file);
    } finally {
      await v.close();
    }
    const whole = await readFile(file);
    // Several 4 MiB pieces, the last one short and not a whole number of blocks.
    expect(whole.length).toBeGreaterThan(8 << 20);
    expect(whole.length % 4096).not.toBe(0);
    const parts: Buffer[] = [];
    for await (const b of fileBytes(file, 0)) parts.push(Buffer.from(b));
    expect(Buffer.concat(parts).equals(whole)).toBe(true);
  });

  it('a receive that writes around the page cache lands the same volume', async () => {
    const src = join(dir(), 'recv-src.img');
    const v = await Volume.create(src, { sizeBytes: 16 << 20, cpIntervalMs: 0 });
    for (let i = 0; i < 5; i++) await v.writeFile(`/f${i}`, pattern(400_000 + i * 4096, 20 + i));
    await v.createSnapshot('s1');
    const plan = await planStream(v, 's1', { now: () => 0 });
    const dst = join(dir(), 'recv-dst.img');
    const d = await Volume.create(dst, { sizeBytes: 16 << 20, cpIntervalMs: 0 });
    const writes = vi.spyOn(d.device as ImageFileDevice, 'writeBlocksDirect');
    try {
      const reader = new StreamReader(writeStream(v, plan, undefined, undefined, true));
      await reader.open();
      await receiveStream(d, reader, { bulkBlocks: 0 });
      expect(writes).toHaveBeenCalled();
      expect((await d.fsck()).issues).toEqual([]);
      // An incremental of short runs keeps the page cache even when big enough.
      await v.writeAt('/f1', 8192, pattern(20_000, 30));
      await v.writeAt('/f3', 40_960, pattern(9_000, 31));
      await v.createSnapshot('s2');
      const incr = await planStream(v, 's2 - s1', { now: () => 0 });
      expect(incr.sendBlocks / incr.runs.length).toBeLessThan(32);
      writes.mockClear();
      const r2 = new StreamReader(writeStream(v, incr, undefined, undefined, true));
      await r2.open();
      await receiveStream(d, r2, { bulkBlocks: 0 });
      expect(writes).not.toHaveBeenCalled();
    } finally {
      await d.close();
      await v.close();
    }
    expectSameTree(await treeOf(dst, 's1'), await treeOf(src, 's1'), 'received around the page cache');
    expectSameTree(await treeOf(dst, 's2'), await treeOf(src, 's2'), 'then an incremental through it');
  });

  it('a receive of socket-sized pieces gathers its records into aligned memory and writes them from there, landing the same volume', async () => {
    const src = join(dir(), 'sock-src.img');
    const v = await Volume.create(src, { sizeBytes: 32 << 20, cpIntervalMs: 0 });
    for (let i = 0; i < 3; i++) await v.writeFile(`/f${i}`, pattern(5_000_000 + i * 4096, 60 + i));
    await v.createSnapshot('s1');
    const plan = await planStream(v, 's1', { now: () => 0 });
    const dst = join(dir(), 'sock-dst.img');
    const d = await Volume.create(dst, { sizeBytes: 32 << 20, cpIntervalMs: 0 });
    const aligned: boolean[] = [];
    const device = d.device as ImageFileDevice;
    const real = device.writeBlocksDirect.bind(device);
    device.writeBlocksDirect = (vbn: number, data: Buffer): Promise<void> => {
      aligned.push(isPageAligned(data));
      return real(vbn, data);
    };
    // 64 KiB pieces, as a socket hands them over: every 1 MiB record spans several.
    async function* socketPieces(): AsyncGenerator<Buffer> {
      let pending = Buffer.alloc(0);
      for await (const b of writeStream(v, plan, undefined, undefined, true)) {
        pending = Buffer.concat([pending, b]);
        while (pending.length >= 65536) {
          yield Buffer.from(pending.subarray(0, 65536));
          pending = pending.subarray(65536);
        }
      }
      if (pending.length) yield Buffer.from(pending);
    }
    try {
      const reader = new StreamReader(socketPieces());
      await reader.open();
      await receiveStream(d, reader, { bulkBlocks: 0 });
      expect((await d.fsck()).issues).toEqual([]);
    } finally {
      await d.close();
      await v.close();
    }
    // Records read before the receive chose its writes (and any within one piece) are copied; the rest are not.
    expect(aligned.length).toBeGreaterThan(10);
    expect(aligned.filter((a) => a).length).toBeGreaterThan(aligned.length / 2);
    expectSameTree(await treeOf(dst, 's1'), await treeOf(src, 's1'), 'received from aligned records');
  });

  it('a mid-size incremental of long runs writes around the page cache and reads its new tree back from the copies it kept', async () => {
    const src = join(dir(), 'mid-src.img');
    const dst = join(dir(), 'mid-dst.img');
    const v = await Volume.create(src, { sizeBytes: 96 << 20, cpIntervalMs: 0 });
    const d = await Volume.create(dst, { sizeBytes: 96 << 20, cpIntervalMs: 0 });
    try {
      for (let i = 0; i < 3; i++) await v.writeFile(`/f${i}`, pattern(8 << 20, 60 + i));
      await v.createSnapshot('s1');
      const full = new StreamReader(writeStream(v, await planStream(v, 's1', { now: () => 0 }), undefined, undefined, true));
      await full.open();
      await receiveStream(d, full);
      // 18 MiB rewritten in place: new blocks in long runs, and new indirect blocks for every file.
      for (let i = 0; i < 3; i++) await v.writeAt(`/f${i}`, 1 << 20, pattern(6 << 20, 70 + i));
      await v.createSnapshot('s2');
      const incr = await planStream(v, 's2 - s1', { now: () => 0 });
      expect(incr.sendBlocks).toBeGreaterThanOrEqual(4096);
      expect(incr.sendBlocks).toBeLessThan(16384);
      const writes = vi.spyOn(d.device as ImageFileDevice, 'writeBlocksDirect');
      const reads = vi.spyOn(d.device as ImageFileDevice, 'readBlocks');
      const r = new StreamReader(writeStream(v, incr, undefined, undefined, true));
      await r.open();
      await receiveStream(d, r);
      expect(writes).toHaveBeenCalled();
      // Nothing the stream carried was read back from the device: the files' new indirect blocks (at least 4 each)
      // and the inode-file block of the changed inodes came from the kept copies.
      const landed = new Set<number>();
      for (const [vbn, count] of incr.runs) for (let k = 0; k < count; k++) landed.add(vbn + k);
      const readBack = reads.mock.calls.flatMap(([vbn, count]) => Array.from({ length: count as number }, (_, k) => (vbn as number) + k)).filter((x) => landed.has(x));
      expect(readBack).toEqual([]);
      writes.mockRestore();
      reads.mockRestore();
      expect((await d.fsck()).issues).toEqual([]);
    } finally {
      await d.close();
      await v.close();
    }
    expectSameTree(await treeOf(dst, 's2'), await treeOf(src, 's2'), 'incremental written around the page cache');
  });
});
