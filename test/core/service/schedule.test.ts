import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapplaneService, parseAt, parseInterval } from '../../../core/service/index.js';
import { lastSlot, nextSlot, snapshotNameFor } from '../../../core/jobs/cadence.js';
import { Volume } from '../../../core/fs/volume.js';
import { walkTree } from '../../../core/fs/walk.js';
import { SparsePlane } from '../../../core/planes/sparse-plane.js';
import { InodeTable } from '../../../core/fs/inode-table.js';
import { INODES_PER_BLOCK, INODE_SIZE, InodeType, cloneInode, decodeInode, type Inode } from '../../../core/fs/format.js';
import { pattern } from '../../helpers/model.js';
import { rng } from '../../helpers/recording-device.js';
import { snapplane } from '../../cli/cli-helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-sched-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const HOUR = 3_600_000;

describe('cadences', () => {
  it('computes slots for intervals, daily times and weekdays', () => {
    const t = new Date(2026, 10, 25, 13, 37).getTime(); // a Wednesday, local time
    expect(lastSlot({ kind: 'every', everyMs: HOUR }, t)).toBe(new Date(2026, 10, 25, 13, 0).getTime());
    expect(nextSlot(parseAt('00:00'), t)).toBe(new Date(2026, 10, 26, 0, 0).getTime());
    expect(lastSlot(parseAt('00:00', 'sunday'), t)).toBe(new Date(2026, 10, 22, 0, 0).getTime());
    expect(nextSlot(parseAt('00:00', 'sun'), t)).toBe(new Date(2026, 10, 29, 0, 0).getTime());
    expect(snapshotNameFor('hourly', new Date(2026, 0, 2, 3, 4).getTime())).toBe('hourly-2026-01-02_0304');
    expect(() => parseInterval('10s')).toThrow(/shorter than a minute/);
    expect(() => parseAt('25:00')).toThrow(/bad time/);
    expect(() => parseAt('10:00', 'funday')).toThrow(/bad weekday/);
  });
});

describe('schedules over weeks of simulated time', () => {
  it('keeps exactly what the policies say, never prunes a held snapshot, and records each run', async () => {
    let clock = new Date(2026, 5, 1, 0, 30).getTime(); // Monday 1 June 2026, 00:30 local
    const s = new SnapplaneService({ cpIntervalMs: 0, now: () => clock, stateFile: join(dir, 'state.json') });
    const vol = join(dir, 'weeks.img');
    await s.createVolume(vol, 64 * 2 ** 20);
    await s.scheduleAdd(vol, 'hourly', { kind: 'every', everyMs: HOUR }, 6);
    await s.scheduleAdd(vol, 'nightly', parseAt('00:00'), 2);
    await s.scheduleAdd(vol, 'weekly', parseAt('00:00', 'sunday'), 4);
    const host = join(dir, 'data.bin');
    let held: string | null = null;
    const end = clock + 5 * 7 * 24 * HOUR;
    for (let step = 0; clock < end; step++, clock += HOUR) {
      if (step % 3 === 0) {
        await writeFile(host, pattern(20_000, step));
        await s.put(vol, host, '/data.bin');
      }
      await s.scheduleRun(vol);
      if (step === 30) {
        held = (await s.snapList({ volume: vol })).filter((x) => x.name.startsWith('hourly-')).at(-1)!.name;
        await s.snapHold(vol, held, true);
      }
    }
    const names = (await s.snapList({ volume: vol })).map((x) => x.name);
    const last = clock - HOUR;
    const expected = [
      ...Array.from({ length: 6 }, (_, k) => snapshotNameFor('hourly', lastSlot({ kind: 'every', everyMs: HOUR }, last) - (5 - k) * HOUR)),
      ...Array.from({ length: 2 }, (_, k) => snapshotNameFor('nightly', lastSlot(parseAt('00:00'), last) - (1 - k) * 24 * HOUR)),
      ...Array.from({ length: 4 }, (_, k) => snapshotNameFor('weekly', lastSlot(parseAt('00:00', 'sunday'), last) - (3 - k) * 7 * 24 * HOUR)),
      held!,
    ].sort();
    expect([...names].sort()).toEqual(expected);
    const history = await s.jobHistory();
    expect(history.length).toBe(500); // the history keeps the newest 500 runs
    expect(history.every((h) => h.outcome === 'ok')).toBe(true);
    expect(history.some((h) => h.kind === 'schedule-run' && h.kept.some((k) => k.name === held && k.reason === 'held'))).toBe(true);
    // A dry run changes nothing and predicts exactly what the real run frees.
    clock += 2 * HOUR;
    const dry = await s.scheduleRun(vol, { dryRun: true });
    expect(dry.take.length).toBeGreaterThan(0);
    expect((await s.snapList({ volume: vol })).map((x) => x.name).sort()).toEqual(expected);
    const real = await s.scheduleRun(vol);
    expect(real.prune).toEqual(dry.prune);
    expect(real.freedBytes).toBe(dry.freedBytes);
    await s.closeAll();
  }, 300_000);
});

/** Blocks a state uses, by walking its trees: the inode file, every file, and the block-map file. */
async function walkState(v: Volume, inodeFile: Inode, inodeCount: number, blockMap: Inode, into: SparsePlane): Promise<void> {
  const ctx = v.ctx;
  const add = (p: { vbn: number }): void => {
    into.set(p.vbn);
  };
  await walkTree(inodeFile, ctx, 'inode file', add);
  await walkTree(blockMap, ctx, 'block map', add);
  const table = new InodeTable(cloneInode(inodeFile), inodeCount, ctx);
  for (let b = 0; b * INODES_PER_BLOCK < inodeCount; b++) {
    const block = await table.tree.readBlock(b);
    if (!block) continue;
    for (let r = 0; r < INODES_PER_BLOCK; r++) {
      const ino = b * INODES_PER_BLOCK + r;
      if (ino === 0 || ino >= inodeCount) continue;
      const inode = decodeInode(block, r * INODE_SIZE);
      if (inode.type !== InodeType.Free) await walkTree(inode, ctx, `inode ${ino}`, add);
    }
  }
}

describe('space accounting', () => {
  it('matches a brute-force reference built by walking every tree, on random histories', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const random = rng(seed);
      const path = join(dir, `space${seed}.img`);
      const v = await Volume.create(path, { sizeBytes: 32 * 2 ** 20, cpIntervalMs: 0 });
      const names: string[] = [];
      for (let step = 0; step < 12; step++) {
        for (let k = 0; k < 3; k++) {
          const f = `/f${Math.floor(random() * 6)}`;
          if (random() < 0.2) await v.remove(f).catch(() => undefined);
          else await v.writeFile(f, pattern(Math.floor(random() * 200_000), step * 10 + k));
        }
        if (random() < 0.7) {
          names.push(`s${step}`);
          await v.createSnapshot(`s${step}`);
        }
        if (names.length > 3 && random() < 0.2) await v.deleteSnapshot(names.splice(Math.floor(random() * names.length), 1)[0]);
      }
      await v.sync();
      const entries = v.snapshots.list();
      const map = await v.planeMap();
      // Reference: per snapshot, the blocks its trees use; plus (from its plane) the few blocks of the
      // snapshot table of its own CP, which no tree reaches.
      const held = new Map<string, Set<number>>();
      for (const e of entries) {
        const walked = new SparsePlane();
        await walkState(v, e.inodeFile, e.inodeCount, e.blockMap, walked);
        const plane = await map.loadPlane(e.plane);
        const set = new Set<number>();
        let extras = 0;
        plane.forEach((vbn) => {
          set.add(vbn);
          if (!walked.has(vbn) && vbn > 1) extras++;
        });
        for (let vbn = 2; vbn < plane.blockCount; vbn++) if (walked.has(vbn)) expect(plane.has(vbn), `seed ${seed} ${e.name} VBN ${vbn}`).toBe(true);
        expect(extras, `seed ${seed} ${e.name}: blocks beyond its trees`).toBeLessThanOrEqual(70);
        held.set(e.name, set);
      }
      const active = new SparsePlane();
      await walkState(v, v.fsinfo.inodeFile, v.fsinfo.inodeCount, v.fsinfo.blockMap, active);
      await walkTree(v.fsinfo.snapshotTable, v.ctx, 'snapshot table', (p) => void active.set(p.vbn));
      for (let trial = 0; trial < 8; trial++) {
        const set = entries.filter(() => random() < 0.5).map((e) => e.name);
        const inSet = new Set<number>();
        for (const n of set) for (const b of held.get(n)!) inSet.add(b);
        let freed = 0;
        for (const b of inSet) {
          if (b < 2 || active.has(b)) continue;
          if (entries.some((e) => !set.includes(e.name) && held.get(e.name)!.has(b))) continue;
          freed++;
        }
        const report = await v.space(set);
        expect(report.freedBlocks, `seed ${seed}, deleting [${set.join(', ')}]`).toBe(freed);
        // Per snapshot: blocks only it holds.
        for (const p of report.perSnapshot) {
          let unique = 0;
          for (const b of held.get(p.name)!) {
            if (b < 2 || active.has(b)) continue;
            if (entries.some((e) => e.name !== p.name && held.get(e.name)!.has(b))) continue;
            unique++;
          }
          expect(p.uniqueBlocks, `seed ${seed}: unique blocks of ${p.name}`).toBe(unique);
        }
      }
      await v.close();
    }
  }, 300_000);
});

describe('a schedule run that fails', () => {
  it('records only what it did, with its error, and `jobs` shows the error', async () => {
    const home = join(dir, 'fail-home');
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(home, 'state.json') });
    const vol = join(dir, 'full.img');
    await s.createVolume(vol, 16 * 2 ** 20);
    await s.close(vol);
    // Filled by files, then by snapshots until one more is refused: the scheduled snapshot cannot be taken.
    const v = await Volume.open(vol, { cpIntervalMs: 0 });
    try {
      for (let i = 0; ; i++) {
        try {
          await v.writeFile(`/f${i}`, pattern(256 << 10, i));
        } catch {
          break;
        }
      }
      for (let i = 0; ; i++) {
        try {
          await v.createSnapshot(`x${i}`);
        } catch {
          break;
        }
      }
    } finally {
      await v.close();
    }
    await s.scheduleAdd(vol, 'q', { kind: 'every', everyMs: HOUR }, 2);
    await expect(s.scheduleRun(vol)).rejects.toMatchObject({ code: 'ENOSPC' });
    const job = (await s.jobHistory()).at(-1)!;
    expect(job).toMatchObject({ kind: 'schedule-run', outcome: 'error', taken: [], pruned: [], freedBytes: 0 });
    expect(job.kind === 'schedule-run' && job.error).toMatch(/is full: snapshot 'q-.*' needs/);
    expect((await s.snapList({ volume: vol })).some((x) => x.name.startsWith('q-'))).toBe(false);
    await s.closeAll();

    process.env.SNAPPLANE_HOME = home;
    const r = await snapplane('jobs');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/schedule-run .* error .*took 0, pruned 0, freed 0 B; volume '.*' is full: snapshot 'q-/);
  }, 60_000);
});

describe('a scheduled run on a volume too full for its snapshot', () => {
  it('prunes what it would prune anyway first, when that frees space, then takes it; with nothing to free it fails as before', async () => {
    let t = Date.parse('2026-12-02T10:00:00Z');
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'full-run-state.json'), now: () => t });
    const vol = join(dir, 'full-run.img');
    await s.createVolume(vol, 4 << 20);
    await s.scheduleAdd(vol, 'h', { kind: 'every', everyMs: HOUR }, 1);
    const piece = join(dir, 'full-run-piece');
    await writeFile(piece, pattern(128 << 10, 9));
    /** Puts copies of the piece until the volume refuses one; returns how many went in. */
    const fill = async (tag: string): Promise<number> => {
      for (let n = 0; ; n++) {
        await writeFile(piece, pattern(128 << 10, n + tag.length * 1000));
        const ok = await s.put(vol, piece, `/${tag}-${n}`).then(() => true, () => false);
        if (!ok) return n;
      }
    };
    const first = await fill('a');
    t += HOUR;
    const old = (await s.scheduleRun(vol)).take[0];
    // The first files now live only in the schedule's snapshot, which keeps the volume full.
    expect(first).toBeGreaterThan(10);
    for (let i = 0; i < first; i++) await s.rm(vol, `/a-${i}`);
    expect(await fill('bb')).toBe(0);
    // Manual snapshots (with a little written between them) until one is refused: too full for a snapshot.
    let refused: unknown = null;
    for (let k = 0; k < 200 && !refused; k++) {
      await s.put(vol, piece, `/tiny${k}`).catch(() => undefined);
      refused = await s.snapCreate(vol, `m${k}`).then(() => null, (e: unknown) => e);
    }
    expect(refused).toMatchObject({ code: 'ENOSPC' });
    t += HOUR;
    const dry = await s.scheduleRun(vol, { dryRun: true });
    expect(dry.prune).toEqual([old]);
    expect(dry.freedBytes).toBeGreaterThan(first * (128 << 10) * 0.9);
    const run = await s.scheduleRun(vol);
    expect(run.take).toEqual([dry.take[0]]);
    expect(run.prune).toEqual([old]);
    const names = (await s.snapList({ volume: vol })).map((x) => x.name);
    expect(names).toContain(dry.take[0]);
    expect(names).not.toContain(old);
    const last = (await s.jobHistory()).filter((j) => j.kind === 'schedule-run').at(-1)!;
    expect(last).toMatchObject({ outcome: 'ok', taken: [dry.take[0]], pruned: [old] });
    // Full again, and this time the run has nothing to prune (keep 5): it fails, naming the snapshot, and deletes nothing.
    await s.scheduleAdd(vol, 'h', { kind: 'every', everyMs: HOUR }, 5);
    for (let k = 200; k < 400; k++) {
      await s.put(vol, piece, `/tiny${k}`).catch(() => undefined);
      if (await s.snapCreate(vol, `m${k}`).then(() => false, () => true)) break;
    }
    t += HOUR;
    const before = (await s.snapList({ volume: vol })).map((x) => x.name);
    await expect(s.scheduleRun(vol)).rejects.toMatchObject({ code: 'ENOSPC', message: expect.stringContaining(`snapshot 'h-`) });
    expect((await s.snapList({ volume: vol })).map((x) => x.name)).toEqual(before);
    await s.closeAll();
  });
});
