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
import { SnapplaneError } from '../../../core/common/errors.js';
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

/** Counts the device reads of a wrapped device; a read that covers `bad` fails like a bad sector. */
function counting(inner: BlockDevice, bad = -1): { device: BlockDevice; reads: () => number } {
  let reads = 0;
  const device = Object.create(inner) as BlockDevice;
  device.readBlocks = (vbn: number, count: number, into?: Buffer) => {
    reads++;
    if (bad >= vbn && bad < vbn + count) return Promise.reject(new SnapplaneError('IO', `read error at VBN ${bad}`, { vbn: bad }));
    return inner.readBlocks(vbn, count, into);
  };
  return { device, reads: () => reads };
}

/** A volume whose snapshot s1 is many one-block runs with one-block gaps; returns its path and s1's tree. */
async function fragmented(): Promise<{ path: string; tree: Awaited<ReturnType<typeof readTree>> }> {
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
  return { path, tree };
}

async function receiveInto(path: string, bytes: Buffer, tree: Awaited<ReturnType<typeof readTree>>): Promise<void> {
  const dst = await Volume.create(path, { sizeBytes: 32 * 2 ** 20, cpIntervalMs: 0 });
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
}

describe('sender reads', () => {
  it('reads a snapshot of many short runs in few device reads, and the stream round-trips unchanged', async () => {
    const { path, tree } = await fragmented();
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
    await receiveInto(join(dir, 'dst.img'), bytes, tree);
  });

  it('does not fail on an unreadable block in a gap it reads over, and still fails on one it needs', async () => {
    const { path, tree } = await fragmented();
    const probe = await Volume.open(path, { readOnly: true, cpIntervalMs: 0 });
    const runs = (await planStream(probe, 's1')).runs;
    await probe.close();
    const k = runs.findIndex((r, i) => i + 1 < runs.length && runs[i + 1][0] > r[0] + r[1]);
    const gap = runs[k][0] + runs[k][1];
    const send = async (bad: number): Promise<Buffer> => {
      const { device } = counting(await ImageFileDevice.open(path, { readOnly: true }), bad);
      const v = await Volume.openDevice(device, { readOnly: true, cpIntervalMs: 0 });
      try {
        const plan = await planStream(v, 's1');
        const parts: Buffer[] = [];
        for await (const b of writeStream(v, plan)) parts.push(Buffer.from(b));
        return Buffer.concat(parts);
      } finally {
        await v.close();
      }
    };
    await receiveInto(join(dir, 'dst.img'), await send(gap), tree);
    await expect(send(runs[k][0])).rejects.toMatchObject({ code: 'IO', vbn: runs[k][0] });
  });
});
