/**
 * The renderer's stores against a real engine (a direct client over the console router): volumes, the grid's
 * planes and tiles, the composer's images, jobs, the planner and relationships, and their selectors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupPoint, ImageEvalReport, JobState, MirrorInfo, PlaneInfo, PlaneTiles } from '../../core/api/index.js';
import { setClient } from '../../renderer/src/client/current.js';
import { fitLevel, vbnAt, visibleTiles, zoomAround, zoomOf } from '../../renderer/src/grid/geometry.js';
import { decodeBase64, densityAt } from '../../renderer/src/grid/tile-cache.js';
import { AXIS_WIDTH, axisLabel, axisStep, columnWidth } from '../../renderer/src/grid/draw.js';
import { chipsToText, quoteName, textToChips, useImages } from '../../renderer/src/stores/images.js';
import { jobPercent, selectJobList, useJobs } from '../../renderer/src/stores/jobs.js';
import { tileAt, usePlanes } from '../../renderer/src/stores/planes.js';
import { keptPoints, perDay, snapshotsToKeep, usePlanner } from '../../renderer/src/stores/planner.js';
import { topology } from '../../renderer/src/stores/relationships.js';
import { dataMembers, selectCapacity, selectColumns, useVolumes } from '../../renderer/src/stores/volumes.js';
import { connectEvents } from '../../renderer/src/stores/events.js';
import { useSnapshots } from '../../renderer/src/stores/snapshots.js';
import { SnapplaneService } from '../../core/service/index.js';
import { join } from 'node:path';
import { DirectClient } from '../helpers/direct-client.js';
import { consoleFixture, type ConsoleFixture } from '../helpers/console-volume.js';

let fx: ConsoleFixture;
let client: DirectClient;

beforeAll(async () => {
  fx = await consoleFixture();
  client = new DirectClient(fx.host);
  setClient(client);
  connectEvents(client);
  await useVolumes.getState().refreshList();
});

afterAll(async () => {
  await fx.close();
});

async function until(fn: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('volumes store', () => {
  it('lists known volumes, selects the first, loads its info, snapshots and planes', () => {
    const s = useVolumes.getState();
    expect(s.known.map((k) => k.path)).toEqual([fx.vol]);
    expect(s.current).toBe(fx.vol);
    expect(s.info?.blockCount).toBe(1024);
    expect(s.snapshots.map((x) => x.name)).toEqual(['s1', 's2']);
    expect(selectColumns(s).map((p) => p.name)).toEqual(['active', 's1', 's2']);
    const cap = selectCapacity(s.info)!;
    expect(cap.active + cap.snapshotOnly + cap.free).toBeCloseTo(1, 6);
    expect(cap.snapshotOnly).toBeGreaterThan(0); // a.bin lives only in s1
    expect(dataMembers(s.info)).toBe(0);
  });

  it('reports a failed open as an error and keeps the list', async () => {
    await expect(useVolumes.getState().open(`${fx.dir}/missing.img`)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(useVolumes.getState().error).toMatch(/NOT_FOUND/);
    useVolumes.getState().clearError();
  });

  it('refreshes on a volume-changed event (a snapshot taken elsewhere) and bumps the data version', async () => {
    const v0 = useVolumes.getState().version;
    await fx.call('snapCreate', { volume: fx.vol, name: 's3' });
    await until(() => useVolumes.getState().snapshots.length === 3);
    expect(useVolumes.getState().version).toBeGreaterThan(v0);
    await fx.call('snapDelete', { volume: fx.vol, name: 's3' });
    await until(() => useVolumes.getState().snapshots.length === 2);
  });

  it('notices a change another process made on disk (no event from it): snapshots and a browsed one that is gone', async () => {
    // Another writer (the CLI, say) changes the volume: the console has let go of it, nothing is announced.
    await fx.host.service.close(fx.vol);
    const other = new SnapplaneService({ stateFile: join(fx.dir, 'cli-state.json'), cpIntervalMs: 0 });
    await other.snapCreate(fx.vol, 'cli-made');
    await other.snapCreate(fx.vol, 'cli-gone');
    await other.closeAll();
    await until(() => useVolumes.getState().snapshots.some((x) => x.name === 'cli-made'), 8_000);
    expect(useVolumes.getState().snapshots.map((x) => x.name)).toEqual(['s1', 's2', 'cli-made', 'cli-gone']);
    await useSnapshots.getState().browse('cli-gone');
    await until(() => useSnapshots.getState().listing !== null);
    await other.snapDelete(fx.vol, 'cli-gone');
    await other.snapDelete(fx.vol, 'cli-made');
    await other.closeAll();
    await until(() => useVolumes.getState().snapshots.length === 2, 8_000);
    await until(() => useSnapshots.getState().browsing === null);
    expect(useSnapshots.getState().notice?.text).toMatch(/snapshot cli-gone is gone/);
    useSnapshots.getState().dismiss();
  });
});

describe('grid geometry and the planes store', () => {
  it('zoom levels: one block per row down to whole-volume rows, anchored zoom, visible tiles', () => {
    expect(zoomOf(-2)).toEqual({ blocksPerRow: 1, rowHeight: 4 });
    expect(zoomOf(3)).toEqual({ blocksPerRow: 8, rowHeight: 1 });
    expect(fitLevel(1024, 600)).toBe(1); // 512 rows of 2 blocks
    expect(fitLevel(1024, 2048)).toBe(-1);
    expect(fitLevel(2 ** 28, 1000)).toBe(19);
    // The block under the anchor stays put.
    const top = zoomAround(1000, 300, zoomOf(0), zoomOf(-2));
    expect(vbnAt(300, top, zoomOf(-2))).toBe(vbnAt(300, 1000, zoomOf(0)));
    expect(visibleTiles(0, 600, zoomOf(0), 1024)).toEqual([0, 1, 2]);
    expect(visibleTiles(700, 600, zoomOf(0), 1024)).toEqual([2, 3]);
    expect(visibleTiles(0, 600, zoomOf(2), 1024)).toEqual([0]);
  });

  it('the VBN axis: ticks a power of two of blocks at least 48 px apart, byte offsets where they are whole MiB; its room kept', () => {
    expect(axisStep(zoomOf(-4))).toBe(4); // 16 px rows: 3 blocks would do, 4 is the next power of two
    expect(axisStep(zoomOf(0))).toBe(64);
    expect(axisStep(zoomOf(8))).toBe(256 * 64);
    expect(axisLabel(16_384, 4096, true)).toBe('16,384 · 64.0 MiB');
    expect(axisLabel(103_376, 4096, false)).toBe('103,376');
    // Few columns stay 64 px wide; many share what the axis leaves.
    expect(columnWidth(1000, 4)).toBe(64);
    expect(columnWidth(1000, 40)).toBe(Math.floor((1000 - AXIS_WIDTH) / 40));
  });

  it('fits the volume, fetches the visible tiles and they match the engine', async () => {
    usePlanes.getState().setSize(600, 800);
    usePlanes.getState().fit();
    const p = usePlanes.getState();
    expect(zoomOf(p.level)).toEqual({ blocksPerRow: 2, rowHeight: 1 });
    await until(() => tileAt(usePlanes.getState(), 0) !== undefined && tileAt(usePlanes.getState(), 1) !== undefined);
    const tile = tileAt(usePlanes.getState(), 0)!;
    const planes = useVolumes.getState().planes;
    const fresh = await fx.call<PlaneTiles>('planeTiles', { volume: fx.vol, firstVbn: 0, blocksPerRow: 2, rows: 256, planes: selectColumns(useVolumes.getState()).map((x) => x.plane) });
    expect(tile.densities).toEqual(decodeBase64(fresh.densities));
    expect(densityAt(tile, 0, 0)).toBe(255); // VBN 0 and 1: both fsinfo copies
    expect(planes.length).toBe(3);
    // Nothing asked for a whole plane: every request was a tile of at most 256 rows.
    const tileCalls = client.calls.filter((c) => c.method === 'planeTiles').map((c) => c.args as { rows: number });
    expect(tileCalls.length).toBeGreaterThan(0);
    expect(tileCalls.every((a) => a.rows <= 256)).toBe(true);
  });

  it('pans and zooms within the volume', () => {
    const s = usePlanes.getState();
    s.zoomBy(-3, 0);
    expect(zoomOf(usePlanes.getState().level)).toEqual({ blocksPerRow: 1, rowHeight: 4 });
    usePlanes.getState().panPixels(-10_000);
    expect(usePlanes.getState().topVbn).toBe(0);
    usePlanes.getState().panPixels(400);
    expect(usePlanes.getState().topVbn).toBe(100);
    usePlanes.getState().goTo(1e12);
    expect(usePlanes.getState().topVbn).toBeLessThan(1024);
    usePlanes.getState().fit();
  });

  it("a highlight that does not fit the volume leaves the planes drawn, and a switch of volume drops it", async () => {
    usePlanes.getState().fit();
    usePlanes.getState().setHighlight('s2 - nope');
    await until(() => usePlanes.getState().imageError !== null);
    expect(usePlanes.getState().imageError).toMatch(/unknown snapshot 'nope'/);
    expect(usePlanes.getState().tileError).toBeNull();
    const tile = tileAt(usePlanes.getState(), 0)!;
    expect(tile.image).toBeNull();
    expect(densityAt(tile, 0, 0)).toBe(255); // the planes are there
    usePlanes.getState().setHighlight('s2 - s1');
    await until(() => tileAt(usePlanes.getState(), 0)?.image != null);
    expect(usePlanes.getState().imageError).toBeNull();
    // Another volume: the image named this one's snapshots, so it goes.
    const other = join(fx.dir, 'other.img');
    await fx.call('volumeCreate', { path: other, sizeBytes: 2 * 2 ** 20 });
    await useVolumes.getState().select(other);
    expect(usePlanes.getState().highlight).toBeNull();
    await fx.call('volumeForget', { path: other });
    await useVolumes.getState().select(fx.vol);
    await useVolumes.getState().refreshList();
    usePlanes.getState().fit();
  });

  it('hover asks the engine who owns the block', async () => {
    usePlanes.getState().hoverAt(5, 0, 0);
    expect(usePlanes.getState().hover?.vbn).toBe(0);
    await until(() => usePlanes.getState().hoverInfo !== null);
    expect(usePlanes.getState().hoverInfo?.owner?.kind).toBe('reserved');
    // A zoom under the resting pointer: the hover describes the rows now under it, not the old range.
    usePlanes.getState().hoverAt(5, 300, 0);
    const before = usePlanes.getState().hover!;
    usePlanes.getState().zoomBy(-1, 0);
    const after = usePlanes.getState().hover!;
    expect(after.count).not.toBe(before.count);
    expect(after.vbn).toBe(vbnAt(300, usePlanes.getState().topVbn, zoomOf(usePlanes.getState().level)));
    usePlanes.getState().fit();
    usePlanes.getState().clearHover();
    expect(usePlanes.getState().hover).toBeNull();
  });
});

describe('images store', () => {
  it('turns chips into text and back, quoting what needs it', () => {
    expect(quoteName('June-1')).toBe('June-1');
    expect(quoteName('a+b')).toBe("'a+b'");
    expect(quoteName('-x')).toBe("'-x'");
    const chips = textToChips("(s2 + 'a+b') - s1 & active");
    expect(chips.map((c) => (c.kind === 'name' ? c.name : c.op))).toEqual(['(', 's2', '+', 'a+b', ')', '-', 's1', '&', 'active']);
    expect(chipsToText(chips)).toBe("( s2 + 'a+b' ) - s1 & active");
  });

  it('puts a union between two dropped names and evaluates live against the engine', async () => {
    const im = useImages.getState();
    im.clear();
    im.addChip({ kind: 'name', name: 's2' });
    im.addChip({ kind: 'name', name: 's1' });
    expect(chipsToText(useImages.getState().chips)).toBe('s2 + s1');
    useImages.getState().setText('s2 - s1');
    await until(() => useImages.getState().result?.expression === 's2 - s1');
    const engine = await fx.call<ImageEvalReport>('imageEval', { volume: fx.vol, expression: 's2 - s1' });
    expect(useImages.getState().result?.blocks).toBe(engine.blocks);
    expect(useImages.getState().result?.streamable).toBe(true);
  });

  it('explains an invalid expression with the engine message and its column', async () => {
    useImages.getState().setText('s2 - s9');
    await until(() => useImages.getState().error !== null);
    const e = useImages.getState().error!;
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toContain("unknown snapshot 's9'");
    expect(e.column).toBe(6);
    useImages.getState().setText('s2 -');
    await until(() => useImages.getState().error?.code === 'INVALID');
    expect(useImages.getState().result).toBeNull();
  });

  it('saves and deletes an expression', async () => {
    useImages.getState().setText('s1 - s2');
    await until(() => useImages.getState().result?.expression === 's1 - s2');
    expect(await useImages.getState().save('gone')).toBe(true);
    expect(useImages.getState().saved.map((x) => x.name)).toEqual(['gone']);
    await useImages.getState().remove('gone');
    expect(useImages.getState().saved).toEqual([]);
  });
});

describe('jobs store', () => {
  const job = (over: Partial<JobState>): JobState => ({
    id: 1,
    kind: 'copy',
    title: 't',
    volume: 'v',
    target: 't',
    state: 'running',
    phase: 'receive',
    done: 0,
    total: 100,
    unit: 'bytes',
    rate: 0,
    etaSeconds: null,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    updates: 0,
    error: null,
    result: null,
    ...over,
  });

  it('collects pushed progress into samples and orders running jobs first', () => {
    const s = useJobs.getState();
    s.jobEvent(job({ id: 7, done: 10, rate: 5 }));
    s.jobEvent(job({ id: 7, done: 60, rate: 50 }));
    s.jobEvent(job({ id: 8, state: 'ok', done: 100 }));
    const st = useJobs.getState();
    expect(st.received[7]).toBe(2);
    expect(st.samples[7].map((x) => x.rate)).toEqual([5, 50]);
    expect(selectJobList(st).map((j) => j.id)[0]).toBe(7);
    expect(jobPercent(st.jobs[7])).toBe(60);
    expect(jobPercent(st.jobs[8])).toBe(100);
  });

  it('starts a real copy job and follows it to the end through events', async () => {
    const started = await useJobs.getState().start({ kind: 'copy', source: fx.vol, destination: `${fx.dir}/copy.img`, expression: 's2 + s1' });
    expect(started?.state).toBe('running');
    await until(() => useJobs.getState().jobs[started!.id]?.state === 'ok', 30_000);
    expect(jobPercent(useJobs.getState().jobs[started!.id])).toBe(100);
    await until(() => useJobs.getState().history.some((h) => h.kind === 'copy' && h.outcome === 'ok'));
  });

  it('reports a job that cannot start', async () => {
    expect(await useJobs.getState().start({ kind: 'copy', source: fx.vol, destination: fx.vol, expression: 's2' })).toMatchObject({ state: 'running' });
    await until(() => Object.values(useJobs.getState().jobs).some((j) => j.state === 'error' && /same volume/.test(j.error?.message ?? '')));
  });
});

describe('planner store', () => {
  const point = (snapshot: string, at: string, level: number, bytes: number): BackupPoint => ({ snapshot, at, level, expression: snapshot, base: null, snapshots: [snapshot], blocks: bytes / 4096, bytes });

  it('keeps the newest level-0 cycles, sums per day, sizes the schedule', () => {
    const pts = [point('a', '2026-06-01T10:00:00Z', 0, 4096), point('b', '2026-06-02T10:00:00Z', 1, 8192), point('c', '2026-06-08T10:00:00Z', 0, 4096), point('d', '2026-06-08T12:00:00Z', 1, 4096)];
    expect(keptPoints(pts, 1).map((p) => p.snapshot)).toEqual(['c', 'd']);
    expect(keptPoints(pts, 5).map((p) => p.snapshot)).toEqual(['a', 'b', 'c', 'd']);
    expect(perDay(pts, 2)).toEqual([
      { day: '2026-06-01', level0: 4096, level1: 0 },
      { day: '2026-06-02', level0: 0, level1: 8192 },
      { day: '2026-06-08', level0: 4096, level1: 4096 },
    ]);
    expect(snapshotsToKeep(['7d', '1d'], 2)).toBe(15);
    expect(snapshotsToKeep(['1d'], 3)).toBe(4);
  });

  it('plans the real snapshots and creates a real schedule', async () => {
    usePlanner.getState().setLevels(['7d', '1d']);
    await until(() => usePlanner.getState().plan !== null);
    const plan = usePlanner.getState().plan!;
    expect(plan.points.map((p) => p.snapshot)).toEqual(['s1']);
    expect(plan.unplanned).toEqual(['s2']);
    usePlanner.getState().setLevels(['7x']);
    await until(() => usePlanner.getState().error !== null);
    usePlanner.getState().setLevels(['7d', '1d']);
    await until(() => usePlanner.getState().plan !== null && usePlanner.getState().error === null);
    await usePlanner.getState().createSchedule('nightly');
    expect(usePlanner.getState().schedules).toEqual([expect.objectContaining({ label: 'nightly', cadence: 'every 1d', keep: 15 })]);
    expect(await fx.call('scheduleList', { volume: fx.vol })).toEqual(usePlanner.getState().schedules);
    await usePlanner.getState().removeSchedule('nightly');
    expect(usePlanner.getState().schedules).toEqual([]);
  });
});

describe('relationships', () => {
  it('lays out sources, destinations and cascades', () => {
    const m = (name: string, source: string, destination: string): MirrorInfo => ({
      name,
      kind: 'full',
      source,
      destination,
      slow: null,
      every: null,
      state: 'idle',
      lastCommon: null,
      lastTransferAt: null,
      lastTransferBytes: 0,
      lastError: null,
      lagSeconds: null,
      lagBlocks: null,
      lastSelection: null,
      replacing: false,
      nextAt: null,
    });
    const t = topology([m('a', '/src', '/m1'), m('b', '/m1', '/m2'), m('c', '/src', '/m3')]);
    const depth = Object.fromEntries(t.nodes.map((n) => [n.id, n.depth]));
    expect(depth).toEqual({ '/src': 0, '/m1': 1, '/m3': 1, '/m2': 2 });
    expect(t.edges).toHaveLength(3);
    // Each volume sits in its source's row or below it, so a tree's edges do not cross (names sorted would: /a under /z).
    const tree = topology([m('a', '/src', '/z'), m('b', '/src', '/y'), m('c', '/z', '/a'), m('d', '/y', '/b')]);
    const row = Object.fromEntries(tree.nodes.map((n) => [n.id, n.row]));
    expect(row).toEqual({ '/src': 0, '/y': 0, '/z': 1, '/b': 0, '/a': 1 });
  });

  it('has no fake data: an empty engine shows no relationships', async () => {
    const list = await fx.call<MirrorInfo[]>('mirrorList', {});
    expect(list).toEqual([]);
    const planes = await fx.call<PlaneInfo[]>('planes', { volume: fx.vol });
    expect(planes.length).toBe(3);
  });
});
