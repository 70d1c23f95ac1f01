/**
 * The sender checks every block it sends against the CRC-32 in its pointer: a corrupt block of the source fails a
 * backup, a copy or a replication with CHECKSUM naming the VBN before the block goes out, and the destination stays
 * as it was. A RAID-4 source rebuilds such a block from parity instead. The check's walk of the metadata stays
 * proportional to the change for an incremental.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SnapplaneService } from '../../../core/service/index.js';
import { Volume } from '../../../core/fs/volume.js';
import { openView } from '../../../core/fs/snapshot-view.js';
import { readPointer } from '../../../core/fs/format.js';
import { ImageFileDevice } from '../../../core/device/image-file-device.js';
import { openDeviceAt } from '../../../core/raid/open-device.js';
import { MEMBER_DATA_START } from '../../../core/raid/member-label.js';
import { planStream, writeStream } from '../../../core/stream/send.js';
import { SendChecks } from '../../../core/stream/send-checks.js';
import { SnapplaneError } from '../../../core/common/errors.js';
import type { BlockDevice } from '../../../core/device/block-device.js';
import { expectSameTree, pattern } from '../../helpers/model.js';
import { snapshots, treeOf } from '../../helpers/replication.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { collect } from '../../helpers/stream-bytes.js';

const tmp = useTempDir('send-verify');
let template: string;
let s: SnapplaneService | null = null;
/** The VBNs in s2 of /big.bin's block 50 (a data block s2 rewrote) and of its indirect block (rewritten with it). */
let dataVbn = 0;
let indirectVbn = 0;

function service(): SnapplaneService {
  s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(tmp(), `state-${Math.random()}.json`) });
  return s;
}

afterEach(async () => {
  await s?.closeAll();
  s = null;
});

/** Flips one byte of block `vbn` of an image file. */
async function flip(path: string, vbn: number, at = 100): Promise<void> {
  const fh = await open(path, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, vbn * 4096 + at);
  b[0] ^= 0xa5;
  await fh.write(b, 0, 1, vbn * 4096 + at);
  await fh.close();
}

/** A fresh copy of the template source, with its corrupt block (if any). */
async function source(name: string, corrupt?: number): Promise<string> {
  const path = join(tmp(), `${name}.img`);
  await copyFile(template, path);
  if (corrupt !== undefined) await flip(path, corrupt);
  return path;
}

beforeAll(async () => {
  process.env.SNAPPLANE_HOME = join(tmp(), 'home');
  template = join(tmp(), 'template.img');
  const v = await Volume.create(template, { sizeBytes: 16 << 20, cpIntervalMs: 0 });
  await v.writeFile('/small.bin', pattern(20_000, 1));
  await v.writeFile('/big.bin', pattern(400 * 1024, 2));
  await v.createSnapshot('s1');
  await v.writeAt('/big.bin', 50 * 4096, pattern(4096, 3));
  await v.writeFile('/new.bin', pattern(30_000, 4));
  await v.createSnapshot('s2');
  const big = (await openView(v, 's2').ns.resolve('/big.bin')).inode;
  expect(big.height).toBe(1);
  indirectVbn = big.pointers[0].vbn;
  dataVbn = readPointer(await v.ctx.readVerified(big.pointers[0], 'big'), 50).vbn;
  await v.close();
});

const cases = [
  ['a data block', () => dataVbn],
  ['an indirect block', () => indirectVbn],
] as const;

/** A device opener that counts the device reads of the volumes it opens (calls, and blocks read). */
function countingReads(): { open: (p: string, readOnly: boolean) => Promise<BlockDevice>; calls: number; blocks: number; reset(): void } {
  const counted = {
    calls: 0,
    blocks: 0,
    reset(): void {
      counted.calls = 0;
      counted.blocks = 0;
    },
    async open(p: string, readOnly: boolean): Promise<BlockDevice> {
      const d = await ImageFileDevice.open(p, { readOnly });
      const inner = d.readBlocks.bind(d);
      d.readBlocks = (vbn, count, into) => {
        counted.calls++;
        counted.blocks += count;
        return inner(vbn, count, into);
      };
      return d;
    },
  };
  return counted;
}

/** Expects `p` to fail with the sender's CHECKSUM naming `vbn` and /big.bin. */
async function expectChecksum(p: Promise<unknown>, vbn: number): Promise<void> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(SnapplaneError);
  const err = e as SnapplaneError;
  expect(err.code, err.message).toBe('CHECKSUM');
  expect(err.vbn).toBe(vbn);
  expect(err.message).toContain(`at VBN ${vbn} `);
  expect(err.message).toContain(`'/big.bin' in snapshot 's2'`);
  expect(err.path).toBe('/big.bin');
  expect(err.snapshot).toBe('s2');
}

describe('the sender checks each block against its pointer', () => {
  for (const [what, vbn] of cases) {
    it(`backup to a file: a flipped byte in ${what} fails the full and the incremental backup, and no backup file is left`, async () => {
      const src = await source(`backup-${vbn()}`, vbn());
      const svc = service();
      const full = join(tmp(), `full-${vbn()}.stream`);
      await expectChecksum(svc.sendToFile(src, 's2 + s1', full), vbn());
      const incr = join(tmp(), `incr-${vbn()}.stream`);
      await expectChecksum(svc.sendToFile(src, 's2 - s1', incr), vbn());
      const left = (await readdir(tmp())).filter((f) => f.endsWith('.stream') || f.endsWith('.partial'));
      expect(left).toEqual([]);
    });

    it(`copy: a flipped byte in ${what} fails the incremental copy; the destination stays at s1`, async () => {
      const clean = await source(`copy-src-${vbn()}`);
      const dst = join(tmp(), `copy-dst-${vbn()}.img`);
      const svc = service();
      await svc.copy(clean, dst, 's1');
      await svc.closeAll();
      await flip(clean, vbn());
      await expectChecksum(svc.copy(clean, dst, 's2 - s1'), vbn());
      await svc.closeAll();
      expect((await snapshots(dst)).map((x) => x.name)).toEqual(['s1']);
      expectSameTree(await treeOf(dst, 's1'), await treeOf(template, 's1'), 'destination s1');
      expect((await svc.fsck(dst)).clean).toBe(true);
    });

    it(`replicate to a local volume: a flipped byte in ${what} fails the update; the destination stays at the old master`, async () => {
      const src = await source(`repl-src-${vbn()}`);
      const dst = join(tmp(), `repl-dst-${vbn()}.img`);
      const svc = service();
      await svc.masterMark(src, 's1', true);
      await svc.replicate(src, dst);
      await svc.masterMark(src, 's2', true);
      await svc.closeAll();
      await flip(src, vbn());
      await expectChecksum(svc.replicate(src, dst), vbn());
      await svc.closeAll();
      expect((await snapshots(dst)).map((x) => x.name)).toEqual(['s1']);
      expectSameTree(await treeOf(dst, 's1'), await treeOf(template, 's1'), 'destination s1');
      expect((await svc.fsck(dst)).clean).toBe(true);
    });
  }

  it('a full copy of a corrupt source commits nothing: the new destination holds no snapshot', async () => {
    const src = await source('full-src', dataVbn);
    const dst = join(tmp(), 'full-dst.img');
    const svc = service();
    await expectChecksum(svc.copy(src, dst, 's2'), dataVbn);
    await svc.closeAll();
    const left = await snapshots(dst).catch(() => []);
    expect(left).toEqual([]);
  });

  it('a clean incremental still passes, and its walk reads only the changed metadata', async () => {
    // 120 files of 120 KiB: each has an indirect block; s2 changes one block of one of them.
    const path = join(tmp(), 'many.img');
    const v = await Volume.create(path, { sizeBytes: 48 << 20, cpIntervalMs: 0 });
    for (let i = 0; i < 120; i++) await v.writeFile(`/f${i}.bin`, pattern(120 * 1024, i));
    await v.createSnapshot('s1');
    await v.writeAt('/f7.bin', 3 * 4096, pattern(4096, 999));
    await v.createSnapshot('s2');
    await v.close();

    const counted = countingReads();
    const ro = await Volume.open(path, { readOnly: true, openDevice: counted.open });
    try {
      const full = await planStream(ro, 's2 + s1');
      counted.reset();
      const fullChecks = await SendChecks.prepare(ro, ro.snapshots.list().filter((e) => e.name === 's2' || e.name === 's1').sort((a, b) => a.generation - b.generation), full.image);
      const fullReads = counted.blocks;
      // Every data and indirect block of the files, the inode file and the block map are known.
      expect(fullChecks.expected.count).toBeGreaterThan(120 * 31);
      expect(fullReads).toBeGreaterThan(120);

      const incr = await planStream(ro, 's2 - s1');
      counted.reset();
      const checks = await SendChecks.prepare(ro, ro.snapshots.list().filter((e) => e.name === 's2'), incr.image);
      // The changed block, its indirect block, the inode block and the inode file's tree, the block map's changes.
      expect(counted.blocks).toBeLessThan(20);
      expect(checks.expected.count).toBeGreaterThan(3);
      expect(checks.expected.count).toBeLessThanOrEqual(incr.image.count);
    } finally {
      await ro.close();
    }

    const svc = service();
    const dst = join(tmp(), 'many-dst.img');
    await svc.copy(path, dst, 's1');
    await svc.copy(path, dst, 's2 - s1');
    await svc.closeAll();
    expectSameTree(await treeOf(dst, 's2'), await treeOf(path, 's2'), 'destination s2');
    expect((await svc.fsck(dst)).clean).toBe(true);
  });

  it('through the page cache, the walk reads runs of the image between the metadata it needs: fewer reads, the same checksums', async () => {
    // An aged-like change: one block of each of 60 files rewritten, so the rewritten indirect blocks sit among the
    // rewritten data blocks.
    const path = join(tmp(), 'spans.img');
    const v = await Volume.create(path, { sizeBytes: 48 << 20, cpIntervalMs: 0 });
    for (let i = 0; i < 60; i++) await v.writeFile(`/f${i}.bin`, pattern(120 * 1024, i));
    await v.createSnapshot('s1');
    for (let i = 0; i < 60; i++) await v.writeAt(`/f${i}.bin`, (i % 30) * 4096, pattern(4096, 1000 + i));
    await v.createSnapshot('s2');
    await v.close();
    const counted = countingReads();
    const ro = await Volume.open(path, { readOnly: true, openDevice: counted.open });
    try {
      const plan = await planStream(ro, 's2 - s1');
      const top = ro.snapshots.list().filter((e) => e.name === 's2');
      counted.reset();
      const blockwise = await SendChecks.prepare(ro, top, plan.image);
      const blockwiseCalls = counted.calls;
      counted.reset();
      const spanning = await SendChecks.prepare(ro, top, plan.image, undefined, true);
      const spanningCalls = counted.calls;
      expect(blockwiseCalls).toBeGreaterThanOrEqual(60);
      expect(spanningCalls).toBeLessThan(blockwiseCalls / 4);
      const known = (c: SendChecks): string[] => [...c.expected.known.chunkIndexes()].map((i) => `${i}:${Buffer.from(c.expected.known.chunk(i)!.buffer).toString('hex')}`);
      expect(spanning.expected.count).toBe(blockwise.expected.count);
      expect(known(spanning)).toEqual(known(blockwise));
      // The same expected checksums: every image block passes both checks, and a changed byte fails both.
      for (const [first, count] of plan.runs) {
        const data = await ro.device.readBlocks(first, count);
        const bad: number[] = [];
        await blockwise.expected.check(first, count, data, async (x) => void bad.push(x));
        await spanning.expected.check(first, count, data, async (x) => void bad.push(x));
        expect(bad).toEqual([]);
        data[5] ^= 1;
        await spanning.expected.check(first, count, data, async (x) => void bad.push(x));
        expect(bad).toEqual(spanning.expected.known.has(first) ? [first] : []);
      }
    } finally {
      await ro.close();
    }
  });

  it('a RAID-4 source rebuilds bad member copies from parity (a data block, and an indirect block the walk reads) and sends the good blocks', async () => {
    const group = join(tmp(), 'group');
    const svc = service();
    await svc.createVolume(group, 16 << 20, { raid: 3 });
    await svc.closeAll();
    const v = await Volume.open(group, { cpIntervalMs: 0, openDevice: openDeviceAt });
    await v.writeFile('/big.bin', pattern(400 * 1024, 5));
    await v.createSnapshot('a');
    const big = (await openView(v, 'a').ns.resolve('/big.bin')).inode;
    const vbn = readPointer(await v.ctx.readVerified(big.pointers[0], 'big'), 20).vbn;
    // Its indirect block too, which the send's walk reads (in another stripe: parity rebuilds one bad copy per stripe).
    const indirect = big.pointers[0].vbn;
    expect(Math.floor(indirect / 3)).not.toBe(Math.floor(vbn / 3));
    await v.close();
    // The blocks' copies on their members (VBN v lives on data member v mod 3, at disk block MEMBER_DATA_START + v / 3).
    for (const bad of [vbn, indirect]) {
      const fh = await open(join(group, `data-${bad % 3}.img`), 'r+');
      await fh.write(pattern(4096, 77), 0, 4096, (MEMBER_DATA_START + Math.floor(bad / 3)) * 4096);
      await fh.close();
    }

    const dst = join(tmp(), 'from-group.img');
    await svc.copy(group, dst, 'a');
    await svc.closeAll();
    expectSameTree(await treeOf(dst, 'a'), new Map([['/big.bin', pattern(400 * 1024, 5)]]), 'destination a');
    expect((await svc.fsck(dst)).clean).toBe(true);
  });

  it('writeStream of a stream whose walk finds nothing to check still sends it (a snapshot of an empty volume)', async () => {
    const path = join(tmp(), 'empty.img');
    const v = await Volume.create(path, { sizeBytes: 8 << 20, cpIntervalMs: 0 });
    await v.createSnapshot('e');
    const bytes = await collect(writeStream(v, await planStream(v, 'e')));
    expect(bytes.length).toBeGreaterThan(0);
    await v.close();
  });
});
