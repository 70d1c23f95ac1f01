import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, rename, open, readdir, cp, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { SnapplaneService } from '../../../core/service/index.js';
import { Volume } from '../../../core/fs/volume.js';
import { Raid4Device } from '../../../core/raid/raid4-device.js';
import { openDeviceAt } from '../../../core/raid/open-device.js';
import { MEMBER_DATA_START } from '../../../core/raid/member-label.js';
import { walkTree } from '../../../core/fs/walk.js';
import { SnapplaneError } from '../../../core/common/errors.js';

let dir: string;
let group: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-raid-'));
  group = join(dir, 'grp');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

async function makeGroup(memberBytes = 8 * 2 ** 20): Promise<Volume> {
  const dev = await Raid4Device.create(group, 4, memberBytes);
  await Volume.format(dev);
  await dev.close();
  return Volume.open(group, { cpIntervalMs: 0, openDevice: openDeviceAt });
}

const reopen = (opts: { readOnly?: boolean } = {}): Promise<Volume> => Volume.open(group, { cpIntervalMs: 0, openDevice: openDeviceAt, ...opts });

async function usedDataVbns(v: Volume, path: string): Promise<number[]> {
  const internal = v as unknown as { ns: { resolve(p: string): Promise<{ inode: Parameters<typeof walkTree>[0] }> }; ctx: Parameters<typeof walkTree>[1] };
  const r = await internal.ns.resolve(path);
  const out: number[] = [];
  await walkTree(r.inode, internal.ctx, path, (p, level) => {
    if (level === 0) out.push(p.vbn);
  });
  return out;
}

async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await open(file, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, offset);
  b[0] ^= 0x5a;
  await fh.write(b, 0, 1, offset);
  await fh.close();
}

describe('RAID-4 groups', () => {
  it('assembles from its files in any order and refuses foreign and stale members', async () => {
    const v = await makeGroup();
    await v.writeFile('/f', pattern(100_000, 1));
    await v.close();
    // Shuffle the file names: labels, not names, place members.
    await rename(join(group, 'data-0.img'), join(group, 'zz.img'));
    await rename(join(group, 'data-3.img'), join(group, 'data-0.img'));
    await rename(join(group, 'zz.img'), join(group, 'data-3.img'));
    const r = await reopen();
    expect((await r.readFile('/f')).equals(pattern(100_000, 1))).toBe(true);
    expect((await r.info()).device.degraded).toBe(false);
    await r.close();
    // A member of another group is not taken in.
    const other = join(dir, 'other');
    await (await Raid4Device.create(other, 4, 8 * 2 ** 20)).close();
    await rm(join(group, 'data-1.img'));
    await cp(join(other, 'data-1.img'), join(group, 'data-1.img'));
    const d = await reopen();
    const info = await d.info();
    expect(info.device.degraded).toBe(true);
    expect(info.device.members[1].state).toBe('missing');
    expect((await d.readFile('/f')).equals(pattern(100_000, 1))).toBe(true);
    await d.close();
  });

  it('reads and writes degraded, then rebuilds a replacement that holds exactly its share', async () => {
    const s = new SnapplaneService({ cpIntervalMs: 0 });
    const v = await makeGroup();
    for (let i = 0; i < 5; i++) await v.writeFile(`/f${i}`, pattern(200_000 + i, i));
    await v.close();
    await rm(join(group, 'data-2.img'));
    const info = await s.volumeInfo({ volume: group });
    expect(info.device.degraded).toBe(true);
    for (let i = 0; i < 5; i++) expect((await readAll(s, `/f${i}`)).equals(pattern(200_000 + i, i))).toBe(true);
    // Writes continue while degraded.
    await s.rm(group, '/f0');
    const host = join(dir, 'in.bin');
    await (await import('node:fs/promises')).writeFile(host, pattern(300_000, 9));
    await s.put(group, host, '/g');
    await s.sync(group);
    const seen: number[] = [];
    const after = await s.raidReplace(group, 2, 'data-2b.img', (p) => seen.push(p.done));
    expect(after.device.degraded).toBe(false);
    expect(seen.at(-1)).toBe(after.device.members.length > 0 ? seen.at(-1) : 0);
    // Only stripes holding data were rebuilt: the new image is sparse over the free ones.
    const { stat } = await import('node:fs/promises');
    const rebuiltImage = await stat(join(group, 'data-2b.img'));
    expect(rebuiltImage.blocks * 512).toBeLessThan(rebuiltImage.size / 4);
    const scrub = await s.raidScrub(group);
    expect(scrub.parityStripesRepaired).toBe(0);
    expect(scrub.dataBlocksRepaired).toBe(0);
    expect(scrub.clean).toBe(true);
    expect(scrub.stripesChecked).toBeGreaterThan(0);
    expect(scrub.stripesChecked).toBeLessThan(scrub.stripes);
    expect((await readAll(s, '/g')).equals(pattern(300_000, 9))).toBe(true);
    // Writes into stripes the rebuild skipped (their parity was stale) compute parity from every member.
    await (await import('node:fs/promises')).writeFile(host, pattern(700_000, 11));
    await s.put(group, host, '/h');
    await s.sync(group);
    expect((await s.raidScrub(group)).parityStripesRepaired).toBe(0);
    await s.closeAll();
    // The rebuilt member alone now serves its share: lose a different member and read everything back.
    await rm(join(group, 'data-0.img'));
    const r = await reopen({ readOnly: true });
    for (let i = 1; i < 5; i++) expect((await r.readFile(`/f${i}`)).equals(pattern(200_000 + i, i))).toBe(true);
    expect((await r.readFile('/h')).equals(pattern(700_000, 11))).toBe(true);
    expect((await r.readFile('/g')).equals(pattern(300_000, 9))).toBe(true);
    expect((await r.fsck()).clean).toBe(true);
    await r.close();
  });

  it('a member wiped under a running group is failed before the next write, so no stripe parity takes its zeros', async () => {
    const v = await makeGroup();
    // Small files: most stripes their blocks share hold blocks of other files, written later (partial stripes).
    for (let f = 0; f < 24; f++) await v.writeFile(`/a${f}`, pattern(5000 + f * 700, f));
    await v.sync();
    // Member 1 now reads as zeros, its label too; the device does not know yet.
    const fh = await open(join(group, 'data-1.img'), 'r+');
    const size = (await fh.stat()).size;
    const zeros = Buffer.alloc(1 << 20);
    for (let o = 0; o < size; o += zeros.length) await fh.write(zeros, 0, Math.min(zeros.length, size - o), o);
    await fh.close();
    for (let f = 0; f < 24; f++) await v.writeFile(`/b${f}`, pattern(3000 + f * 500, 100 + f));
    await v.sync();
    expect(v.device.health()).toMatchObject({ degraded: true, members: expect.arrayContaining([expect.objectContaining({ index: 1, state: 'failed' })]) });
    await v.close();
    // Replaced and rebuilt from parity: every block of the wiped member comes back as it was.
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
    expect((await s.volumeInfo({ volume: group })).device.members.find((m) => m.index === 1)?.failure).toMatch(/label is no longer this group's/);
    await s.raidReplace(group, 1, 'new-1.img');
    expect((await s.raidScrub(group)).unrepairable).toEqual([]);
    await s.closeAll();
    // Rebuilt: healthy at the next open, and no reason left in the labels.
    const again = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
    expect((await again.volumeInfo({ volume: group })).device.members.find((m) => m.index === 1)).toMatchObject({ state: 'ok' });
    expect((await again.volumeInfo({ volume: group })).device.members.find((m) => m.index === 1)).not.toHaveProperty('failure');
    await again.closeAll();
    const w = await Volume.open(group, { cpIntervalMs: 0, openDevice: openDeviceAt });
    for (let f = 0; f < 24; f++) expect((await w.readFile(`/a${f}`)).equals(pattern(5000 + f * 700, f))).toBe(true);
    for (let f = 0; f < 24; f++) expect((await w.readFile(`/b${f}`)).equals(pattern(3000 + f * 500, 100 + f))).toBe(true);
    expect((await w.fsck()).issues).toEqual([]);
    await w.close();
  });

  it('a member cut short is left out at open and read from parity; one that shrinks while open fails reads with IO, not zeros', async () => {
    const v = await makeGroup();
    for (let f = 0; f < 12; f++) await v.writeFile(`/f${f}`, pattern(200_000 + f * 9_000, f));
    await v.close();
    const member = join(group, 'data-2.img');
    const full = (await stat(member)).size;
    const fh = await open(member, 'r+');
    await fh.truncate(Math.floor(full / 3));
    await fh.close();
    // At open: degraded, member 2 missing, every file whole from parity.
    const r = await reopen({ readOnly: true });
    try {
      expect(r.device.health()).toMatchObject({ degraded: true, members: expect.arrayContaining([expect.objectContaining({ index: 2, state: 'missing' })]) });
      for (let f = 0; f < 12; f++) expect((await r.readFile(`/f${f}`)).equals(pattern(200_000 + f * 9_000, f))).toBe(true);
    } finally {
      await r.close();
    }
    // While open: a healthy member that shrinks under the group makes its reads fail, naming it.
    const w = await reopen({ readOnly: true });
    try {
      const other = await open(join(group, 'data-1.img'), 'r+');
      await other.truncate(MEMBER_DATA_START * 4096);
      await other.close();
      let failure: unknown = null;
      for (let f = 0; f < 12 && !failure; f++) await w.readFile(`/f${f}`).catch((e: unknown) => (failure = e));
      expect(failure).toMatchObject({ code: 'IO', message: expect.stringContaining('member data-1.img ends before stripe') });
    } finally {
      await w.close();
    }
  });

  it('a healthy member whose reads fail while open (its file shrank) is failed as a RAID does: reads and writes go on from the others, the failure stays recorded, raid replace rebuilds it', async () => {
    const v = await makeGroup();
    for (let f = 0; f < 12; f++) await v.writeFile(`/f${f}`, pattern(200_000 + f * 9_000, f));
    await v.close();
    // Opened whole (with a cold cache, so the files are read from the members); the member shrinks under it.
    const w = await reopen();
    const member = await open(join(group, 'data-1.img'), 'r+');
    await member.truncate(MEMBER_DATA_START * 4096);
    await member.close();
    try {
      for (let f = 0; f < 12; f++) expect((await w.readFile(`/f${f}`)).equals(pattern(200_000 + f * 9_000, f))).toBe(true);
      const failed = w.device.health().members.find((m) => m.index === 1)!;
      expect(failed).toMatchObject({ state: 'failed', failure: expect.stringContaining('data-1.img ends before stripe') });
      await w.writeFile('/after', pattern(300_000, 77));
      await w.sync();
    } finally {
      await w.close();
    }
    // Recorded in the labels, with why: the next open (any process) has it failed too, and reads the same from parity.
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
    expect((await s.volumeInfo({ volume: group })).device.members.find((m) => m.index === 1)).toMatchObject({ state: 'failed', failure: expect.stringContaining('data-1.img ends before stripe') });
    const after = await s.raidReplace(group, 1, 'data-1b.img');
    expect(after.device.degraded).toBe(false);
    expect((await readAll(s, '/after')).equals(pattern(300_000, 77))).toBe(true);
    expect((await s.raidScrub(group)).clean).toBe(true);
    await s.closeAll();
  });

  it('reads that overlap on a degraded group each get their own blocks (rebuilt from parity into buffers of their own)', async () => {
    // Reads of one device do overlap (a volume's fsinfo probe runs outside its lock, verified reads go several at a
    // time); two rebuilding into the same scratch buffers handed each other's blocks out, and a send copies them unchecked.
    const dev = await Raid4Device.create(group, 3, 8 * 2 ** 20);
    const data = pattern(1536 * 4096, 9);
    await dev.writeBlocks(0, data);
    await dev.close();
    const r = await Raid4Device.open(group, { readOnly: true });
    try {
      await truncate(join(group, 'data-1.img'), MEMBER_DATA_START * 4096);
      const want = (vbn: number, count: number): Buffer => data.subarray(vbn * 4096, (vbn + count) * 4096);
      let wrong = 0;
      for (let round = 0; round < 20; round++) {
        const reads: [number, number][] = [[0, 768], [1, 1], [301, 1], [768, 768], [4, 1]];
        const got = await Promise.all(reads.map(([vbn, count]) => r.readBlocks(vbn, count)));
        reads.forEach(([vbn, count], k) => (wrong += got[k].equals(want(vbn, count)) ? 0 : 1));
      }
      expect(r.health().members[1]).toMatchObject({ state: 'failed' });
      expect(wrong).toBe(0);
    } finally {
      await r.close();
    }
  });

  it('a copy from a group whose member failed under it, while the console asks about the group, is a true copy', async () => {
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
    await s.createVolume(group, 24 * 2 ** 20, { raid: 3 });
    const big = pattern(6 * 2 ** 20, 5);
    await writeFile(join(dir, 'big.bin'), big);
    await s.put(group, join(dir, 'big.bin'), '/big.bin');
    await s.snapCreate(group, 'r1');
    await s.closeAll();
    // As in the console: the group open for reading only (each request first probes its fsinfo for a writer's CP).
    const c = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'console.json') });
    try {
      await c.volumeInfo({ volume: group });
      await truncate(join(group, 'data-1.img'), MEMBER_DATA_START * 4096);
      for (let round = 0; round < 3; round++) {
        const target = join(dir, `copy${round}.img`);
        let done = false;
        const copy = c.copy(group, target, 'r1').finally(() => (done = true));
        while (!done) await c.volumeInfo({ volume: group });
        await copy;
        await c.get({ volume: target }, '/big.bin', join(dir, `big${round}.out`));
        expect((await readFile(join(dir, `big${round}.out`))).equals(big)).toBe(true);
      }
      expect((await c.volumeInfo({ volume: group })).device.members[1]).toMatchObject({ state: 'failed', failure: expect.stringContaining('data-1.img ends before stripe') });
    } finally {
      await c.closeAll();
    }
  });

  it('with two members lost refuses to open for writing and never returns wrong data', async () => {
    const v = await makeGroup();
    await v.writeFile('/f', pattern(500_000, 3));
    await v.close();
    await rm(join(group, 'data-2.img'));
    await rm(join(group, 'data-3.img'));
    try {
      await reopen();
      throw new Error('opened for writing');
    } catch (e) {
      expect((e as SnapplaneError).code).toBe('IO');
      expect((e as Error).message).toMatch(/lost 2 members/);
    }
    const r = await reopen({ readOnly: true });
    await expect(r.readFile('/f')).rejects.toBeInstanceOf(SnapplaneError);
    await r.close();
  });

  it('scrub finds every one of 1,000 injected data and parity corruptions and repairs them', async () => {
    const v = await makeGroup(24 * 2 ** 20);
    await v.writeFile('/data', pattern(20 * 2 ** 20, 7));
    await v.sync();
    const dev = v.device as Raid4Device;
    const vbns = await usedDataVbns(v, '/data');
    await v.close();
    // One injection per stripe so redundancy can always repair: 600 data blocks, 400 parity blocks.
    const stripes = new Map<number, number>();
    for (const vbn of vbns) if (!stripes.has(Math.floor(vbn / 4))) stripes.set(Math.floor(vbn / 4), vbn);
    const chosen = [...stripes.entries()].slice(0, 1000);
    expect(chosen.length).toBe(1000);
    const members = (await readdir(group)).sort();
    expect(members).toContain('parity.img');
    let dataInjected = 0;
    let parityInjected = 0;
    for (let k = 0; k < chosen.length; k++) {
      const [stripe, vbn] = chosen[k];
      const offset = (k * 37) % 4096;
      if (k < 600) {
        await flipByte(join(group, `data-${vbn % 4}.img`), (MEMBER_DATA_START + stripe) * 4096 + offset);
        dataInjected++;
      } else {
        await flipByte(join(group, 'parity.img'), (MEMBER_DATA_START + stripe) * 4096 + offset);
        parityInjected++;
      }
    }
    void dev;
    const s = new SnapplaneService({ cpIntervalMs: 0 });
    const report = await s.raidScrub(group);
    expect(report.dataBlocksRepaired).toBe(dataInjected);
    expect(report.parityStripesRepaired).toBe(parityInjected);
    expect(report.unrepairable).toEqual([]);
    const again = await s.raidScrub(group);
    expect(again.dataBlocksRepaired + again.parityStripesRepaired).toBe(0);
    await s.closeAll();
  });

  it('survives a crash during consistency points followed by the loss of a member', async () => {
    await (await makeGroup()).close();
    const script = join(dir, 'writer.mts');
    await (await import('node:fs/promises')).writeFile(
      script,
      `import { Volume } from ${JSON.stringify(join(process.cwd(), 'core/fs/volume.ts'))};
import { openDeviceAt } from ${JSON.stringify(join(process.cwd(), 'core/raid/open-device.ts'))};
const v = await Volume.open(${JSON.stringify(group)}, { cpIntervalMs: 0, openDevice: openDeviceAt });
for (let i = 0; ; i++) {
  const b = Buffer.alloc(50_000 + i * 1000, i & 255);
  await v.writeFile('/f' + (i % 7), b);
  await v.sync();
  process.stdout.write('committed ' + i + '\\n');
}
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let last = -1;
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        for (const m of d.toString().matchAll(/committed (\d+)/g)) last = Number(m[1]);
        if (last >= 12) child.kill('SIGKILL');
      });
      child.on('exit', () => resolve());
    });
    expect(last).toBeGreaterThanOrEqual(12);
    await rm(join(group, 'snapplane.lock'), { force: true });
    // Reopen first (the intent log replays parity), then lose a member.
    await (await reopen()).close();
    await rm(join(group, 'data-1.img'));
    const r = await reopen({ readOnly: true });
    for (let k = 0; k < 7; k++) {
      // The newest committed write of each file is i = last - ((last - k) mod 7), or a later one that committed.
      const got = await r.readFile(`/f${k}`);
      const i = (got.length - 50_000) / 1000;
      expect(i % 7).toBe(k);
      expect(i).toBeGreaterThanOrEqual(last - 6);
      expect(got.equals(Buffer.alloc(50_000 + i * 1000, i & 255))).toBe(true);
    }
    expect((await r.fsck()).clean).toBe(true);
    await r.close();
  });
});

async function readAll(s: SnapplaneService, path: string): Promise<Buffer> {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  await s.get({ volume: group }, path, out);
  return readFile(out);
}
