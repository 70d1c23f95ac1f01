/** The mirror-update fault drill, shared by `npm test` and `npm run soak`. */
import { expect } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume } from '../../core/fs/volume.js';
import type { MirrorUpdateReport } from '../../core/api/index.js';
import { json, ok } from '../cli/cli-helpers.js';
import { FaultProxy, randomWork, runWithFault, seeded, snapshots, startServer, treeDigest, treeOf, type ByteFault, type ServerProcess } from './replication.js';
import { expectSameTree } from './model.js';

const BIN = join(process.cwd(), 'bin', 'snapplane.js');
const REL = 'md';

export interface MirrorDrillOutcomes {
  ok: number;
  failed: number;
  resumed: number;
  drops: number;
  serverKills: number;
  clientKills: number;
  /** Client kills at a random time rather than at a byte count: they land after the stream too (commit, clean-up). */
  timedKills: number;
  /** Drills that ran `mirror resync --full` (the source had lost the common snapshot), and full copies that replaced the mirror. */
  fullResyncs: number;
  replaced: number;
}

/** The relationship's own snapshots on a volume (`mirror.md.N`). */
async function ownSnapshots(path: string): Promise<string[]> {
  return (await snapshots(path)).map((s) => s.name).filter((n) => n.startsWith(`mirror.${REL}.`));
}

/**
 * `count` updates of a full mirror (`mirror update` in a child process, over a proxy to a `serve` child) while the
 * source changes, with the connection dropped, the server or the client killed at random points. After each one the
 * mirror equals exactly one state the source had, never an older one than before, and neither side keeps more
 * than two of the relationship's snapshots (the last common one and an interrupted update's). Now and then the
 * source loses the common snapshot, and drills run `mirror resync --full` until the relationship has taken it up
 * (its copy lands beside the mirror and replaces it; later updates resume it): the same checks hold throughout.
 * At the end one more update succeeds, the mirror equals the source, each side keeps just the common snapshot,
 * and nothing of a replacement is left; when faults stopped every replacement, one runs without faults first.
 */
export async function runMirrorDrills(dir: string, key: string, count: number, seed: number): Promise<MirrorDrillOutcomes> {
  const src = join(dir, 'mdrill.img');
  const root = join(dir, 'mdrillB');
  await mkdir(root);
  const v = await Volume.create(src, { sizeBytes: 32 << 20, cpIntervalMs: 0 });
  await v.close();
  const dest = join(root, 'm');
  const rnd = seeded(seed);
  let server: ServerProcess = await startServer(root, key);
  const proxy = new FaultProxy(server.port);
  await proxy.start();
  // The states the source was in when an update could take its snapshot, in order.
  // Before its first full copy lands, a mirror created by the receive is empty: its base is nothing.
  const digests = new Map<string, number>([[treeDigest(new Map()), 0]]);
  let states = 0;
  const change = async (ops: number): Promise<void> => {
    const w = await Volume.open(src, { cpIntervalMs: 0 });
    try {
      const files = (await w.readdir('/')).filter((e) => e.type === 'file');
      if (files.length > 40) for (const f of files.slice(0, 20)) await w.remove(f.path);
      await randomWork(w, rnd, ops, `s${states + 1}`);
    } finally {
      await w.close();
    }
    digests.set(treeDigest(await treeOf(src)), ++states);
  };
  let seen = 0;
  let cleanMs = 1000;
  const outcomes: MirrorDrillOutcomes = { ok: 0, failed: 0, resumed: 0, drops: 0, serverKills: 0, clientKills: 0, timedKills: 0, fullResyncs: 0, replaced: 0 };
  // The common snapshot the source lost, until a `resync --full` has been recorded (the relationship is replacing).
  let lost: string | null = null;
  const status = (): Promise<{ lastCommon: string | null; replacing: boolean }> => json('mirror', 'status', REL);
  // Still lost: no `resync --full` has been recorded yet (a killed one may not have got that far).
  const stillLost = async (name: string): Promise<string | null> => {
    const st = await status();
    return st.replacing || st.lastCommon !== name ? null : name;
  };
  const loseCommon = async (name: string): Promise<void> => {
    const w = await Volume.open(src, { cpIntervalMs: 0 });
    try {
      await w.deleteSnapshot(name, { releaseHold: true });
    } finally {
      await w.close();
    }
  };
  try {
    await change(6);
    await ok('mirror', 'create', REL, src, `127.0.0.1:${proxy.port}/m`, '--kind', 'full', '--key-file', key);
    for (let drill = 0; drill < count; drill++) {
      if (rnd() < 0.6) await change(1 + Math.floor(rnd() * 8));
      if (lost) lost = await stillLost(lost);
      else if (seen > 0 && rnd() < 0.1) {
        const st = await status();
        if (st.lastCommon && !st.replacing) {
          await loseCommon(st.lastCommon);
          lost = st.lastCommon;
        }
      }
      if (lost) outcomes.fullResyncs++;
      const command = lost ? ['mirror', 'resync', REL, '--full', '--json'] : ['mirror', 'update', REL, '--json'];
      const fault = rnd();
      const at = Math.floor(rnd() ** (fault < 0.45 ? 2 : 3) * 1_200_000);
      const started = performance.now();
      const child = spawn(process.execPath, [BIN, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      // The last kind kills the client after a random time instead: also after the stream (commit, clean-up).
      const kind: ByteFault = fault < 0.1 ? 'none' : fault < 0.45 ? 'drop' : fault < 0.65 ? 'server' : fault < 0.8 ? 'client' : 'none';
      const timer =
        fault >= 0.8
          ? setTimeout(() => {
              if (child.exitCode === null && !child.killed) {
                outcomes.timedKills++;
                child.kill('SIGKILL');
              }
            }, rnd() * cleanMs * 1.2)
          : null;
      const { code, serverKilled, clientKilled } = await runWithFault(proxy, kind, at, child, server, async () => {
        server = await startServer(root, key, server.port);
      });
      if (timer) clearTimeout(timer);
      if (kind === 'drop') outcomes.drops++;
      if (serverKilled) outcomes.serverKills++;
      if (clientKilled) outcomes.clientKills++;
      if (code === 0) {
        outcomes.ok++;
        const r = JSON.parse(out) as MirrorUpdateReport;
        if (r.resumedFromVbn !== null) outcomes.resumed++;
        if (r.replaced) outcomes.replaced++;
        if (fault < 0.1) cleanMs = performance.now() - started;
      } else {
        outcomes.failed++;
        // A failure says what went wrong in one line, whatever the fault.
        if (!child.killed) expect(err.trim().split('\n').at(-1), `drill ${drill}: ${err}`).toMatch(/^snapplane: /);
      }
      if (process.env.SNAPPLANE_DRILL_LOG) console.log(`drill ${drill}: fault ${fault.toFixed(2)} at ${at} exit ${code} ${err.trim().split('\n').at(-1) ?? ''} src=${(await ownSnapshots(src)).join(',')} dest=${(await ownSnapshots(dest).catch(() => [])).join(',')}`);
      const now = await treeOf(dest).catch(() => null);
      if (now) {
        const index = digests.get(treeDigest(now));
        expect(index, `drill ${drill}: the mirror matches no state of the source`).toBeDefined();
        expect(index!, `drill ${drill}: the mirror went backwards`).toBeGreaterThanOrEqual(seen);
        seen = index!;
        const names = (await snapshots(dest)).map((s) => s.name);
        expect(new Set(names).size).toBe(names.length);
        expect((await ownSnapshots(dest)).length, `drill ${drill}: the mirror keeps ${(await ownSnapshots(dest)).join(', ')}`).toBeLessThanOrEqual(2);
      }
      expect((await ownSnapshots(src)).length, `drill ${drill}: the source keeps ${(await ownSnapshots(src)).join(', ')}`).toBeLessThanOrEqual(2);
    }
    proxy.cutAt = null;
    proxy.onBytes = null;
    // The first update after a failed one finishes that one's snapshot (resuming what landed), then brings the
    // mirror to the source's current state.
    if (lost) lost = await stillLost(lost);
    const last = await json<MirrorUpdateReport>(...(lost ? ['mirror', 'resync', REL, '--full'] : ['mirror', 'update', REL]));
    if (last.replaced) outcomes.replaced++;
    expectSameTree(await treeOf(dest), await treeOf(src), 'after the drills');
    // Which drills lose the common snapshot, and whether their copies land, turns on timing (a timed kill, a
    // process start): when faults stopped every replacement, one more runs without faults, so each run shows one.
    if (outcomes.replaced === 0) {
      const st = await status();
      expect(st.lastCommon, 'after the drills: no common snapshot to lose').toBeTruthy();
      await loseCommon(st.lastCommon!);
      await change(3);
      outcomes.fullResyncs++;
      const copy = await json<MirrorUpdateReport>('mirror', 'resync', REL, '--full');
      expect(copy.transfer).toBe('full');
      if (copy.replaced) outcomes.replaced++;
      expectSameTree(await treeOf(dest), await treeOf(src), 'after a full resync without faults');
    }
    const final = await json<MirrorUpdateReport>('mirror', 'update', REL);
    expect(final.transfer).toBe('incremental');
    expectSameTree(await treeOf(dest), await treeOf(src), 'after the drills, updated again');
    expect(await ownSnapshots(dest)).toEqual([final.to]);
    expect(await ownSnapshots(src)).toEqual([final.to]);
    expect((await readdir(root)).filter((n) => n.includes('replacement'))).toEqual([]);
    return outcomes;
  } finally {
    await proxy.stop();
    await server.kill();
  }
}
