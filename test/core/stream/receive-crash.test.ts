/**
 * Crash during receive: every write and flush of a receive is recorded; for crash points across the whole log
 * (with random subsets of the unflushed writes, the last possibly torn) the destination must open at its base or
 * at the new state, never between, and fsck clean. A forced receive into a destination changed since its base may
 * also land at the base (its changes discarded) once the whole stream has verified, never anywhere else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { ImageFileDevice } from '../../../core/device/image-file-device.js';
import { planStream, writeStream } from '../../../core/stream/send.js';
import { StreamReader } from '../../../core/stream/reader.js';
import { receiveStream } from '../../../core/stream/receive.js';
import { crashImages, RecordingDevice, rng } from '../../helpers/recording-device.js';
import { expectSameTree, pattern, readTree, type Tree } from '../../helpers/model.js';
import { collect, once } from '../../helpers/stream-bytes.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-rxcrash-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});


async function receiveRecorded(path: string, stream: Buffer, force = false): Promise<RecordingDevice> {
  const dev = new RecordingDevice(await ImageFileDevice.open(path, { readOnly: false }));
  const v = await Volume.openDevice(dev, { cpIntervalMs: 0 });
  const r = new StreamReader(once(stream));
  await r.open();
  await receiveStream(v, r, { force });
  await v.close();
  return dev;
}

async function stateOf(path: string): Promise<{ snaps: string[]; tree: Tree; clean: boolean }> {
  const v = await Volume.open(path, { cpIntervalMs: 0, lock: false });
  const snaps = (await v.listSnapshots()).map((s) => s.name);
  const tree = await readTree(v);
  const clean = (await v.fsck()).issues.length === 0;
  await v.abort();
  return { snaps, tree, clean };
}

describe('crash during receive', () => {
  it('lands at the base or at the new state, never between (full and incremental)', async () => {
    const src = await Volume.create(join(dir, 'src.img'), { sizeBytes: 4 * 2 ** 20, cpIntervalMs: 0 });
    const trees = new Map<string, Tree>();
    for (let d = 1; d <= 4; d++) {
      await src.writeFile(`/f${d}`, pattern(30_000 + d * 7000, d));
      await src.writeFile('/log', Buffer.from(`day ${d}\n`.repeat(200 * d)));
      await src.createSnapshot(`s${d}`);
      trees.set(`s${d}`, await readTree(src));
    }
    const full = await collect(writeStream(src, await planStream(src, 's2 + s1')));
    const incr = await collect(writeStream(src, await planStream(src, 's4 + s3 - s2')));
    await src.close();

    const emptyPath = join(dir, 'empty.img');
    await (await Volume.create(emptyPath, { sizeBytes: 4 * 2 ** 20, cpIntervalMs: 0 })).close();
    const empty = await readFile(emptyPath);
    const emptyTree: Tree = new Map();

    const cases: { name: string; base: Buffer; stream: Buffer; before: { snaps: string[]; tree: Tree }; after: { snaps: string[]; tree: Tree } }[] = [];
    const work = join(dir, 'work.img');
    await writeFile(work, empty);
    const fullLog = await receiveRecorded(work, full);
    const afterFull = await readFile(work);
    cases.push({ name: 'full', base: empty, stream: full, before: { snaps: [], tree: emptyTree }, after: { snaps: ['s1', 's2'], tree: trees.get('s2')! } });
    const incrLog = await receiveRecorded(work, incr);
    cases.push({ name: 'incremental', base: afterFull, stream: incr, before: { snaps: ['s1', 's2'], tree: trees.get('s2')! }, after: { snaps: ['s1', 's2', 's3', 's4'], tree: trees.get('s4')! } });
    // Forced over local changes whose blocks the incremental needs (held, and discarded only after it verified).
    await writeFile(work, afterFull);
    const local = await Volume.open(work, { cpIntervalMs: 0 });
    await local.writeFile('/local', pattern(60_000, 99));
    await local.remove('/f2');
    const localTree = await readTree(local);
    await local.close();
    const changed = await readFile(work);
    const forcedLog = await receiveRecorded(work, incr, true);
    cases.push({ name: 'forced', base: changed, stream: incr, before: { snaps: ['s1', 's2'], tree: localTree }, after: { snaps: ['s1', 's2', 's3', 's4'], tree: trees.get('s4')! } });
    const logs = [fullLog.log, incrLog.log, forcedLog.log];

    const random = rng(4242);
    const probe = join(dir, 'probe.img');
    let atBase = 0;
    let atNew = 0;
    let forcedAtBase = 0;
    // The forced receive's changes stay while the stream's blocks land: crash points after its first block write
    // still find them (a receive that reverted first lost them before a block came).
    const streamVbns = new Set<number>();
    const reader = new StreamReader(once(incr));
    await reader.open();
    for (let item = await reader.next(); item.type !== 'end'; item = await reader.next()) {
      if (item.type === 'blocks') for (let v = item.vbn; v < item.vbn + item.count; v++) streamVbns.add(v);
    }
    const firstBlock = forcedLog.log.findIndex((e) => e.kind === 'write' && streamVbns.has(e.vbn));
    let localAfterBlocks = 0;
    for (let k = 0; k < cases.length; k++) {
      const c = cases[k];
      const log = logs[k];
      expect(log.length).toBeGreaterThan(10);
      const step = Math.max(1, Math.floor(log.length / 60));
      for (let prefix = 0; prefix <= log.length; prefix += prefix + step > log.length && prefix < log.length ? log.length - prefix : step) {
        for (const img of crashImages(c.base, log, prefix, random, 2)) {
          await writeFile(probe, img.image);
          const s = await stateOf(probe);
          const what = `${c.name}: ${img.description}`;
          expect(s.clean, what).toBe(true);
          if (s.snaps.length === c.after.snaps.length) {
            expect(s.snaps, what).toEqual(c.after.snaps);
            expectSameTree(s.tree, c.after.tree, what);
            atNew++;
          } else if (c.name === 'forced' && s.tree.size === trees.get('s2')!.size && !s.tree.has('/local')) {
            // Discarded in the CP before the commit (once the whole stream had verified): exactly the base.
            expect(s.snaps, what).toEqual(c.before.snaps);
            expectSameTree(s.tree, trees.get('s2')!, what);
            forcedAtBase++;
          } else {
            expect(s.snaps, what).toEqual(c.before.snaps);
            expectSameTree(s.tree, c.before.tree, what);
            if (c.name === 'forced' && prefix > firstBlock) localAfterBlocks++;
            atBase++;
          }
        }
        if (prefix === log.length) break;
      }
    }
    // Both outcomes occur: the probe really crosses the commit.
    expect(atBase).toBeGreaterThan(10);
    expect(atNew).toBeGreaterThan(2);
    expect(forcedAtBase).toBeGreaterThan(0);
    expect(firstBlock).toBeGreaterThanOrEqual(0);
    expect(localAfterBlocks).toBeGreaterThan(5);
  }, 300_000);
});
