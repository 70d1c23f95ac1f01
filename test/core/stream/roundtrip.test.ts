import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { planStream, streamSize, writeStream } from '../../../core/stream/send.js';
import { StreamReader } from '../../../core/stream/reader.js';
import { receiveStream } from '../../../core/stream/receive.js';
import { expectSameTree, pattern, readTree, type Tree } from '../../helpers/model.js';
import { collect } from '../../helpers/stream-bytes.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-stream-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});


async function* chunked(b: Buffer, size = 65536): AsyncGenerator<Buffer> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, o + size);
}

/** Builds the seed's June history: five days, each changing some files, a snapshot at the end of each. */
async function juneHistory(v: Volume): Promise<Map<string, Tree>> {
  const trees = new Map<string, Tree>();
  await v.mkdir('/docs');
  for (let d = 1; d <= 5; d++) {
    await v.writeFile(`/docs/day${d}.bin`, pattern(20_000 + d * 5000, d));
    await v.writeFile('/docs/log.txt', Buffer.from(`day ${d}\n`.repeat(d * 100)));
    if (d === 3) await v.remove('/docs/day1.bin');
    if (d === 4) await v.writeFile('/big.bin', pattern(300_000, 44));
    await v.createSnapshot(`June${d}`);
    trees.set(`June${d}`, await readTree(v));
  }
  return trees;
}

async function sendBytes(v: Volume, expr: string, opts = {}): Promise<Buffer> {
  const plan = await planStream(v, expr, opts);
  const bytes = await collect(writeStream(v, plan));
  if (!('codec' in opts)) expect(bytes.length).toBe(streamSize(plan).bytes);
  return bytes;
}

async function receiveBytes(dst: Volume, bytes: Buffer): Promise<void> {
  const r = new StreamReader(chunked(bytes));
  await r.open();
  await receiveStream(dst, r);
}

describe('image streams', () => {
  it('level 0 then level 1: June3 + June2 + June1, then June5 + June4 - June3', async () => {
    const src = await Volume.create(join(dir, 'src.img'), { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
    const trees = await juneHistory(src);
    const level0 = await sendBytes(src, 'June3 + June2 + June1');
    const dst = await Volume.create(join(dir, 'dst.img'), { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
    await receiveBytes(dst, level0);
    expect((await dst.listSnapshots()).map((s) => s.name)).toEqual(['June1', 'June2', 'June3']);
    expectSameTree(await readTree(dst), trees.get('June3')!, 'current state after level 0');
    for (const n of ['June1', 'June2']) {
      const snap = await Volume.open(join(dir, 'dst.img'), { snapshot: n });
      expectSameTree(await readTree(snap), trees.get(n)!, n);
      await snap.close();
    }
    let report = await dst.fsck();
    expect(report.issues).toEqual([]);
    const level1 = await sendBytes(src, 'June5 + June4 - June3');
    expect(level1.length).toBeLessThan(level0.length + 400_000);
    await receiveBytes(dst, level1);
    expect((await dst.listSnapshots()).map((s) => s.name)).toEqual(['June1', 'June2', 'June3', 'June4', 'June5']);
    expectSameTree(await readTree(dst), trees.get('June5')!, 'current state after level 1');
    report = await dst.fsck();
    expect(report.issues).toEqual([]);
    // The destination is a working volume: it takes writes and snapshots.
    await dst.writeFile('/after.txt', Buffer.from('x'));
    await dst.createSnapshot('local');
    expect((await dst.fsck()).issues).toEqual([]);
    await dst.close();
    await src.close();
  });

  it('lz4 streams round-trip and are smaller for compressible data', async () => {
    const src = await Volume.create(join(dir, 'src.img'), { sizeBytes: 32 * 2 ** 20, cpIntervalMs: 0 });
    await src.writeFile('/zeros.bin', Buffer.alloc(2 * 2 ** 20, 'a'));
    await src.createSnapshot('s1');
    const plain = await sendBytes(src, 's1');
    const packed = await sendBytes(src, 's1', { codec: 'lz4' });
    expect(packed.length).toBeLessThan(plain.length / 10);
    const dst = await Volume.create(join(dir, 'dst.img'), { sizeBytes: 32 * 2 ** 20, cpIntervalMs: 0 });
    await receiveBytes(dst, packed);
    expect((await dst.readFile('/zeros.bin')).equals(Buffer.alloc(2 * 2 ** 20, 'a'))).toBe(true);
    expect((await dst.fsck()).issues).toEqual([]);
    await dst.close();
    await src.close();
  });
});
