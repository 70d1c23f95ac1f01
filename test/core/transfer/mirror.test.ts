/**
 * Mirror relationships and master holds through the service facade, on real image files (and a real endpoint on
 * 127.0.0.1 for throttling and progress over the wire).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { SnapplaneService, type MirrorInfo, type ProgressEvent } from '../../../core/service/index.js';
import type { Endpoint } from '../../../core/net/endpoint.js';
import { Volume } from '../../../core/fs/volume.js';
import { planStream } from '../../../core/stream/send.js';
import { readResumeState } from '../../../core/stream/receive.js';
import { replacementOf, replacementWaits } from '../../../core/fs/sidecar.js';
import { readMarker } from '../../../core/transfer/sidecars.js';
import { describeMirrorUpdatePreview } from '../../../core/api/index.js';
import { expectSameTree } from '../../helpers/model.js';
import { FaultProxy, makeKey, randomWork, seeded, snapshots, treeOf, writeAndSnapshot } from '../../helpers/replication.js';
import { pattern } from '../../helpers/model.js';
import { literal } from '../../helpers/literal.js';

let dir: string;
let n = 0;
const fresh = (): string => join(dir, `case${++n}`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-mirror-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Nothing of a full resync's copy is left beside `dst`: no replacement volume, record or sidecar of them. */
async function expectNoReplacement(dst: string): Promise<void> {
  expect(await replacementWaits(dst)).toBe(false);
  expect((await readdir(dirname(dst))).filter((f) => f.startsWith(basename(dst)) && f.includes('.replacement'))).toEqual([]);
}

/** The relationship's own snapshots among `names`. */
function own(names: { name: string }[], rel: string): string[] {
  return names.map((x) => x.name).filter((x) => x.startsWith(`mirror.${rel}.`));
}

function service(): SnapplaneService {
  return new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
}

/** A case whose mirror lives behind a `serve`: a new source volume of `size` bytes, a root folder for the endpoint, a key. */
async function wireCase(keyName: string, size: number): Promise<{ src: string; root: string; key: string; s: SnapplaneService }> {
  const base = fresh();
  const src = `${base}-src.img`;
  const root = `${base}-root`;
  await mkdir(root);
  const key = await makeKey(dir, keyName);
  const s = service();
  await s.createVolume(src, size);
  await s.closeAll();
  return { src, root, key, s };
}

/**
 * A wire case with its endpoint: an in-process `serve` over its root that closes volumes after each request (the
 * checks then open them as another writer of that host would), the mirror's path there, and a stop for all of it.
 */
async function servedCase(name: string, size: number): Promise<{ src: string; root: string; key: string; s: SnapplaneService; server: SnapplaneService; ep: Endpoint; dst: string; stop(): Promise<void> }> {
  const c = await wireCase(`${name}-key`, size);
  const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, `${name}-server.json`) });
  const ep = await server.serve({ port: 0, root: c.root, keyFile: c.key, holdMs: 0 });
  return {
    ...c,
    server,
    ep,
    dst: join(c.root, 'mirror'),
    async stop() {
      await ep.close();
      await server.closeAll();
      await c.s.closeAll();
    },
  };
}

/**
 * A full mirror `rel` behind a fault proxy to an in-process `serve` (its volumes closed after each request),
 * initialized, with the source changed since. `breakAtReply` takes the mirror over on its host when the first reply
 * holding `text` passes, before the client sees it, and tells whether that happened.
 */
async function proxiedMirror(rel: string, seed: number): Promise<{
  src: string;
  dst: string;
  s: SnapplaneService;
  server: SnapplaneService;
  proxy: FaultProxy;
  breakAtReply(text: string): () => boolean;
  /** The source deletes the relationship's common snapshot (and with `seed`, writes a good deal after). */
  loseCommon(seed?: number): Promise<void>;
  /** A full resync whose copy the proxy cuts half-way; returns once the endpoint has kept what landed. */
  cutFullResync(): Promise<void>;
  stop(): Promise<void>;
}> {
  const served = await servedCase(rel, 16 << 20);
  const { src, key, s, server, dst } = served;
  await work(src, seed, 10);
  const proxy = new FaultProxy(served.ep.port);
  await proxy.start();
  await s.mirrorCreate(rel, src, `127.0.0.1:${proxy.port}/mirror`, { kind: 'full', keyFile: key });
  await s.mirrorUpdate(rel);
  await s.closeAll();
  await work(src, seed + 1, 8);
  return {
    src,
    dst,
    s,
    server,
    proxy,
    async loseCommon(seed) {
      await s.closeAll();
      const v = await Volume.open(src, { cpIntervalMs: 0 });
      await v.deleteSnapshot((await s.mirrorStatus(rel)).lastCommon!, { releaseHold: true });
      if (seed !== undefined) await randomWork(v, seeded(seed), 30, `big${seed}`);
      await v.close();
    },
    async cutFullResync() {
      proxy.cutAt = proxy.passed + (512 << 10);
      await expect(s.mirrorResync(rel, { full: true })).rejects.toMatchObject({ code: 'NET' });
      proxy.cutAt = null;
      await s.closeAll();
      // The endpoint notices the drop a moment later and keeps what landed of the copy, beside the mirror.
      for (let i = 0; i < 100 && !(await readResumeState(replacementOf(dst))); i++) await new Promise((r) => setTimeout(r, 50));
      expect(await readResumeState(replacementOf(dst))).not.toBeNull();
    },
    breakAtReply(text) {
      let broke = false;
      proxy.beforeReply = (d) => {
        if (broke || !d.includes(text)) return undefined;
        broke = true;
        return server.mirrorBreak(dst).then(() => undefined);
      };
      return () => broke;
    },
    async stop() {
      await proxy.stop();
      await served.stop();
    },
  };
}

/** A new case: its base path, a source volume of `mib` MiB with `ops` random operations done, and a service. */
async function sourceWithWork(mib: number, seed: number, ops: number): Promise<{ base: string; src: string; s: SnapplaneService }> {
  const base = fresh();
  const src = `${base}-src.img`;
  const s = service();
  await s.createVolume(src, mib << 20);
  await s.closeAll();
  await work(src, seed, ops);
  return { base, src, s };
}

async function work(path: string, seed: number, ops: number): Promise<void> {
  const v = await Volume.open(path, { cpIntervalMs: 0 });
  try {
    await randomWork(v, seeded(seed), ops, `w${seed}`);
  } finally {
    await v.close();
  }
}

describe('mark-on-allocate selection', () => {
  it('the swapped-out image of a transfer equals `top - base` exactly, also after a reopen', async () => {
    const path = `${fresh()}.img`;
    let v = await Volume.create(path, { sizeBytes: 32 << 20, cpIntervalMs: 0 });
    await randomWork(v, seeded(1), 10, 'a');
    await v.snapshotForTransfer('t1');
    for (let round = 2; round <= 5; round++) {
      await randomWork(v, seeded(round), 12, `r${round}`);
      if (round === 4) {
        await v.close();
        v = await Volume.open(path, { cpIntervalMs: 0 });
      }
      await v.snapshotForTransfer(`t${round}`);
      const expr = `t${round} - t${round - 1}`;
      const marks = await planStream(v, expr, { selection: 'marks' });
      const sub = await planStream(v, expr, { selection: 'subtraction' });
      expect(marks.selection).toBe('marks');
      expect(sub.selection).toBe('subtraction');
      expect(marks.header.imageBlocks).toBe(sub.header.imageBlocks);
      for (const c of new Set([...marks.image.chunkIndexes(), ...sub.image.chunkIndexes()])) expect(marks.image.chunk(c), `chunk ${c}`).toEqual(sub.image.chunk(c));
      // Writes after the transfer's snapshot do not leak into its image.
      await v.writeFile(`/after-${round}`, pattern(50_000, round));
    }
    // Held from deletion as of its own CP (as a relationship takes it), also after a reopen.
    const held = await v.snapshotForTransfer('t6', { hold: true });
    expect(held.flags.hold).toBe(true);
    await v.close();
    v = await Volume.open(path, { cpIntervalMs: 0 });
    await expect(v.deleteSnapshot('t6')).rejects.toMatchObject({ code: 'HELD' });
    expect((await v.listSnapshots()).find((s) => s.name === 't6')!.flags.hold).toBe(true);
    await v.close();
  });
});

describe('full mirrors', () => {
  it('initializes, updates with the mark-on-allocate images, keeps the mirror read-only, and reports lag', async () => {
    const { base, src, s } = await sourceWithWork(48, 10, 15);
    const dst = `${base}-dst.img`;
    await s.mirrorCreate('m-full', src, dst, { kind: 'full', schedule: { kind: 'every', everyMs: 3_600_000 } });
    expect((await s.mirrorStatus('m-full')).state).toBe('uninitialized');
    const init = await s.mirrorUpdate('m-full');
    expect(init.transfer).toBe('full');
    await s.closeAll();
    expectSameTree(await treeOf(dst), await treeOf(src, init.to), 'after initialize');
    for (let round = 1; round <= 3; round++) {
      await work(src, 10 + round, 10);
      const s2 = service();
      const r = await s2.mirrorUpdate('m-full');
      await s2.closeAll();
      expect(r.transfer).toBe('incremental');
      expect(r.selection).toBe('marks');
      expectSameTree(await treeOf(dst), await treeOf(src, r.to), `update ${round}`);
      // The incremental's new active plane (base blocks still held + new blocks) is exactly what fsck expects.
      expect((await s2.fsck(dst)).issues).toEqual([]);
      await s2.closeAll();
      // Only the newest common snapshot stays on both sides.
      expect((await s2.snapList({ volume: dst })).map((x) => x.name)).toEqual([r.to]);
      expect((await s2.snapList({ volume: src })).filter((x) => x.name.startsWith('mirror.')).map((x) => x.name)).toEqual([r.to]);
      await s2.closeAll();
    }
    const s3 = service();
    // Right after an update nothing is left to send: the CP that deleted the previous common snapshot rewrote
    // only the source's own bookkeeping (block map, snapshot table), which is not a lag.
    expect((await s3.mirrorStatus('m-full')).lagBlocks).toBe(0);
    await s3.closeAll();
    await expect(s3.put(dst, __filename, '/x')).rejects.toMatchObject({ code: 'READ_ONLY', message: expect.stringMatching(/mirror of .*mirror break m-full/) });
    // A schedule on the mirror would fail at every run: refused, saying where its snapshots come from.
    await expect(s3.scheduleAdd(dst, 'hourly', { kind: 'every', everyMs: 3_600_000 }, 3)).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining("relationship 'm-full'): it takes no snapshots of its own") });
    // The relationship's common snapshot is not deleted while held, and the message says whose it is and what
    // deleting it costs (releasing it first is the admin's way to go ahead anyway, as in ZFS).
    const common = (await s3.mirrorStatus('m-full')).lastCommon!;
    await expect(s3.snapDelete(src, common)).rejects.toMatchObject({ code: 'HELD', message: expect.stringMatching(new RegExp(`cannot delete snapshot '${common}': relationship 'm-full' holds it \\(its last snapshot in common with the mirror\\); without it the next update needs a full copy.*snap release.*mirror delete m-full`)) });
    await s3.closeAll();
    await work(src, 99, 5);
    const st = await s3.mirrorStatus('m-full');
    expect(st.state).toBe('idle');
    expect(st.lagBlocks).toBeGreaterThan(0);
    expect(st.lastSelection).toBe('marks');
    await s3.closeAll();
  });

  it("a takeover on the mirror's own host (where the relationship is unknown) stops the source's updates there until a resync", async () => {
    const { base, src, s } = await sourceWithWork(32, 60, 12);
    const dst = `${base}-dst.img`;
    await s.mirrorCreate('m-dr', src, dst, { kind: 'full', schedule: { kind: 'every', everyMs: 1 } });
    const init = await s.mirrorUpdate('m-dr');
    await s.closeAll();
    // The destination's host has its own state: it knows the volume, not the relationship.
    const dr = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'dr-host.json') });
    await expect(dr.put(dst, __filename, '/early')).rejects.toMatchObject({ code: 'READ_ONLY', message: expect.stringContaining(`mirror break ${dst}`) });
    await expect(dr.mirrorBreak('m-dr')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await dr.mirrorBreak(dst)).toMatchObject({ relationship: 'm-dr', destination: dst, writable: true });
    await dr.put(dst, __filename, '/written-after-takeover');
    await dr.closeAll();
    const taken = await treeOf(dst);

    // The old source comes back and its schedule runs an update: it must not overwrite the volume that took over.
    await work(src, 61, 6);
    await expect(s.mirrorUpdate('m-dr')).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('was taken over on its host') });
    await s.closeAll();
    expect((await s.mirrorStatus('m-dr')).state).toBe('broken');
    expect(await s.dueMirrors()).not.toContain('m-dr');
    expectSameTree(await treeOf(dst), taken, 'the taken-over volume after the refused update');
    // Even with nothing written there since the break, the update stops.
    expect(await dr.mirrorBreak(dst)).toMatchObject({ writable: true });
    await dr.closeAll();

    // A plain resync refuses: the volume that took over holds a file the source does not (exit without a change).
    await expect(s.mirrorResync('m-dr')).rejects.toMatchObject({ code: 'DIVERGED', message: expect.stringMatching(/written since its newest snapshot .*`snapplane mirror resync m-dr --discard` discards it; `snapplane mirror resync m-dr --reverse` keeps it \(the mirror becomes the source\)$/) });
    await s.closeAll();
    expectSameTree(await treeOf(dst), taken, 'the taken-over volume after the refused resync');
    expect(await s.mirrorStatus('m-dr')).toMatchObject({ state: 'broken', lastError: expect.stringContaining('holds what its source does not') });
    // Reversed, it refuses too (the old source was written after its last update) and changes nothing: the volume
    // that took over keeps its marker, the relationship its direction.
    await expect(s.mirrorResync('m-dr', { reverse: true })).rejects.toMatchObject({ code: 'DIVERGED', message: expect.stringContaining(`'${src}' holds what its source does not`) });
    await s.closeAll();
    expect((await readMarker(dst))?.brokenAt).toBeTruthy();
    expect(await s.mirrorStatus('m-dr')).toMatchObject({ source: src, destination: dst, state: 'broken' });
    expectSameTree(await treeOf(dst), taken, 'the taken-over volume after the refused reverse resync');
    // Resync with --discard (the administrator's choice) rolls it back to the common snapshot and mirrors again.
    const r = await s.mirrorResync('m-dr', { discard: true });
    await s.closeAll();
    expect(await s.mirrorStatus('m-dr')).toMatchObject({ state: expect.not.stringMatching(/broken|failed/), lastError: null });
    expect(r.common).toBe(init.to);
    expectSameTree(await treeOf(dst), await treeOf(src, r.to), 'after resync');
    await expect(dr.put(dst, __filename, '/late')).rejects.toMatchObject({ code: 'READ_ONLY' });
    await dr.closeAll();
    await work(src, 62, 4);
    expect((await s.mirrorUpdate('m-dr')).transfer).toBe('incremental');
    await s.closeAll();
    expectSameTree(await treeOf(dst), await treeOf(src), 'after the next update');
  });

  it('a takeover between the sender\'s status and its receive is refused by the endpoint itself', async () => {
    const c = await proxiedMirror('m-race', 63);
    try {
      // The answer to the update's status request waits until the mirror's host has taken it over.
      const broke = c.breakAtReply('"mirrorOf"');
      const before = await treeOf(c.dst);
      await expect(c.s.mirrorUpdate('m-race')).rejects.toMatchObject({ message: expect.stringContaining('was taken over on its host') });
      expect(broke()).toBe(true);
      await c.s.closeAll();
      expectSameTree(await treeOf(c.dst), before, 'the taken-over mirror');
      expect(await c.server.put(c.dst, __filename, '/x')).toBeTruthy();
    } finally {
      await c.stop();
    }
  });

  it('a takeover while an update is landing stands: the update keeps what it brought, the volume stays writable', async () => {
    const c = await proxiedMirror('m-during', 65);
    try {
      // The endpoint has accepted the receive (and checked the marker); the break comes before the stream does.
      const broke = c.breakAtReply('"ready"');
      const r = await c.s.mirrorUpdate('m-during');
      expect(broke()).toBe(true);
      await c.s.closeAll();
      expectSameTree(await treeOf(c.dst), await treeOf(c.src, r.to), 'the update that was landing');
      expect((await c.server.volumeInfo({ volume: c.dst })).mirrorOf?.brokenAt).toBeTruthy();
      await c.server.put(c.dst, __filename, '/after');
      await c.server.closeAll();
      await work(c.src, 67, 4);
      await expect(c.s.mirrorUpdate('m-during')).rejects.toMatchObject({ message: expect.stringContaining('was taken over on its host') });
    } finally {
      await c.stop();
    }
  });

  it('with nothing in common any more, resync --full replaces only its own mirror with a whole copy of the source', async () => {
    const c = await servedCase('full', 16 << 20);
    const { src, root, key, s, server, ep, dst } = c;
    await work(src, 70, 10);
    await expect(s.mirrorCreate('m-nokey', src, '127.0.0.1:1/x', { kind: 'full', keyFile: join(dir, 'no-such-key') })).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('no-such-key') });
    try {
      await s.mirrorCreate('m-whole', src, `127.0.0.1:${ep.port}/mirror`, { kind: 'full', keyFile: key });
      const init = await s.mirrorUpdate('m-whole');
      await s.closeAll();
      // The common snapshot is lost on the source (an administrator freed its space).
      const v = await Volume.open(src, { cpIntervalMs: 0 });
      await v.deleteSnapshot(init.to, { releaseHold: true });
      await randomWork(v, seeded(71), 8, 'after');
      await v.close();
      await expect(s.mirrorUpdate('m-whole')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('--full') });
      await expect(s.mirrorResync('m-whole')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('mirror resync m-whole --full') });
      await s.closeAll();

      // A volume that is not this relationship's mirror is never deleted.
      await server.createVolume(join(root, 'users'), 16 << 20);
      await server.put(join(root, 'users'), __filename, '/keep.ts');
      await server.closeAll();
      await s.mirrorCreate('m-users', src, `127.0.0.1:${ep.port}/users`, { kind: 'full', keyFile: key });
      await expect(s.mirrorResync('m-users', { full: true })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('it is no mirror); refusing to replace it') });
      await expect(s.mirrorResync('m-whole', { full: true, reverse: true })).rejects.toMatchObject({ code: 'INVALID' });
      expect((await server.ls({ volume: join(root, 'users') }, '/')).map((e) => e.name)).toEqual(['keep.ts']);
      await server.closeAll();

      // Something of someone else's where the copy would be received is left alone.
      await writeFile(`${dst}.replacement`, 'not ours');
      await expect(s.mirrorResync('m-whole', { full: true })).rejects.toMatchObject({ code: 'EXISTS', message: expect.stringContaining(`'${dst}.replacement' is in the way`) });
      expect(await readFile(`${dst}.replacement`, 'utf8')).toBe('not ours');
      await rm(`${dst}.replacement`);
      await expect(s.replicate(src, `127.0.0.1:${ep.port}/mirror.replacement`, { keyFile: key })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining("names ending in '.replacement'") });
      await s.closeAll();

      const r = await s.mirrorResync('m-whole', { full: true });
      await s.closeAll();
      expect(r.common).toBeNull();
      expect(r.transfer).toBe('full');
      expect(r.discarded).toEqual([init.to]);
      expectSameTree(await treeOf(dst), await treeOf(src, r.to), 'after the full resync');
      expect((await s.mirrorStatus('m-whole')).state).toBe('idle');
      await work(src, 72, 6);
      expect((await s.mirrorUpdate('m-whole')).transfer).toBe('incremental');
      await s.closeAll();
      expectSameTree(await treeOf(dst), await treeOf(src), 'the update after');
      expect(own(await s.snapList({ volume: src }), 'm-whole')).toHaveLength(1);
      await expect(server.put(dst, __filename, '/x')).rejects.toMatchObject({ code: 'READ_ONLY' });
    } finally {
      await c.stop();
    }
  });

  it('a full resync keeps the old mirror until the whole copy lands beside it; a dropped copy is resumed, not resent', async () => {
    const c = await proxiedMirror('m-swap', 90);
    const { src, dst, s, server } = c;
    try {
      // A snapshot of the user's that the old mirror has too: the whole copy must bring it all the same.
      const u = await Volume.open(src, { cpIntervalMs: 0 });
      await u.createSnapshot('u1');
      await u.close();
      await s.mirrorUpdate('m-swap');
      await s.closeAll();
      expect((await server.snapList({ volume: dst })).map((e) => e.name)).toContain('u1');
      await server.closeAll();
      const lost = (await s.mirrorStatus('m-swap')).lastCommon!;
      const mirrored = await treeOf(dst);
      await c.loseCommon(91);
      await c.cutFullResync();
      // The old mirror is as it was: readable, read-only, its snapshot still there.
      expectSameTree(await treeOf(dst), mirrored, 'the old mirror during the copy');
      expect((await server.snapList({ volume: dst })).map((e) => e.name)).toContain(lost);
      await expect(server.put(dst, __filename, '/x')).rejects.toMatchObject({ code: 'READ_ONLY' });
      expect((await server.volumeInfo({ volume: dst })).replacement).toMatchObject({ relationship: 'm-swap' });
      await server.closeAll();
      const during = await s.mirrorStatus('m-swap');
      expect(during).toMatchObject({ replacing: true, state: 'failed' });

      const r = await s.mirrorUpdate('m-swap');
      await s.closeAll();
      expect(r.transfer).toBe('full');
      expect(r.resumedFromVbn).toBeGreaterThan(0);
      expectSameTree(await treeOf(dst), await treeOf(src, r.to), 'the copy in place of the old mirror');
      expect((await server.snapList({ volume: dst })).map((e) => e.name)).toEqual(['u1', r.to]);
      await expectNoReplacement(dst);
      expect((await s.mirrorStatus('m-swap')).replacing).toBe(false);
      await expect(server.put(dst, __filename, '/x')).rejects.toMatchObject({ code: 'READ_ONLY' });
      await server.closeAll();
      await work(src, 92, 6);
      expect((await s.mirrorUpdate('m-swap')).transfer).toBe('incremental');
      await s.closeAll();
      expectSameTree(await treeOf(dst), await treeOf(src), 'the update after');
    } finally {
      await c.stop();
    }
  });

  it('a full resync of a mirror that replicates further says whose base the copy brought; those stay incremental, the others are told', async () => {
    const { base, src, s } = await sourceWithWork(16, 99, 8);
    const l = `${base}-mirror.img`;
    const [d1, d2] = [`${base}-d1.img`, `${base}-d2.img`];
    const master = async (name: string, seed: number): Promise<void> => {
      await s.closeAll();
      await work(src, seed, 4);
      const v = await Volume.open(src, { cpIntervalMs: 0 });
      await v.createSnapshot(name);
      await v.close();
      await s.masterMark(src, name, true);
      await s.mirrorUpdate('m-casc');
      await s.closeAll();
    };
    await s.mirrorCreate('m-casc', src, l, { kind: 'full' });
    await master('M1', 100);
    expect((await s.masterList(l)).map((m) => m.name)).toEqual(['M1']);
    expect((await s.replicate(l, d1)).to).toBe('M1');
    await master('M2', 101);
    expect((await s.replicate(l, d2)).to).toBe('M2');
    await s.closeAll();
    // The source loses M1 and the relationship's common snapshot; M2 stays.
    const v = await Volume.open(src, { cpIntervalMs: 0 });
    await v.deleteSnapshot('M1');
    await v.deleteSnapshot((await s.mirrorStatus('m-casc')).lastCommon!, { releaseHold: true });
    await v.close();
    const r = await s.mirrorResync('m-casc', { full: true });
    await s.closeAll();
    expect(r.downstream).toEqual([
      { destination: d1, base: 'M1', kept: false },
      { destination: d2, base: 'M2', kept: true },
    ]);
    // The destinations went over to the copy: M2 stays held for d2 there.
    expect((await s.masterList(l)).find((m) => m.name === 'M2')?.neededBy).toEqual([d2]);
    await master('M3', 102);
    const next = await s.replicate(l, d2);
    expect(next).toMatchObject({ kind: 'incremental', from: 'M2', to: 'M3' });
    await expect(s.replicate(l, d1)).rejects.toMatchObject({ code: 'EXISTS' });
    await s.closeAll();
    expectSameTree(await treeOf(d2), await treeOf(src, 'M3'), 'the cascade after the full resync');
  });

  it('the update after an interrupted one finishes that one (resuming it) and brings the mirror up to date in the same run', async () => {
    const c = await proxiedMirror('m-catch', 110);
    const { src, dst, s } = c;
    try {
      await work(src, 111, 30);
      c.proxy.cutAt = c.proxy.passed + (256 << 10);
      await expect(s.mirrorUpdate('m-catch')).rejects.toMatchObject({ code: 'NET' });
      c.proxy.cutAt = null;
      await s.closeAll();
      const interrupted = own(await s.snapList({ volume: src }), 'm-catch').at(-1)!;
      await work(src, 112, 4);
      const r = await s.mirrorUpdate('m-catch');
      await s.closeAll();
      expect(r.finished).toBe(interrupted);
      expect(r.to).not.toBe(interrupted);
      expectSameTree(await treeOf(dst), await treeOf(src), 'the mirror after one update');
      expect(own(await s.snapList({ volume: src }), 'm-catch')).toEqual([r.to]);
      // Nothing newer: the next update finishes nothing first.
      expect((await s.mirrorUpdate('m-catch')).finished).toBeUndefined();
      await s.closeAll();
    } finally {
      await c.stop();
    }
  });

  it('a relationship deleted during an unfinished full resync: its copy goes, the old mirror stays and is writable', async () => {
    const c = await proxiedMirror('m-drop', 97);
    const { dst, s, server } = c;
    try {
      await c.loseCommon(98);
      const mirrored = await treeOf(dst);
      await c.cutFullResync();
      expect((await s.mirrorDelete('m-drop')).released).toBe(true);
      await expectNoReplacement(dst);
      expectSameTree(await treeOf(dst), mirrored, 'the old mirror');
      await server.put(dst, __filename, '/now-writable.ts');
      await server.closeAll();
    } finally {
      await c.stop();
    }
  });

  it('a copy that landed but waits for its swap does not replace a mirror taken over meanwhile: the copy goes, the writes stay', async () => {
    const c = await proxiedMirror('m-took', 120);
    const { dst, s, server } = c;
    try {
      await c.loseCommon();
      const writer = await Volume.open(dst, { cpIntervalMs: 0 });
      try {
        await expect(s.mirrorResync('m-took', { full: true })).rejects.toMatchObject({ code: 'LOCKED' });
      } finally {
        await writer.close();
      }
      await s.closeAll();
      expect(await replacementWaits(dst)).toBe(true);
      // The mirror's host takes the volume over and writes to it before anything asks for the volume again.
      await server.mirrorBreak(dst);
      await server.put(dst, __filename, '/after-takeover.ts');
      await server.closeAll();
      await expect(s.mirrorUpdate('m-took')).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('was taken over on its host') });
      await s.closeAll();
      await expectNoReplacement(dst);
      expect((await server.ls({ volume: dst }, '/')).map((e) => e.name)).toContain('after-takeover.ts');
      await server.closeAll();
    } finally {
      await c.stop();
    }
  });

  it('releasing a mirror while its full resync copy is being received is refused with BUSY; the copy lands and replaces it', async () => {
    const c = await servedCase('busy', 32 << 20);
    const { src, key, s, ep, dst } = c;
    try {
      const v = await Volume.open(src, { cpIntervalMs: 0 });
      await v.writeFile('/big.bin', pattern(6 << 20, 5));
      await v.close();
      await s.mirrorCreate('m-busy', src, `127.0.0.1:${ep.port}/mirror`, { kind: 'full', keyFile: key, limit: 3 << 20 });
      const init = await s.mirrorUpdate('m-busy');
      await s.closeAll();
      const w = await Volume.open(src, { cpIntervalMs: 0 });
      await w.deleteSnapshot(init.to, { releaseHold: true });
      await w.close();
      // A throttled copy: about two seconds on the wire.
      const copy = s.mirrorResync('m-busy', { full: true });
      for (let i = 0; i < 200 && !(await replacementWaits(dst)); i++) await new Promise((r) => setTimeout(r, 10));
      const other = service();
      const r = await other.mirrorDelete('m-busy');
      expect(r).toMatchObject({ released: false, reason: expect.stringContaining("copy of '" + dst + "' is being received from another connection") });
      const done = await copy;
      expect(done.replaced).toEqual([init.to]);
      // The delete stands: the update that was running does not write the relationship back when it ends.
      await expect(s.mirrorStatus('m-busy')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await s.closeAll();
      expectSameTree(await treeOf(dst), await treeOf(src, done.to), 'the copy in place');
    } finally {
      await c.stop();
    }
  });

  it('a copy that landed but could not take the old mirror\'s place (a writer held it) does so at the next update, without being sent again', async () => {
    const c = await proxiedMirror('m-held', 95);
    const { src, dst, s, server } = c;
    try {
      await c.loseCommon();
      const mirrored = await treeOf(dst);
      // Another process has the old mirror open for writing (the engine itself, below the service's read-only check).
      const writer = await Volume.open(dst, { cpIntervalMs: 0 });
      let error: unknown;
      try {
        await s.mirrorResync('m-held', { full: true });
      } catch (e) {
        error = e;
      } finally {
        await writer.close();
      }
      expect(error).toMatchObject({ code: 'LOCKED', message: expect.stringMatching(new RegExp(`copy landed beside .*could not take its place: .*process ${process.pid}.*the next update`)) });
      await s.closeAll();
      expectSameTree(await treeOf(dst), mirrored, 'the old mirror while the swap waits');
      expect(await replacementWaits(dst)).toBe(true);
      const before = c.proxy.passed;
      const r = await s.mirrorUpdate('m-held');
      await s.closeAll();
      // The copy that landed is the mirror now; this update sent nothing new (the source did not change).
      expect(r.from).not.toBeNull();
      expect(c.proxy.passed - before).toBeLessThan(64 << 10);
      await expectNoReplacement(dst);
      expectSameTree(await treeOf(dst), await treeOf(src), 'after the swap');
      expect((await s.mirrorStatus('m-held')).replacing).toBe(false);
      await server.closeAll();
    } finally {
      await c.stop();
    }
  });

  it("deleting a relationship makes its remote mirror writable, or says it could not reach it", async () => {
    const { src, root, key, s } = await wireCase('del-key', 16 << 20);
    await work(src, 80, 6);
    const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'del-server.json') });
    let ep = await server.serve({ port: 0, root, keyFile: key, holdMs: 0 });
    try {
      const port = ep.port;
      for (const name of ['m-del', 'm-gone']) {
        await s.mirrorCreate(name, src, `127.0.0.1:${port}/${name}`, { kind: 'full', keyFile: key });
        await s.mirrorUpdate(name);
      }
      await s.closeAll();
      expect(await s.mirrorDelete('m-del')).toEqual({ destination: `127.0.0.1:${port}/m-del`, released: true, reason: null, unheld: ['mirror.m-del.1'] });
      await server.put(join(root, 'm-del'), __filename, '/now-writable.ts');
      await server.closeAll();
      // Its host is down: the record goes, and the answer says the mirror there stays read-only.
      await ep.close();
      const r = await s.mirrorDelete('m-gone');
      expect(r.released).toBe(false);
      expect(r.reason).toContain(`127.0.0.1:${port}`);
      await expect(s.mirrorStatus('m-gone')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(server.put(join(root, 'm-gone'), __filename, '/x')).rejects.toMatchObject({ code: 'READ_ONLY' });
      ep = await server.serve({ port: 0, root, keyFile: key, holdMs: 0 });
    } finally {
      await ep.close();
      await server.closeAll();
      await s.closeAll();
    }
  });

  it('takeover, then resync from the newest common snapshot without a full copy; and a reverse resync', async () => {
    const { base, src, s } = await sourceWithWork(48, 20, 20);
    const dst = `${base}-dst.img`;
    await s.mirrorCreate('m-take', src, dst, { kind: 'full' });
    const init = await s.mirrorUpdate('m-take');
    await s.closeAll();
    // The source fails; the mirror takes over and is written to.
    const br = await s.mirrorBreak('m-take');
    expect(br.writable).toBe(true);
    await expect(s.mirrorUpdate('m-take')).rejects.toThrow(/broken/);
    await work(dst, 21, 6);
    await s.snapCreate(dst, 'after-takeover');
    await s.closeAll();
    expect((await s.mirrorStatus('m-take')).state).toBe('broken');
    // The old source comes back with changes of its own; a plain resync refuses to discard the mirror's snapshot.
    await work(src, 22, 6);
    const before = await treeOf(dst, 'after-takeover');
    await expect(s.mirrorResync('m-take')).rejects.toMatchObject({ code: 'DIVERGED', message: expect.stringContaining(`holds what its source does not: snapshot after-takeover, newer than '${init.to}'`) });
    await s.closeAll();
    expectSameTree(await treeOf(dst, 'after-takeover'), before, 'the mirror after the refused resync');
    // With --discard, resync discards the mirror's changes since the common snapshot.
    const r = await s.mirrorResync('m-take', { discard: true });
    await s.closeAll();
    expect(r.common).toBe(init.to);
    expect(r.discarded).toEqual(['after-takeover']);
    expect(r.transfer).toBe('incremental');
    expect(r.bytes).toBeLessThan(init.bytes);
    expectSameTree(await treeOf(dst), await treeOf(src, r.to), 'after resync');
    await expect(s.put(dst, __filename, '/y')).rejects.toMatchObject({ code: 'READ_ONLY' });
    await s.closeAll();

    // Takeover again; this time the mirror's new data wins: the old source becomes its mirror.
    await s.mirrorBreak('m-take');
    await work(dst, 23, 6);
    // The old source was written once more before it failed: what never reached the mirror is not dropped unasked.
    await s.put(src, __filename, '/never-mirrored');
    await s.closeAll();
    // While the old source is the source of another relationship too, a reverse resync is refused before anything.
    await s.mirrorCreate('m-take-other', src, `${base}-other.img`, { kind: 'full' });
    await expect(s.mirrorResync('m-take', { reverse: true })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining(`but it is the source of mirror relationship m-take-other too, which cannot take a mirror as source; delete it first (\`snapplane mirror delete m-take-other\`)`) });
    expect(await s.mirrorStatus('m-take')).toMatchObject({ source: src, destination: dst, state: 'broken' });
    expect([...(await treeOf(src)).keys()]).toContain('/never-mirrored');
    await s.mirrorDelete('m-take-other');
    await s.closeAll();
    await expect(s.mirrorResync('m-take', { reverse: true })).rejects.toMatchObject({ code: 'DIVERGED', message: expect.stringMatching(new RegExp(`^'${literal(src)}' holds what its source does not: \\d+ blocks .*\\. \`snapplane mirror resync m-take --reverse --discard\` discards it; to keep it, copy what you need off`)) });
    await s.closeAll();
    expect([...(await treeOf(src)).keys()]).toContain('/never-mirrored');
    expect((await s.mirrorStatus('m-take')).source).toBe(src);
    const rev = await s.mirrorResync('m-take', { reverse: true, discard: true });
    await s.closeAll();
    expect(rev.transfer).toBe('incremental');
    expectSameTree(await treeOf(src), await treeOf(dst, rev.to), 'after reverse resync');
    const info = await s.mirrorStatus('m-take');
    expect(info.source).toBe(dst);
    expect(info.destination).toBe(src);
    await s.closeAll();
  });
});

describe('a relationship updated at a time of day', () => {
  it('is due at once before its first update, then at the next HH:MM after each one; lagging after two periods', async () => {
    let t = new Date(2026, 11, 2, 10, 0).getTime();
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'at-state.json'), now: () => t });
    const src = `${fresh()}-src.img`;
    await s.createVolume(src, 8 << 20);
    const made = await s.mirrorCreate('nightly', src, `${fresh()}-m.img`, { kind: 'full', schedule: { kind: 'at', hour: 2, minute: 0 } });
    expect(made.every).toBe('at 02:00');
    expect(await s.dueMirrors()).toEqual(['nightly']);
    await s.mirrorUpdate('nightly');
    const at = (d: number, h: number, m = 0): number => new Date(2026, 11, d, h, m).getTime();
    expect((await s.mirrorStatus('nightly')).nextAt).toBe(new Date(at(3, 2)).toISOString());
    t = at(3, 1, 59);
    expect(await s.dueMirrors()).toEqual([]);
    t = at(3, 2);
    expect(await s.dueMirrors()).toEqual(['nightly']);
    await s.mirrorUpdate('nightly');
    expect((await s.mirrorStatus('nightly')).nextAt).toBe(new Date(at(4, 2)).toISOString());
    expect((await s.mirrorStatus('nightly')).state).toBe('idle');
    // Two days without an update (the host was off): lagging.
    t = at(5, 3);
    expect((await s.mirrorStatus('nightly')).state).toBe('lagging');
    await s.closeAll();
  });
});

describe('a scheduler whose list of due relationships went stale', () => {
  it('does not update one that was updated meanwhile; its claim is cleared when the update it was for is refused', async () => {
    const stateFile = join(dir, 'stale-state.json');
    let t = Date.parse('2026-12-03T10:00:00Z');
    const scheduler = new SnapplaneService({ cpIntervalMs: 0, stateFile, now: () => t });
    const shell = new SnapplaneService({ cpIntervalMs: 0, stateFile, now: () => t });
    const src = `${fresh()}-src.img`;
    await scheduler.createVolume(src, 8 << 20);
    await scheduler.closeAll();
    await shell.mirrorCreate('stale', src, `${fresh()}-m.img`, { kind: 'full', schedule: { kind: 'every', everyMs: 3_600_000 } });
    expect(await scheduler.dueMirrors()).toEqual(['stale']);
    // Updated from elsewhere after the scheduler listed it.
    await shell.mirrorUpdate('stale');
    await shell.closeAll();
    const before = await shell.mirrorStatus('stale');
    expect(await scheduler.mirrorClaimDue('stale')).toMatch(new RegExp(`^it was updated at ${before.lastTransferAt!.replace(/[.]/g, '\\.')}; next due at \\S+Z$`));
    expect(await shell.mirrorStatus('stale')).toMatchObject({ state: 'idle', lastCommon: before.lastCommon, lastTransferAt: before.lastTransferAt });
    await shell.mirrorDelete('stale');
    expect(await scheduler.mirrorClaimDue('stale')).toBe('it was deleted');

    // Claimed, then broken before the update starts: the update is refused and leaves no transferring mark behind.
    await shell.mirrorCreate('claimed', src, `${fresh()}-m.img`, { kind: 'full', schedule: { kind: 'every', everyMs: 3_600_000 } });
    await shell.mirrorUpdate('claimed');
    await shell.closeAll();
    t += 3_600_000;
    expect(await scheduler.dueMirrors()).toEqual(['claimed']);
    expect(await scheduler.mirrorClaimDue('claimed')).toBeNull();
    expect((await shell.mirrorStatus('claimed')).state).toBe('transferring');
    await shell.mirrorBreak('claimed');
    await expect(scheduler.mirrorUpdate('claimed')).rejects.toMatchObject({ code: 'INVALID' });
    expect((await shell.mirrorStatus('claimed')).state).toBe('broken');
    // What another process reads (it would take a mark of this live process for a transfer and wait on it).
    const persisted = JSON.parse(await readFile(stateFile, 'utf8')) as { relationships: Record<string, { transferring: unknown }> };
    expect(persisted.relationships.claimed.transferring).toBeNull();
    expect(await scheduler.mirrorClaimDue('claimed')).toBe('it was broken (its mirror taken over)');
    await scheduler.closeAll();
    await shell.closeAll();
  });
});

describe('changing a relationship\'s settings (mirror set)', () => {
  it('changes the schedule, limit and key file in place: the common snapshot and holds stay, the next update is incremental', async () => {
    const c = await servedCase('set', 16 << 20);
    const { src, key, s } = c;
    try {
      await work(src, 31, 6);
      const dest = `127.0.0.1:${c.ep.port}/mirror`;
      await s.mirrorCreate('set', src, dest, { kind: 'full', keyFile: key, schedule: { kind: 'every', everyMs: 86_400_000 } });
      await s.mirrorUpdate('set');
      const before = await s.mirrorStatus('set');
      expect(before).toMatchObject({ every: 'every 1d', limit: null, keyFile: key, state: 'idle' });

      const r = await s.mirrorSet('set', { schedule: { kind: 'every', everyMs: 900_000 }, limit: 1 << 20 });
      expect(r.changed).toEqual([
        { setting: 'schedule', from: 'every 1d', to: 'every 15m' },
        { setting: 'limit', from: null, to: 1 << 20 },
      ]);
      expect(r.mirror).toMatchObject({ every: 'every 15m', limit: 1 << 20, lastCommon: before.lastCommon, lastTransferAt: before.lastTransferAt, state: 'idle' });
      expect(Date.parse(r.mirror.nextAt!)).toBe(Date.parse(before.lastTransferAt!) + 900_000);
      // The same values again: nothing changes, and it says so.
      expect((await s.mirrorSet('set', { schedule: { kind: 'every', everyMs: 900_000 } })).changed).toEqual([]);
      // The key file moved (same key): the relationship follows it, and its next update still authenticates.
      const moved = join(dir, 'set-key-moved');
      await writeFile(moved, await readFile(key), { mode: 0o600 });
      expect((await s.mirrorSet('set', { keyFile: moved, limit: null })).changed).toEqual([
        { setting: 'limit', from: 1 << 20, to: null },
        { setting: 'keyFile', from: key, to: moved },
      ]);
      await s.closeAll();
      await work(src, 32, 3);
      const u = await s.mirrorUpdate('set');
      expect(u).toMatchObject({ transfer: 'incremental', from: before.lastCommon });
      await s.closeAll();
      expectSameTree(await treeOf(c.dst, u.to), await treeOf(src, u.to), 'mirror after set');
      // A key the endpoint does not know is refused by mirror set itself, which changes nothing...
      const wrong = await makeKey(dir, 'set-wrong-key');
      await expect(s.mirrorSet('set', { keyFile: wrong })).rejects.toMatchObject({ code: 'AUTH', message: expect.stringMatching(/authentication failed.*; nothing was changed$/) });
      expect((await s.mirrorStatus('set')).keyFile).toBe(moved);
      // ... and a key file changed under the relationship (on this host only): the failure names the relationship's
      // key file and how to change it.
      await writeFile(moved, await readFile(wrong));
      const advice = `relationship 'set' uses key file ${moved} (\`snapplane mirror set set --key-file <file>\` points it at another)`;
      await expect(s.mirrorUpdate('set')).rejects.toMatchObject({ code: 'AUTH', message: expect.stringMatching(/authentication failed.*; relationship 'set' uses key file/) });
      expect((await s.mirrorStatus('set')).lastError).toContain(advice);
      await expect(s.mirrorResync('set')).rejects.toMatchObject({ code: 'AUTH', message: expect.stringContaining(advice) });
      await writeFile(moved, await readFile(key));
      expect(await s.mirrorUpdate('set')).toMatchObject({ transfer: 'incremental', from: u.to });
      await s.closeAll();

      const off = await s.mirrorSet('set', { schedule: null });
      expect(off.changed).toEqual([{ setting: 'schedule', from: 'every 15m', to: null }]);
      expect(off.mirror).toMatchObject({ every: null, nextAt: null });
      // A scheduler a month on would have updated it before; on demand, never.
      const later = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json'), now: () => Date.now() + 30 * 86_400_000 });
      expect(await later.dueMirrors()).not.toContain('set');
      await s.mirrorSet('set', { schedule: { kind: 'every', everyMs: 900_000 } });
      expect(await later.dueMirrors()).toContain('set');
      await s.mirrorSet('set', { schedule: null });
      expect((await s.mirrorSet('set', { schedule: { kind: 'at', hour: 2, minute: 30, weekday: 0 } })).mirror.every).toBe('at 02:30 on sunday');

      // Refused, and nothing changes: what a relationship of its kind cannot take, an unreadable key, nothing to do.
      const settled = await s.mirrorStatus('set');
      await expect(s.mirrorSet('set', {})).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/^nothing to change for relationship 'set'/) });
      await expect(s.mirrorSet('set', { keyFile: join(dir, 'no-such-key') })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(s.mirrorSet('nosuch', { limit: 1 << 20 })).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining("no mirror relationship 'nosuch'") });
      expect(await s.mirrorStatus('set')).toEqual({ ...settled, lagSeconds: expect.any(Number) });
      const local = `${fresh()}-local.img`;
      await s.mirrorCreate('set-local', src, local, { kind: 'full' });
      await expect(s.mirrorSet('set-local', { keyFile: key })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('is for a remote destination') });
      await s.mirrorCreate('set-inc', src, `${fresh()}-fast`, { kind: 'incremental', slow: `file:${fresh()}-base.snap` });
      await expect(s.mirrorSet('set-inc', { limit: 1 << 20 })).rejects.toThrow(/--limit paces transfers into a volume/);
      expect((await s.mirrorSet('set-inc', { schedule: { kind: 'every', everyMs: 3_600_000 } })).mirror.every).toBe('every 1h');
    } finally {
      await c.stop();
    }
  });

  it('while an update runs, other processes see its progress, and a settings change made then stands (the update does not write the old ones back)', async () => {
    const stateFile = join(dir, 'set-race-state.json');
    const updater = new SnapplaneService({ cpIntervalMs: 0, stateFile });
    const shell = new SnapplaneService({ cpIntervalMs: 0, stateFile });
    const src = `${fresh()}-src.img`;
    await updater.createVolume(src, 32 << 20);
    await updater.closeAll();
    const v = await Volume.open(src, { cpIntervalMs: 0 });
    await v.writeFile('/payload', pattern(3 << 20, 12));
    await v.close();
    const mirror = `${fresh()}-m.img`;
    // 1 MiB/s: the initializing update takes about 3 s.
    await updater.mirrorCreate('race', src, mirror, { kind: 'full', limit: 1 << 20 });
    // What a writer killed mid-write would leave (a pid above Linux's highest): cleaned up when a transfer ends.
    await mkdir(join(dir, 'progress'), { recursive: true });
    await writeFile(join(dir, 'progress', `race.json.${2 ** 22 + 1}.tmp`), '{"half');
    try {
      const running = updater.mirrorUpdate('race');
      const t0 = Date.now();
      while ((await shell.mirrorStatus('race')).state !== 'transferring' && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
      expect((await shell.mirrorStatus('race')).state).toBe('transferring');
      // Another process sees how far the transfer got (the daemon's updates show nowhere else).
      let seen: MirrorInfo['progress'] = null;
      while (!(seen = (await shell.mirrorStatus('race')).progress) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
      expect(seen).toMatchObject({ phase: 'transfer', unit: 'bytes' });
      expect(seen!.total).toBeGreaterThan(3 << 20);
      expect(seen!.done).toBeLessThan(seen!.total);
      expect(Math.abs(Date.parse(seen!.at) - Date.now())).toBeLessThan(5_000);
      const set = await shell.mirrorSet('race', { schedule: { kind: 'every', everyMs: 3_600_000 }, limit: null });
      expect(set.mirror.state).toBe('transferring');
      const u = await running;
      expect(u.transfer).toBe('full');
      expect(await shell.mirrorStatus('race')).toMatchObject({ state: 'idle', every: 'every 1h', limit: null, lastCommon: u.to, progress: null });
      // Its progress file went with it.
      expect(await readdir(join(dir, 'progress'))).toEqual([]);
      await updater.closeAll();
      expectSameTree(await treeOf(mirror), await treeOf(src), 'mirror');
    } finally {
      await updater.closeAll();
      await shell.closeAll();
    }
  });
});

describe('mirror update --dry-run', () => {
  it('says what an update would send (about as many blocks, the same snapshots along) and takes, sends and records nothing', async () => {
    const c = await servedCase('dry', 16 << 20);
    const { src, key, s } = c;
    try {
      await work(src, 41, 6);
      const dest = `127.0.0.1:${c.ep.port}/mirror`;
      await s.mirrorCreate('dry', src, dest, { kind: 'full', keyFile: key });
      const init = await s.mirrorUpdatePreview('dry');
      expect(init).toMatchObject({ transfer: 'full', from: null, to: 'mirror.dry.1', dryRun: true });
      const made = await s.mirrorUpdate('dry');
      expect(made.to).toBe(init.to);
      expect(Math.abs(made.blocks - init.blocks)).toBeLessThanOrEqual(16);
      await s.closeAll();
      await work(src, 42, 5);
      const v = await Volume.open(src, { cpIntervalMs: 0 });
      await v.createSnapshot('between');
      await v.writeFile('/after-between.bin', pattern(200_000, 43));
      await v.close();
      const before = { status: await s.mirrorStatus('dry'), snapshots: (await snapshots(src)).map((e) => e.name), mirror: (await snapshots(c.dst)).map((e) => e.name) };
      await s.closeAll();
      const p = await s.mirrorUpdatePreview('dry');
      expect(p).toMatchObject({ transfer: 'incremental', from: made.to, to: 'mirror.dry.2', carried: ['between'], dryRun: true });
      await s.closeAll();
      // Nothing taken, sent or recorded.
      expect((await snapshots(src)).map((e) => e.name)).toEqual(before.snapshots);
      expect((await snapshots(c.dst)).map((e) => e.name)).toEqual(before.mirror);
      expect(await s.mirrorStatus('dry')).toEqual({ ...before.status, lagSeconds: expect.any(Number) });
      await s.closeAll();
      const u = await s.mirrorUpdate('dry');
      expect(u).toMatchObject({ transfer: 'incremental', from: p.from, to: p.to, carried: p.carried });
      // "About": the update's own CP and snapshot add a few metadata blocks to what the preview counted.
      expect(p.blocks).toBeGreaterThan(50);
      expect(Math.abs(u.blocks - p.blocks)).toBeLessThanOrEqual(16);
      expect(p.dropped).toEqual([]);
      // A snapshot the mirror has and the source deleted: named as one the update deletes there, as it then does.
      await s.closeAll();
      const w = await Volume.open(src, { cpIntervalMs: 0 });
      await w.deleteSnapshot('between');
      await w.close();
      const dropping = await s.mirrorUpdatePreview('dry');
      expect(dropping.dropped).toEqual(['between']);
      expect(describeMirrorUpdatePreview(dropping, String)).toMatch(/; the mirror would delete between \(deleted on the source\) unless held there or needed by its own destinations; nothing was sent$/);
      await s.closeAll();
      expect((await s.mirrorUpdate('dry')).dropped).toEqual(['between']);
      // It asks the destination as an update does: a key the endpoint does not know (the relationship's key file
      // changed on this host only) is refused the same way, naming the key file.
      const own = join(dir, 'dry-own-key');
      await writeFile(own, await readFile(key), { mode: 0o600 });
      await s.mirrorSet('dry', { keyFile: own });
      await writeFile(own, await readFile(await makeKey(dir, 'dry-wrong-key')));
      await expect(s.mirrorUpdatePreview('dry')).rejects.toMatchObject({ code: 'AUTH', message: expect.stringContaining(`relationship 'dry' uses key file ${own}`) });
      expect((await s.mirrorStatus('dry')).lastError).toBeNull();
      await s.mirrorSet('dry', { keyFile: key });
      await expect(s.mirrorUpdatePreview('nosuch')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      // An incremental mirror: the same before and after its first update; a lost base image fails it as the update would.
      const base = `${fresh()}-base.snap`;
      await s.mirrorCreate('dry-inc', src, `${fresh()}-fast`, { kind: 'incremental', slow: `file:${base}` });
      expect(await s.mirrorUpdatePreview('dry-inc')).toMatchObject({ transfer: 'full', to: 'mirror.dry-inc.1', dryRun: true });
      await s.mirrorUpdate('dry-inc');
      await s.closeAll();
      await work(src, 44, 3);
      const inc = await s.mirrorUpdatePreview('dry-inc');
      expect(inc).toMatchObject({ transfer: 'incremental', from: 'mirror.dry-inc.1', to: 'mirror.dry-inc.2' });
      expect(inc.blocks).toBeGreaterThan(0);
      await rm(base);
      await expect(s.mirrorUpdatePreview('dry-inc')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('is missing (deleted or moved)') });
    } finally {
      await c.stop();
    }
  });
});

describe('a scheduled relationship that keeps failing', () => {
  it('is retried after 1, 2, 4… minutes (not at every scheduler pass), up to its interval; a success resets it; a deleted source is reported at once', async () => {
    let t = Date.parse('2026-12-02T10:00:00Z');
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'backoff-state.json'), now: () => t });
    const src = `${fresh()}-src.img`;
    await s.createVolume(src, 8 << 20);
    const key = await makeKey(dir, 'backoff-key');
    // Port 1 on 127.0.0.1: nothing listens, every update fails at once with NET.
    await s.mirrorCreate('away', src, '127.0.0.1:1/m', { kind: 'full', keyFile: key, schedule: { kind: 'every', everyMs: 3_600_000 } });
    expect(await s.dueMirrors()).toEqual(['away']);
    const minute = 60_000;
    for (const wait of [1, 2, 4, 8, 16, 32, 60, 60]) {
      await expect(s.mirrorUpdate('away')).rejects.toMatchObject({ code: 'NET' });
      expect((await s.mirrorStatus('away')).nextAt).toBe(new Date(t + wait * minute).toISOString());
      t += wait * minute - 1000;
      expect(await s.dueMirrors()).toEqual([]);
      t += 1000;
      expect(await s.dueMirrors()).toEqual(['away']);
    }
    await s.mirrorDelete('away');
    // A local one whose source another process holds (LOCKED): once it gets through, its interval counts again.
    await s.closeAll();
    const dst = `${fresh()}-dst.img`;
    await s.mirrorCreate('held', src, dst, { kind: 'full', schedule: { kind: 'every', everyMs: 3_600_000 } });
    await s.closeAll();
    const writer = await Volume.open(src, { cpIntervalMs: 0 });
    await expect(s.mirrorUpdate('held')).rejects.toMatchObject({ code: 'LOCKED' });
    await writer.close();
    expect((await s.mirrorStatus('held')).nextAt).toBe(new Date(t + minute).toISOString());
    t += minute;
    expect(await s.dueMirrors()).toEqual(['held']);
    await s.mirrorUpdate('held');
    expect((await s.mirrorStatus('held')).nextAt).toBe(new Date(t + 3_600_000).toISOString());
    t += minute;
    expect(await s.dueMirrors()).toEqual([]);
    await s.closeAll();
    // Its source deleted: the status says so now (it said idle, lag '?', until the next update failed).
    await rm(src);
    expect(await s.mirrorStatus('held')).toMatchObject({ state: 'failed', lastError: `the source volume '${src}' does not exist (any more)` });
    await s.closeAll();
  });
});

describe('snapshot order across a takeover', () => {
  it('a mirror that made far fewer CPs than its source: snapshots taken after a takeover order after the received ones, and a reverse resync works', async () => {
    const { base, src, s } = await sourceWithWork(32, 80, 10);
    // The source has made many more CPs than the mirror will (as a busy volume does against its mirror).
    const v = await Volume.open(src, { cpIntervalMs: 0 });
    for (let i = 0; i < 60; i++) {
      await v.writeFile('/tick', Buffer.from(`tick ${i}`));
      await v.sync();
    }
    await v.createSnapshot('user-snap');
    await v.close();
    const dst = `${base}-dst-gen.img`;
    await s.mirrorCreate('m-gen', src, dst, { kind: 'full' });
    const init = await s.mirrorUpdate('m-gen');
    await s.closeAll();
    await s.mirrorBreak('m-gen');
    await work(dst, 81, 5);
    await s.snapCreate(dst, 'after-takeover');
    await s.closeAll();
    // Oldest first: what the mirror took itself comes after everything it received.
    expect((await s.snapList({ volume: dst })).map((x) => x.name)).toEqual(['user-snap', init.to, 'after-takeover']);
    await s.closeAll();
    const rev = await s.mirrorResync('m-gen', { reverse: true });
    await s.closeAll();
    expect(rev.transfer).toBe('incremental');
    expect(rev.from).toBe(init.to);
    expectSameTree(await treeOf(src), await treeOf(dst, rev.to), 'after the reverse resync');
    expect((await s.mirrorStatus('m-gen')).state).toBe('idle');
    await s.closeAll();
  });
});

describe('a full mirror after an update stopped between its steps', () => {

  it('an update whose answer was lost after the mirror committed: the next one takes that snapshot as the common one', async () => {
    const c = await servedCase('lost', 16 << 20);
    const { src, key, s, dst } = c;
    await work(src, 40, 10);
    const proxy = new FaultProxy(c.ep.port);
    await proxy.start();
    try {
      await s.mirrorCreate('m-lost', src, `127.0.0.1:${proxy.port}/mirror`, { kind: 'full', keyFile: key });
      const init = await s.mirrorUpdate('m-lost');
      await s.closeAll();
      await work(src, 41, 8);
      // The receive commits, then its answer never arrives.
      proxy.dropReply = (d) => d.includes('"result"');
      await expect(s.mirrorUpdate('m-lost')).rejects.toMatchObject({ code: 'NET' });
      proxy.dropReply = null;
      await s.closeAll();
      const landed = own(await s.snapList({ volume: dst }), 'm-lost');
      expect(landed).toHaveLength(1);
      expect(landed[0]).not.toBe(init.to);
      await s.closeAll();
      await work(src, 42, 8);
      const next = await s.mirrorUpdate('m-lost');
      expect(next.transfer).toBe('incremental');
      expect(next.from).toBe(landed[0]);
      await s.closeAll();
      expectSameTree(await treeOf(dst), await treeOf(src), 'after the update that followed');
      expect(own(await s.snapList({ volume: dst }), 'm-lost')).toEqual([next.to]);
      expect(own(await s.snapList({ volume: src }), 'm-lost')).toEqual([next.to]);
      expect((await s.mirrorStatus('m-lost')).lastError).toBeNull();
    } finally {
      await proxy.stop();
      await c.stop();
    }
  });

  it('the relationship\'s own snapshots left on the source by a stopped update are deleted by the next one', async () => {
    const { base, src, s } = await sourceWithWork(32, 43, 10);
    const dst = `${base}-dst.img`;
    await s.mirrorCreate('m-stray', src, dst, { kind: 'full' });
    await s.mirrorUpdate('m-stray');
    // What an update killed after taking its snapshot, before recording it, leaves: a held snapshot no one frees.
    await s.snapCreate(src, 'mirror.m-stray.77');
    await s.snapHold(src, 'mirror.m-stray.77', true);
    // Another relationship's (whose name starts alike) and the user's stay.
    await s.snapCreate(src, 'mirror.m-stray.x.3');
    await s.snapCreate(src, 'mine');
    await s.closeAll();
    const r = await s.mirrorUpdate('m-stray');
    await s.closeAll();
    const names = (await s.snapList({ volume: src })).map((x) => x.name);
    expect(names).not.toContain('mirror.m-stray.77');
    expect(names).toEqual(expect.arrayContaining(['mirror.m-stray.x.3', 'mine', r.to]));
    expect(own(await s.snapList({ volume: dst }), 'm-stray')).toEqual([r.to]);
    await s.closeAll();
  });

  it('a resync from a snapshot of the user\'s keeps it on both sides (only the relationship\'s own are deleted)', async () => {
    const { base, src, s } = await sourceWithWork(32, 44, 10);
    const dst = `${base}-dst.img`;
    await s.snapCreate(src, 'mon');
    await s.closeAll();
    await s.mirrorCreate('m-user', src, dst, { kind: 'full' });
    const init = await s.mirrorUpdate('m-user');
    expect(init.carried).toEqual(['mon']);
    await s.mirrorBreak('m-user');
    // On the taken-over mirror the relationship's snapshot goes: the newest one both sides have is now 'mon'.
    await s.snapDelete(dst, init.to);
    await s.closeAll();
    await work(src, 45, 6);
    const r = await s.mirrorResync('m-user');
    await s.closeAll();
    expect(r.common).toBe('mon');
    expect(r.transfer).toBe('incremental');
    expectSameTree(await treeOf(dst), await treeOf(src, r.to), 'after resync');
    for (const vol of [src, dst]) {
      const mon = (await s.snapList({ volume: vol })).find((x) => x.name === 'mon');
      expect(mon, `'mon' on ${vol}`).toBeDefined();
      // The hold the resync took is let go once the relationship has moved past 'mon'.
      expect(mon!.flags.hold, `'mon' on ${vol} held`).toBe(false);
      await s.closeAll();
    }
    await s.snapDelete(src, 'mon');
    await s.closeAll();
  });
});

describe('a full mirror keeps the source\'s snapshots', () => {
  it('carries the ones taken between updates (still chosen by the marks) and deletes the ones the source deleted, over the wire', async () => {
    const c = await servedCase('carry', 16 << 20);
    const { src, key, s, ep, dst } = c;
    let v = await Volume.open(src, { cpIntervalMs: 0 });
    await v.writeFile('/keep', pattern(1 << 20, 1));
    await v.writeFile('/old', pattern(5 << 20, 2));
    await v.createSnapshot('daily-1');
    await v.remove('/old');
    await v.close();
    try {
      await s.mirrorCreate('m-carry', src, `127.0.0.1:${ep.port}/mirror`, { kind: 'full', keyFile: key });
      const init = await s.mirrorUpdate('m-carry');
      expect(init.transfer).toBe('full');
      expect(init.carried).toEqual(['daily-1']);
      await s.closeAll();
      expect((await s.snapList({ volume: dst })).map((x) => x.name)).toEqual(['daily-1', init.to]);
      await s.closeAll();
      expectSameTree(await treeOf(dst, 'daily-1'), await treeOf(src, 'daily-1'), 'daily-1 after initialize');

      // A file written and snapshotted, then deleted before the update: the mark-on-allocate image forgets its
      // blocks, the snapshot still holds them.
      v = await Volume.open(src, { cpIntervalMs: 0 });
      await v.writeFile('/brief', pattern(2 << 20, 3));
      await v.createSnapshot('hourly-a');
      await v.remove('/brief');
      await v.writeAt('/keep', 4096, pattern(50_000, 4));
      await v.createSnapshot('hourly-b');
      await v.close();
      const r1 = await s.mirrorUpdate('m-carry');
      expect(r1.selection).toBe('marks');
      expect(r1.carried).toEqual(['hourly-a', 'hourly-b']);
      expect(r1.dropped).toEqual([]);
      await s.closeAll();
      for (const snap of ['daily-1', 'hourly-a', 'hourly-b', r1.to]) expectSameTree(await treeOf(dst, snap), await treeOf(src, snap), `${snap} after update 1`);
      expect((await s.fsck(dst)).issues).toEqual([]);
      await s.closeAll();

      // The source deletes snapshots and writes over the space they held (it reuses their blocks): the mirror must
      // let go of its copies before the incoming blocks land there.
      await s.snapDelete(src, 'daily-1');
      await s.snapDelete(src, 'hourly-a');
      await s.closeAll();
      await writeAndSnapshot(src, '/new', 9 << 20, 5, 'hourly-c');
      const r2 = await s.mirrorUpdate('m-carry');
      expect(r2.carried).toEqual(['hourly-c']);
      expect(r2.dropped).toEqual(['daily-1', 'hourly-a']);
      await s.closeAll();
      expect((await s.snapList({ volume: dst })).map((x) => x.name)).toEqual(['hourly-b', 'hourly-c', r2.to]);
      await s.closeAll();
      for (const snap of ['hourly-b', 'hourly-c', r2.to]) expectSameTree(await treeOf(dst, snap), await treeOf(src, snap), `${snap} after update 2`);
      expect((await s.fsck(dst)).issues).toEqual([]);
      // Nothing new since: the next update carries no snapshot along.
      const r3 = await s.mirrorUpdate('m-carry');
      expect(r3.carried).toEqual([]);
      expect(r3.dropped).toEqual([]);
    } finally {
      await c.stop();
    }
  });
});

describe('incremental mirrors', () => {
  it('keep a sparse structure no larger than the difference from the base, and reconstruct the source', async () => {
    const { base, src, s } = await sourceWithWork(64, 30, 25);
    const fast = `${base}-fast`;
    const slow = `${base}-base.snap`;
    await s.mirrorCreate('m-inc', src, fast, { kind: 'incremental', slow: `file:${slow}` });
    const init = await s.mirrorUpdate('m-inc');
    expect(init.transfer).toBe('full');
    expect(init.deltaBlocks).toBe(0);
    await s.closeAll();
    let last = init;
    for (let round = 1; round <= 3; round++) {
      await work(src, 30 + round, 12);
      last = await s.mirrorUpdate('m-inc');
      expect(last.selection).toBe('marks');
      await s.closeAll();
      // The structure holds exactly the blocks of the newest state that are not the base's.
      const v = await Volume.open(src, { readOnly: true, cpIntervalMs: 0 });
      await v.close();
      expect(last.deltaBytes!).toBeLessThanOrEqual(last.deltaBlocks! * 4096 + 64 * 4096);
      const out = `${base}-recon${round}.img`;
      const rec = await s.mirrorReconstruct('m-inc', out);
      expect(rec.current).toBe(last.to);
      await s.closeAll();
      expectSameTree(await treeOf(out), await treeOf(src, last.to), `reconstruct after update ${round}`);
      expect((await s.fsck(out)).clean).toBe(true);
      await s.closeAll();
    }
    // Big writes, then deleting them: the deallocation lists shrink the structure back.
    const v = await Volume.open(src, { cpIntervalMs: 0 });
    for (let i = 0; i < 8; i++) await v.writeFile(`/big${i}`, pattern(1 << 20, i));
    await v.close();
    const grown = await s.mirrorUpdate('m-inc');
    await s.closeAll();
    const v2 = await Volume.open(src, { cpIntervalMs: 0 });
    for (let i = 0; i < 8; i++) await v2.remove(`/big${i}`);
    await v2.close();
    const shrunk = await s.mirrorUpdate('m-inc');
    await s.closeAll();
    expect(grown.deltaBlocks! - shrunk.deltaBlocks!).toBeGreaterThanOrEqual(8 * 256);
    expect(shrunk.deltaBytes!).toBeLessThan(grown.deltaBytes! - 4 * (1 << 20));
    const out = `${base}-recon-final.img`;
    await s.mirrorReconstruct('m-inc', out);
    await s.closeAll();
    expectSameTree(await treeOf(out), await treeOf(src, shrunk.to), 'final reconstruct');
    expect((await stat(slow)).size).toBeGreaterThan(0);
  });

  it('keep their base on a tape folder as well: initialize, update, reconstruct', async () => {
    const { base, src, s } = await sourceWithWork(32, 70, 15);
    const fast = `${base}-fast-t`;
    const tapes = `${base}-tapes`;
    await s.mirrorCreate('m-tape', src, fast, { kind: 'incremental', slow: `tape:${tapes}` });
    // The base went through the tape writer with a size meant as "one tape", which once came out as 256 bytes.
    const init = await s.mirrorUpdate('m-tape');
    expect(init.transfer).toBe('full');
    expect((await readdir(tapes)).filter((f) => f.endsWith('.tap'))).toEqual(['tape-0001.tap']);
    await s.closeAll();
    await work(src, 71, 10);
    const next = await s.mirrorUpdate('m-tape');
    expect(next.transfer).toBe('incremental');
    await s.closeAll();
    const out = `${base}-recon-tape.img`;
    await s.mirrorReconstruct('m-tape', out);
    await s.closeAll();
    expectSameTree(await treeOf(out), await treeOf(src, next.to), 'reconstruct from a tape base');
  });
});

describe('master snapshots and holds', () => {
  it('a master is kept exactly until every known destination has moved past it, then deleting it frees what was predicted', async () => {
    const { base, src, s } = await sourceWithWork(48, 40, 15);
    const d1 = `${base}-d1.img`;
    const d2 = `${base}-d2.img`;
    await s.snapCreate(src, 'M1');
    await s.masterMark(src, 'M1', true);
    expect((await s.replicate(src, d1)).kind).toBe('full');
    expect((await s.replicate(src, d2)).kind).toBe('full');
    await s.closeAll();
    await work(src, 41, 15);
    await s.snapCreate(src, 'M2');
    await s.masterMark(src, 'M2', true);
    const r1 = await s.replicate(src, d1);
    expect(r1.kind).toBe('incremental');
    expect(r1.from).toBe('M1');
    // d2 is still at M1: M1 stays, and so do the blocks only it holds.
    const masters = await s.masterList(src);
    expect(masters.find((m) => m.name === 'M1')!.neededBy).toEqual([d2]);
    await expect(s.snapDelete(src, 'M1')).rejects.toMatchObject({ code: 'HELD', message: expect.stringContaining(d2) });
    await expect(s.masterMark(src, 'M1', false)).rejects.toMatchObject({ code: 'HELD', message: expect.stringMatching(/not moved past it yet \(replicate to it first, or `snapplane master release .* <destination>` for one that is gone\)$/) });
    // M2 is the newest master: replicating cannot move d1 past it, so that is not the advice.
    await expect(s.masterMark(src, 'M2', false)).rejects.toMatchObject({ code: 'HELD', message: expect.stringMatching(/not moved past it yet \(mark a newer master snapshot and replicate to them first, or `snapplane master release .* <destination>` for one that is gone\)$/) });
    await s.scheduleAdd(src, 'M', { kind: 'every', everyMs: 3_600_000 }, 1);
    const dry = await s.scheduleRun(src, { dryRun: true });
    expect(dry.prune).not.toContain('M1');
    await s.scheduleRemove(src, 'M');
    const predicted = await s.space(src, ['M1']);
    expect(predicted.freedBytes).toBeGreaterThan(0);
    expect((await s.replicate(src, d2)).kind).toBe('incremental');
    // Every destination is past M1 now.
    expect((await s.masterList(src)).find((m) => m.name === 'M1')!.neededBy).toEqual([]);
    const before = (await s.volumeInfo({ volume: src })).freeBytes;
    await s.snapDelete(src, 'M1');
    const after = (await s.volumeInfo({ volume: src })).freeBytes;
    expect(Math.abs(after - before - predicted.freedBytes)).toBeLessThanOrEqual(16 * 4096);
    await s.closeAll();
    expectSameTree(await treeOf(d2), await treeOf(src, 'M2'), 'd2 at M2');
    // The next update deletes M1 on the destination too (the source may reuse its blocks) and says so.
    await work(src, 42, 5);
    await s.snapCreate(src, 'M3');
    await s.masterMark(src, 'M3', true);
    const r3 = await s.replicate(src, d2);
    expect(r3.dropped).toEqual(['M1']);
    await s.closeAll();
    expect((await s.snapList({ volume: d2 })).map((x) => x.name)).toEqual(['M2', 'M3']);
    await s.closeAll();
  });

  it('a destination that will not come back is released: the masters only it needed may go', async () => {
    const { base, src, s } = await sourceWithWork(32, 46, 10);
    const gone = `${base}-gone.img`;
    const kept = `${base}-kept.img`;
    await s.snapCreate(src, 'M1');
    await s.masterMark(src, 'M1', true);
    await s.replicate(src, gone);
    await s.closeAll();
    await work(src, 47, 6);
    await s.snapCreate(src, 'M2');
    await s.masterMark(src, 'M2', true);
    await s.replicate(src, kept);
    await s.closeAll();
    // The first destination's host is lost for good: M1 is held for it until it is released.
    await rm(gone, { force: true });
    await expect(s.snapDelete(src, 'M1')).rejects.toMatchObject({ code: 'HELD', message: expect.stringContaining(gone) });
    await expect(s.masterRelease(src, `${base}-nowhere.img`)).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(kept) });
    expect(await s.masterRelease(src, gone)).toEqual({ destination: gone, released: ['M1'] });
    expect((await s.masterList(src)).map((m) => [m.name, m.neededBy])).toEqual([
      ['M1', []],
      ['M2', [kept]],
    ]);
    await s.snapDelete(src, 'M1');
    await expect(s.snapDelete(src, 'M2')).rejects.toMatchObject({ code: 'HELD' });
    await s.closeAll();
  });

  it('one destination reached by two addresses (localhost, 127.0.0.1, a restarted endpoint) is one record: its holds follow its newest master', async () => {
    const { src, root, key, s } = await wireCase('two-names-key', 32 << 20);
    const serve = (): Promise<{ server: SnapplaneService; ep: Endpoint }> => {
      const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'two-names-server.json') });
      return server.serve({ port: 0, root, keyFile: key, holdMs: 0 }).then((ep) => ({ server, ep }));
    };
    let end = await serve();
    const master = async (name: string, seed: number): Promise<void> => {
      await s.closeAll();
      await work(src, seed, 4);
      await s.snapCreate(src, name);
      await s.masterMark(src, name, true);
    };
    try {
      await master('M1', 61);
      await s.replicate(src, `127.0.0.1:${end.ep.port}/x`, { keyFile: key });
      await master('M2', 62);
      const second = `localhost:${end.ep.port}/x`;
      expect((await s.replicate(src, second, { keyFile: key })).kind).toBe('incremental');
      await s.closeAll();
      // Before, the 127.0.0.1 record stayed at M1 and held it for ever (the volume's UUID is its source's: no help).
      expect((await s.masterList(src)).map((m) => [m.name, m.neededBy])).toEqual([
        ['M1', []],
        ['M2', [second]],
      ]);
      await s.masterMark(src, 'M1', false);
      await s.snapDelete(src, 'M1');
      // The endpoint's id stays in its root: restarted on another port, it is the same destination.
      await end.ep.close();
      await end.server.closeAll();
      end = await serve();
      await master('M3', 63);
      const third = `127.0.0.1:${end.ep.port}/x`;
      expect((await s.replicate(src, third, { keyFile: key })).kind).toBe('incremental');
      await s.closeAll();
      expect((await s.masterList(src)).map((m) => [m.name, m.neededBy])).toEqual([
        ['M2', []],
        ['M3', [third]],
      ]);
      // Another volume of the same endpoint is another destination.
      await s.replicate(src, `127.0.0.1:${end.ep.port}/y`, { keyFile: key });
      await s.closeAll();
      expect((await s.masterList(src)).find((m) => m.name === 'M3')!.neededBy.sort()).toEqual([third, `127.0.0.1:${end.ep.port}/y`].sort());
      expectSameTree(await treeOf(join(root, 'x')), await treeOf(src, 'M3'), 'x');
    } finally {
      await end.ep.close();
      await end.server.closeAll();
      await s.closeAll();
    }
  });

  it('a damaged endpoint id file: serve says so in its log and serves on, its volumes known by address; removed, a new id is made', async () => {
    const { src, root, key, s } = await wireCase('damaged-id-key', 32 << 20);
    const idFile = join(root, '.snapplane-endpoint.json');
    await writeFile(idFile, '{"id": ');
    const serve = async (log: string[]): Promise<{ server: SnapplaneService; ep: Endpoint }> => {
      const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'damaged-id-server.json') });
      return { server, ep: await server.serve({ port: 0, root, keyFile: key, holdMs: 0, log: (l) => log.push(l) }) };
    };
    const recorded = async (): Promise<{ destination: string; id?: string }[]> => JSON.parse(await readFile(`${src}.destinations.json`, 'utf8')) as { destination: string; id?: string }[];
    const log: string[] = [];
    let end = await serve(log);
    try {
      expect(log).toEqual([expect.stringMatching(/^warning: the endpoint id file .*\.snapplane-endpoint\.json is damaged \(it is not JSON\): sources know its volumes by address only .*; remove it and restart to make a new id$/)]);
      await work(src, 71, 3);
      await s.snapCreate(src, 'M1');
      await s.masterMark(src, 'M1', true);
      await s.replicate(src, `127.0.0.1:${end.ep.port}/x`, { keyFile: key });
      await s.closeAll();
      expect((await recorded()).map((d) => [d.destination, d.id ?? null])).toEqual([[`127.0.0.1:${end.ep.port}/x`, null]]);
      // Left as it was for the operator to look at, not written over.
      expect(await readFile(idFile, 'utf8')).toBe('{"id": ');
      await end.ep.close();
      await end.server.closeAll();
      await rm(idFile);
      const again: string[] = [];
      end = await serve(again);
      expect(again).toEqual([]);
      await work(src, 72, 3);
      await s.snapCreate(src, 'M2');
      await s.masterMark(src, 'M2', true);
      const dest = `127.0.0.1:${end.ep.port}/x`;
      expect((await s.replicate(src, dest, { keyFile: key })).kind).toBe('incremental');
      await s.closeAll();
      const { id } = JSON.parse(await readFile(idFile, 'utf8')) as { id: string };
      expect((await recorded()).find((d) => d.destination === dest)?.id).toBe(`${id}/x`);
    } finally {
      await end.ep.close();
      await end.server.closeAll();
      await s.closeAll();
    }
  });

  it('serve warns in its log of a key file other users can read, and serves on; the facade says so for the CLI; an owner-only key draws nothing', async () => {
    const { root, key } = await wireCase('open-key', 16 << 20);
    const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'open-key-server.json') });
    expect(await server.keyFileWarning(key)).toBeNull();
    await chmod(key, 0o640);
    expect(await server.keyFileWarning(key)).toBe(`key file '${key}' is open to its group (mode 0640): whoever reads it can pose as either end of a replication; \`chmod 600 ${key}\``);
    await chmod(key, 0o644);
    const log: string[] = [];
    const ep = await server.serve({ port: 0, root, keyFile: key, holdMs: 0, log: (l) => log.push(l) });
    try {
      expect(log).toEqual([`warning: key file '${key}' is open to every user of this host (mode 0644): whoever reads it can pose as either end of a replication; \`chmod 600 ${key}\``]);
    } finally {
      await ep.close();
      await server.closeAll();
    }
  });

  it('a local destination named by a symbolic link to it is the same destination', async () => {
    const { base, src, s } = await sourceWithWork(16, 64, 4);
    const real = `${base}-real.img`;
    const link = `${base}-via-link.img`;
    await s.snapCreate(src, 'M1');
    await s.masterMark(src, 'M1', true);
    await s.replicate(src, real);
    await s.closeAll();
    await symlink(real, link);
    await work(src, 65, 3);
    await s.snapCreate(src, 'M2');
    await s.masterMark(src, 'M2', true);
    expect((await s.replicate(src, link)).kind).toBe('incremental');
    await s.closeAll();
    expect((await s.masterList(src)).map((m) => [m.name, m.neededBy])).toEqual([
      ['M1', []],
      ['M2', [link]],
    ]);
    await s.closeAll();
  });

  it('a volume named again as its own destination (the same path, a symbolic link) is refused, and holds nothing for itself', async () => {
    const { base, src, s } = await sourceWithWork(16, 48, 4);
    await s.snapCreate(src, 'M1');
    await s.masterMark(src, 'M1', true);
    const link = `${base}-link.img`;
    await symlink(src, link);
    for (const dest of [src, link]) {
      await expect(s.replicate(src, dest)).rejects.toMatchObject({ code: 'INVALID', message: 'source and destination are the same volume' });
      await expect(s.copy(src, dest, 'M1')).rejects.toMatchObject({ code: 'INVALID', message: 'source and destination are the same volume' });
    }
    await expect(s.mirrorCreate('m-self', src, link, { kind: 'full' })).rejects.toMatchObject({ code: 'INVALID', message: 'source and destination are the same volume' });
    // Before, the replication "succeeded" (up to date) and recorded the volume as its own destination: M1 was held for ever.
    expect((await s.masterList(src)).map((m) => [m.name, m.neededBy])).toEqual([['M1', []]]);
    await s.snapDelete(src, 'M1');
    await s.closeAll();
  });

  it('a second relationship into a volume that is already one\'s destination is refused when it is made', async () => {
    const { base, src, s } = await sourceWithWork(16, 95, 3);
    const shared = `${base}-shared.img`;
    await s.mirrorCreate('m-one', src, shared, { kind: 'full' });
    await expect(s.mirrorCreate('m-two', src, shared, { kind: 'replica' })).rejects.toMatchObject({ code: 'EXISTS', message: expect.stringContaining("is already the destination of relationship 'm-one'") });
    expect((await s.mirrorList()).map((m) => m.name)).not.toContain('m-two');
    await s.closeAll();
  });

  it('a mirror of a mirror is refused with what to do instead (it would snapshot a read-only mirror); a replica of it works', async () => {
    const { base, src, s } = await sourceWithWork(16, 90, 5);
    const b = `${base}-b.img`;
    const c = `${base}-c.img`;
    // b is a volume of its own when m-second is made, and becomes m-first's mirror after (an empty volume may).
    await s.createVolume(b, 16 << 20);
    await s.mirrorCreate('m-second', b, c, { kind: 'full' });
    await s.mirrorCreate('m-first', src, b, { kind: 'full' });
    await s.mirrorUpdate('m-first');
    await s.closeAll();
    const why = new RegExp(`'${literal(b)}' is the mirror of '.*' \\(relationship 'm-first'\\): a full mirror takes a snapshot of its source at every update.*--kind replica`);
    await expect(s.mirrorUpdate('m-second')).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(why) });
    await expect(s.mirrorCreate('m-third', b, `${base}-d.img`, { kind: 'incremental', slow: `file:${base}-d.snap` })).rejects.toThrow(/an incremental mirror takes a snapshot of its source/);
    await s.snapCreate(src, 'R1');
    await s.masterMark(src, 'R1', true);
    await s.mirrorUpdate('m-first');
    await s.mirrorCreate('m-replica', b, `${base}-e.img`, { kind: 'replica' });
    expect((await s.mirrorUpdate('m-replica')).to).toBe('R1');
    await s.closeAll();
    expectSameTree(await treeOf(`${base}-e.img`), await treeOf(src, 'R1'), 'replica of the mirror');
  });

  it('--limit paces a local destination too (a replica and a full mirror), and an incremental mirror refuses it', async () => {
    const { src, s } = await wireCase('local-limit-key', 32 << 20);
    const v = await Volume.open(src, { cpIntervalMs: 0 });
    await v.writeFile('/payload', pattern(3 << 20, 9));
    await v.createSnapshot('L1');
    await v.setSnapshotFlags('L1', { master: true });
    await v.close();
    try {
      const timed = async (fn: () => Promise<unknown>): Promise<number> => {
        const t0 = performance.now();
        await fn();
        return (performance.now() - t0) / 1000;
      };
      // 1 MiB/s from the first byte: a bit over 3 MiB needs at least 3 s (unpaced, it takes well under one).
      const replica = `${fresh()}-replica.img`;
      expect(await timed(() => s.replicate(src, replica, { limit: 1 << 20 }))).toBeGreaterThan(2.9);
      expectSameTree(await treeOf(replica), await treeOf(src, 'L1'), 'paced replica');
      const mirror = `${fresh()}-mirror.img`;
      await s.mirrorCreate('paced', src, mirror, { kind: 'full', limit: 1 << 20 });
      expect(await timed(() => s.mirrorUpdate('paced'))).toBeGreaterThan(2.9);
      await s.closeAll();
      expectSameTree(await treeOf(mirror), await treeOf(src), 'paced mirror');
      await expect(s.mirrorCreate('inc', src, `${fresh()}-fast`, { kind: 'incremental', slow: `file:${fresh()}-base.snap`, limit: 1 << 20 })).rejects.toThrow(/--limit paces transfers into a volume/);
      // Where an incremental mirror's halves go is checked when it is made, not at its first update.
      await expect(s.mirrorCreate('inc', src, join(dir, 'gone', 'fast'), { kind: 'incremental', slow: `file:${fresh()}-base.snap` })).rejects.toThrow(/cannot create fast folder .*: the folder '.*gone' does not exist/);
      await expect(s.mirrorCreate('inc', src, `${fresh()}-fast`, { kind: 'incremental', slow: `tape:${join(dir, 'gone', 'tapes')}` })).rejects.toThrow(/cannot create tape folder .*: the folder '.*gone' does not exist/);
    } finally {
      await s.closeAll();
    }
  });

  it('over the wire: --limit holds the rate down and progress arrives as the receiver lands blocks', async () => {
    const { src, root, key, s } = await wireCase('wire-key', 32 << 20);
    const v = await Volume.open(src, { cpIntervalMs: 0 });
    await v.writeFile('/payload', pattern(3 << 20, 7));
    await v.createSnapshot('W1');
    await v.setSnapshotFlags('W1', { master: true });
    await v.close();
    const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'server-state.json') });
    const ep = await server.serve({ port: 0, root, keyFile: key });
    try {
      const events: ProgressEvent[] = [];
      const t0 = performance.now();
      const r = await s.replicate(src, `127.0.0.1:${ep.port}/w`, { keyFile: key, limit: 1 << 20 }, (p) => events.push(p));
      const seconds = (performance.now() - t0) / 1000;
      // 1 MiB/s from the first byte: a bit over 3 MiB needs at least 3 s.
      expect(seconds).toBeGreaterThan(2.9);
      expect(r.bytes).toBeGreaterThan(3 << 20);
      // Progress per record landed (1 MiB, so about one a second here), at most one per 200 ms but the last: a
      // stall of the loaded machine can let two records through within 200 ms, so one of the three may merge.
      expect(events.filter((e) => e.done < e.total).length).toBeGreaterThanOrEqual(2);
      expect(events.every((e) => e.phase === 'transfer')).toBe(true);
      expect(events.at(-1)!.done).toBe(events.at(-1)!.total);
      const doneSeries = events.map((e) => e.done);
      expect([...doneSeries].sort((a, b) => a - b)).toEqual(doneSeries);
      expectSameTree(await treeOf(join(root, 'w')), await treeOf(src, 'W1'), 'over the wire');
    } finally {
      await ep.close();
      await s.closeAll();
      await server.closeAll();
    }
  });
});
