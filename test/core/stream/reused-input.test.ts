import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { planStream, writeStream } from '../../../core/stream/send.js';
import { StreamReader } from '../../../core/stream/reader.js';
import { receiveStream } from '../../../core/stream/receive.js';
import { markReused } from '../../../core/common/reused-memory.js';
import { expectSameTree, pattern, readTree } from '../../helpers/model.js';
import { collect } from '../../helpers/stream-bytes.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-reused-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * The stream's bytes through one buffer that is scribbled over as soon as the next piece is asked for, as a
 * connection's receive slabs are reused (pieces of pseudo-random sizes, so records start and end anywhere in them).
 * `mark`: the buffer's memory is marked reused, as the slabs are.
 */
async function* throughOneBuffer(bytes: Buffer, mark: boolean): AsyncGenerator<Buffer> {
  const buf = Buffer.allocUnsafeSlow(1 << 20);
  if (mark) markReused(buf);
  let seed = 7;
  for (let o = 0; o < bytes.length; ) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const n = Math.min(bytes.length - o, 1 + (seed % buf.length));
    bytes.copy(buf, 0, o, o + n);
    o += n;
    yield buf.subarray(0, n);
    buf.fill(0xa5);
  }
}

async function source(): Promise<{ bytes: Buffer; tree: Awaited<ReturnType<typeof readTree>> }> {
  const src = await Volume.create(join(dir, 'src.img'), { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
  await src.mkdir('/d');
  // Files of several MiB: block records of 256 blocks (1 MiB payloads), besides the small records.
  for (let k = 0; k < 6; k++) await src.writeFile(`/d/f${k}.bin`, pattern((1 + k) * 700_000, k));
  await src.writeFile('/small.txt', Buffer.from('hello\n'));
  await src.createSnapshot('s1');
  const tree = await readTree(src);
  const bytes = await collect(writeStream(src, await planStream(src, 's1')));
  await src.close();
  return { bytes, tree };
}

describe('a stream read from reused memory', () => {
  it('is received whole: the reader copies out what it keeps before it asks for more', async () => {
    const { bytes, tree } = await source();
    const dst = await Volume.create(join(dir, 'dst.img'), { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
    const r = new StreamReader(throughOneBuffer(bytes, true));
    await r.open();
    const report = await receiveStream(dst, r);
    expect(report.snapshots).toEqual(['s1']);
    expectSameTree(await readTree(dst), tree, 'received from reused memory');
    await dst.close();
  });

  it('unmarked, the same scribbling breaks the stream (so the test above exercises the copying)', async () => {
    const { bytes } = await source();
    const dst = await Volume.create(join(dir, 'dst.img'), { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
    const r = new StreamReader(throughOneBuffer(bytes, false));
    await expect(r.open().then(() => receiveStream(dst, r))).rejects.toMatchObject({ code: 'BAD_STREAM' });
    await dst.close();
  });

  it('cut short, says where, as from any other input', async () => {
    const { bytes } = await source();
    const dst = await Volume.create(join(dir, 'dst.img'), { sizeBytes: 64 * 2 ** 20, cpIntervalMs: 0 });
    const cut = bytes.subarray(0, bytes.length - 5000);
    const r = new StreamReader(throughOneBuffer(cut, true));
    await r.open();
    await expect(receiveStream(dst, r)).rejects.toThrow(new RegExp(`stream truncated at byte ${cut.length}`));
    expect((await dst.listSnapshots()).length).toBe(0);
    await dst.close();
  });
});

describe('page-aligned payload rings (kept between receives)', () => {
  /** The memory the first block record's payload sits in, for a reader of `bytes` gathering payloads aligned. */
  async function payloadMemory(r: StreamReader): Promise<ArrayBufferLike> {
    await r.open();
    r.alignPayloads();
    for (;;) {
      const item = await r.next();
      if (item.type === 'blocks') return item.data.buffer;
      if (item.type === 'end') throw new Error('no block record');
    }
  }

  it('are never shared by two readers at once; one given back serves the next', async () => {
    const { bytes } = await source();
    const first = new StreamReader(throughOneBuffer(bytes, true));
    const second = new StreamReader(throughOneBuffer(bytes, true));
    const a = await payloadMemory(first);
    const b = await payloadMemory(second);
    expect(b).not.toBe(a);
    first.releaseBuffers();
    expect(await payloadMemory(new StreamReader(throughOneBuffer(bytes, true)))).toBe(a);
    // The second still reads on in its own ring.
    expect(await payloadMemory(new StreamReader(throughOneBuffer(bytes, true)))).not.toBe(b);
    second.releaseBuffers();
  });
});
