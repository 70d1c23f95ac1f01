/**
 * A sender reads runs separated by small gaps with one device read: an aged snapshot of many short runs costs a
 * few reads, and the stream is the same as one read per run would give.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { ImageFileDevice } from '../../../core/device/image-file-device.js';
import type { BlockDevice } from '../../../core/device/block-device.js';
import { planStream, streamSize, writeStream } from '../../../core/stream/send.js';
import { StreamReader } from '../../../core/stream/reader.js';
import { receiveStream } from '../../../core/stream/receive.js';
import { expectSameTree, pattern, readTree } from '../../helpers/model.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-read-groups-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Counts the device reads of a wrapped device. */
function counting(inner: BlockDevice): { device: BlockDevice; reads: () => number } {
  let reads = 0;
  const device = Object.create(inner) as BlockDevice;
  device.readBlocks = (vbn: number, count: number, into?: Buffer) => {
    reads++;
    return inner.readBlocks(vbn, count, into);
  };
  return { device, reads: () => reads };
}

describe('sender reads', () => {
  it('reads a snapshot of many short runs in few device reads, and the stream round-trips unchanged', async () => {
    const path = join(dir, 'src.img');
    const src = await Volume.create(path, { sizeBytes: 32 * 2 ** 20, cpIntervalMs: 0 });
    await src.writeFile('/f.bin', pattern(2 * 2 ** 20, 1));
    await src.createSnapshot('s0');
    // Rewrite every other block in place: the snapshot below keeps the odd ones where they were.
    for (let b = 0; b < 512; b += 2) await src.writeAt('/f.bin', b * 4096, pattern(4096, 1000 + b));
    await src.createSnapshot('s1');
    await src.deleteSnapshot('s0');
    const tree = await readTree(src);
    await src.close();

    const { device, reads } = counting(await ImageFileDevice.open(path, { readOnly: true }));
    const v = await Volume.openDevice(device, { readOnly: true, cpIntervalMs: 0 });
    const plan = await planStream(v, 's1');
    expect(plan.runs.length).toBeGreaterThan(250);
    const before = reads();
    const parts: Buffer[] = [];
    for await (const b of writeStream(v, plan)) parts.push(Buffer.from(b));
    const bytes = Buffer.concat(parts);
    expect(reads() - before).toBeLessThan(plan.runs.length / 8);
    expect(bytes.length).toBe(streamSize(plan).bytes);
    await v.close();

    const dst = await Volume.create(join(dir, 'dst.img'), { sizeBytes: 32 * 2 ** 20, cpIntervalMs: 0 });
    const reader = new StreamReader(
      (async function* () {
        yield bytes;
      })(),
    );
    await reader.open();
    await receiveStream(dst, reader);
    expectSameTree(await readTree(dst), tree, 'received s1');
    expect((await dst.fsck()).issues).toEqual([]);
    await dst.close();
  });
});
