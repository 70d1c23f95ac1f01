/** The replication fault drill, shared by `npm test` (50 drills) and `npm run soak` (1,000). */
import { expect } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume } from '../../core/fs/volume.js';
import { SnapplaneService } from '../../core/service/index.js';
import type { ReplicateReport } from '../../core/api/index.js';
import { json } from '../cli/cli-helpers.js';
import { FaultProxy, newMaster, runWithFault, seeded, snapshots, startServer, treeDigest, treeOf, type ByteFault, type ServerProcess } from './replication.js';
import { expectSameTree } from './model.js';

const BIN = join(process.cwd(), 'bin', 'snapplane.js');

export interface DrillOutcomes {
  ok: number;
  failed: number;
  resumed: number;
  serverKills: number;
  clientKills: number;
  drops: number;
}

/**
 * `count` replications of a changing source through a proxy that drops the connection, or while the receiving
 * server or the sending client is killed, at random byte offsets. After each one the destination must equal
 * exactly one master snapshot of the source, never an older one than before; at the end it converges.
 */
export async function runReplicationDrills(dir: string, key: string, count: number, seed: number): Promise<DrillOutcomes> {
  const src = join(dir, 'drill.img');
  const root = join(dir, 'drillB');
  await mkdir(root);
  const v = await Volume.create(src, { sizeBytes: 32 << 20, cpIntervalMs: 0 });
  await v.close();
  const dest = join(root, 'd');
  const rnd = seeded(seed);
  // Before its first full copy lands, a destination created by the receive is empty: its base is nothing.
  const digests = new Map<string, number>([[treeDigest(new Map()), 0]]);
  let server: ServerProcess = await startServer(root, key);
  const proxy = new FaultProxy(server.port);
  await proxy.start();
  let masters = 0;
  let seen = 0;
  const outcomes = { ok: 0, failed: 0, resumed: 0, serverKills: 0, clientKills: 0, drops: 0 };
  try {
    digests.set(await newMaster(src, `d${++masters}`, rnd, 6), masters);
    for (let drill = 0; drill < count; drill++) {
      if (rnd() < 0.6) digests.set(await newMaster(src, `d${++masters}`, rnd, 1 + Math.floor(rnd() * 8)), masters);
      const fault = rnd();
      // Streams here are up to a few MiB; most cut points fall inside them, some in the handshake and requests.
      const at = Math.floor(rnd() ** (fault < 0.5 ? 2 : 3) * 1_200_000);
      const child = spawn(process.execPath, [BIN, 'replicate', src, `127.0.0.1:${proxy.port}/d`, '--key-file', key, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      // A clean run now and then: after a streak of failures the difference outgrows the fault range.
      const kind: ByteFault = fault < 0.15 ? 'none' : fault < 0.5 ? 'drop' : fault < 0.75 ? 'server' : 'client';
      const { code, serverKilled, clientKilled } = await runWithFault(proxy, kind, at, child, server, async () => {
        server = await startServer(root, key, server.port);
      });
      if (kind === 'drop') outcomes.drops++;
      if (serverKilled) outcomes.serverKills++;
      if (clientKilled) outcomes.clientKills++;
      if (code === 0) {
        outcomes.ok++;
        const r = JSON.parse(out) as ReplicateReport;
        if (r.resumedFromVbn !== null) outcomes.resumed++;
      } else outcomes.failed++;
      // The destination is exactly one of the source's masters, never older than before.
      const now = await treeOf(dest).catch(() => null);
      if (now) {
        const index = digests.get(treeDigest(now));
        expect(index, `drill ${drill}: the destination matches no source master`).toBeDefined();
        expect(index!, `drill ${drill}: the destination went backwards`).toBeGreaterThanOrEqual(seen);
        seen = index!;
        const names = (await snapshots(dest)).map((s) => s.name);
        expect(new Set(names).size).toBe(names.length);
      }
      if (drill % 8 === 7) {
        // Retention on the source: masters the destination has moved past may go; the one it holds may not.
        const svc = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'drill-state.json') });
        try {
          const have = new Set((await svc.snapList({ volume: src })).map((x) => x.name));
          for (let k = 1; k < seen; k++) {
            if (!have.has(`d${k}`)) continue;
            await svc.snapDelete(src, `d${k}`).catch((e: { code?: string }) => {
              if (e.code !== 'HELD') throw e;
            });
          }
          if (seen > 0 && have.has(`d${seen}`)) await expect(svc.snapDelete(src, `d${seen}`)).rejects.toMatchObject({ code: 'HELD' });
        } finally {
          await svc.closeAll();
        }
      }
    }
    proxy.cutAt = null;
    proxy.onBytes = null;
    const final = await json<ReplicateReport>('replicate', src, `127.0.0.1:${server.port}/d`, '--key-file', key);
    expect(['incremental', 'full', 'none']).toContain(final.kind);
    expectSameTree(await treeOf(dest), await treeOf(src, `d${masters}`), 'after the drills');
    return outcomes;
  } finally {
    await proxy.stop();
    await server.kill();
  }
}
