/**
 * A block write that fails during a receive (a full host disk, an I/O error) while the writes after it land: the
 * resume point the receive keeps must not pass the failed record, or the resumed receive would commit a volume with
 * blocks that never arrived. For a failure at every operation of a receive, the resume from its token must give
 * exactly the source snapshot, fsck clean.
 */
import { copyFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Volume } from '../../../core/fs/volume.js';
import { ImageFileDevice } from '../../../core/device/image-file-device.js';
import { planStream, writeStream } from '../../../core/stream/send.js';
import { StreamReader } from '../../../core/stream/reader.js';
import { decodeResumeToken, readResumeToken, receiveStream } from '../../../core/stream/receive.js';
import { FaultyDevice } from '../../helpers/faulty-device.js';
import { expectSameTree, pattern, readTree, type Tree } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { collect, once } from '../../helpers/stream-bytes.js';

const temp = useTempDir('receive-write-error');


/** Receives `stream` into the image at `path` through a device that fails its operation `failAt` (once). */
async function receiveFailing(path: string, stream: Buffer, failAt: number): Promise<{ failed: boolean; operations: number }> {
  const dev = new FaultyDevice(await ImageFileDevice.open(path, { readOnly: false }), failAt, false);
  const v = await Volume.openDevice(dev, { cpIntervalMs: 0 }).catch(() => null);
  if (!v) {
    await dev.close();
    return { failed: true, operations: dev.operations };
  }
  const r = new StreamReader(once(stream));
  await r.open();
  try {
    await receiveStream(v, r);
    await v.close();
    return { failed: false, operations: dev.operations };
  } catch {
    await v.abort();
    return { failed: true, operations: dev.operations };
  }
}

describe('a receive whose block write fails while later ones land', () => {
  it('resumes from before the failed record, never past it', async () => {
    const src = await Volume.create(join(temp(), 'src.img'), { sizeBytes: 16 * 2 ** 20, cpIntervalMs: 0 });
    // Records of up to 256 blocks: several of them, so writes overlap.
    await src.writeFile('/a.bin', pattern(5 * 2 ** 20 + 12_345, 1));
    await src.writeFile('/b.bin', pattern(700_000, 2));
    await src.createSnapshot('s1');
    const plan = await planStream(src, 's1', { now: () => 0 });
    const full = await collect(writeStream(src, plan));
    const expected: Tree = await readTree(src);

    const empty = join(temp(), 'empty.img');
    await (await Volume.create(empty, { sizeBytes: 16 * 2 ** 20, cpIntervalMs: 0 })).close();
    const work = join(temp(), 'work.img');
    await copyFile(empty, work);
    const clean = await receiveFailing(work, full, Number.MAX_SAFE_INTEGER);
    expect(clean.failed).toBe(false);

    let resumed = 0;
    for (let n = 1; n <= clean.operations; n++) {
      await copyFile(empty, work);
      await rm(`${work}.receive-token.json`, { force: true });
      const { failed } = await receiveFailing(work, full, n);
      if (!failed) continue;
      const token = await readResumeToken(work);
      const v = await Volume.open(work, { cpIntervalMs: 0 });
      // A flush that failed after the commit's fsinfo was written: the receive had landed (a crash there lands either way).
      const landed = v.snapshots.list().length > 0;
      if (!landed) {
        if (token === null) {
          await v.close();
          continue;
        }
        resumed++;
        const rest = await collect(writeStream(src, await planStream(src, 's1', { now: () => 0, resume: decodeResumeToken(token) })));
        const r = new StreamReader(once(rest));
        await r.open();
        await receiveStream(v, r);
      }
      const tree = await readTree(v);
      const report = await v.fsck();
      await v.close();
      expect({ n, issues: report.issues.map((i) => i.message).slice(0, 3) }).toEqual({ n, issues: [] });
      expectSameTree(tree, expected, `resumed after a failed operation ${n}`);
    }
    // Failures in the block phase leave tokens to resume from.
    expect(resumed).toBeGreaterThan(3);
    await src.close();
  });
});
