/**
 * Replication between Snapplane processes on 127.0.0.1: `snapplane serve` children, `snapplane replicate` children,
 * real sockets, a proxy that drops connections, and processes killed at random points of a transfer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { chmod, copyFile, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../core/fs/volume.js';
import type { MirrorInfo, MirrorSetReport, ReplicateReport } from '../../core/api/index.js';
import { json, ok, snapplane, snapplaneIn, type CliResult } from './cli-helpers.js';
import { FaultProxy, makeKey, newMaster, seeded, snapshots, startServer, treeOf, writeAndSnapshot, type ServerProcess } from '../helpers/replication.js';
import { runReplicationDrills } from '../helpers/replication-drills.js';
import { expectSameTree } from '../helpers/model.js';

const DRILLS = 50;
const BIN = join(process.cwd(), 'bin', 'snapplane.js');

let dir: string;
let key: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-repl-'));
  process.env.SNAPPLANE_HOME = join(dir, 'home');
  key = await makeKey(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A new empty source volume `<name>.img` of `mib` MiB and a new folder `<name>-root` for an endpoint. */
async function sourceAndServerless(name: string, mib: number): Promise<{ src: string; root: string }> {
  const src = join(dir, `${name}.img`);
  const root = join(dir, `${name}-root`);
  await mkdir(root);
  const v = await Volume.create(src, { sizeBytes: mib << 20, cpIntervalMs: 0 });
  await v.close();
  return { src, root };
}

/** A new empty source volume `<name>.img` of `mib` MiB and an endpoint child serving a new folder `<name>-root`. */
async function sourceAndServer(name: string, mib: number): Promise<{ src: string; root: string; server: ServerProcess }> {
  const { src, root } = await sourceAndServerless(name, mib);
  return { src, root, server: await startServer(root, key) };
}

describe('replication between processes over TCP', () => {
  it('initializes, then sends incrementals after random work; the destination tree equals the source master each time', async () => {
    const src = join(dir, 'a.img');
    const rootB = join(dir, 'hostB');
    await mkdir(rootB);
    const v = await Volume.create(src, { sizeBytes: 48 << 20, cpIntervalMs: 0 });
    await v.close();
    const b = await startServer(rootB, key);
    try {
      const rnd = seeded(11);
      for (let round = 1; round <= 4; round++) {
        await newMaster(src, `m${round}`, rnd, 12);
        const r = await json<ReplicateReport>('replicate', src, `127.0.0.1:${b.port}/a`, '--key-file', key);
        expect(r.kind).toBe(round === 1 ? 'full' : 'incremental');
        expect(r.to).toBe(`m${round}`);
        expect(r.wireBytes).toBeGreaterThan(r.bytes);
        expectSameTree(await treeOf(join(rootB, 'a')), await treeOf(src, `m${round}`), `round ${round}`);
      }
      // Nothing new: nothing sent.
      const again = await json<ReplicateReport>('replicate', src, `127.0.0.1:${b.port}/a`, '--key-file', key);
      expect(again.kind).toBe('none');
      const masters = (await snapshots(join(rootB, 'a'))).filter((s) => s.flags.master).map((s) => s.name);
      expect(masters).toEqual(['m1', 'm2', 'm3', 'm4']);
      // The destination is known to the source: its newest master is held.
      const list = await json<{ name: string; neededBy: string[] }[]>('master', 'list', src);
      expect(list.find((m) => m.name === 'm4')!.neededBy).toEqual([`127.0.0.1:${b.port}/a`]);
      expect(list.find((m) => m.name === 'm3')!.neededBy).toEqual([]);
    } finally {
      await b.kill();
    }
  }, 120_000);

  it('--dry-run says what replicate would send, to the block (a resume included), and changes nothing', async () => {
    const { src, root, server } = await sourceAndServer('dry', 48);
    const proxy = new FaultProxy(server.port);
    await proxy.start();
    const dest = `127.0.0.1:${server.port}/d`;
    const viaProxy = `127.0.0.1:${proxy.port}/d`;
    const destinations = `${src}.destinations.json`;
    try {
      await writeAndSnapshot(src, '/big.bin', 8 << 20, 5, 'M1');
      await ok('master', 'mark', src, 'M1');
      const first = await snapplane('replicate', src, dest, '--key-file', key, '--dry-run');
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(new RegExp(`^would replicate a full copy of M1 \\(the destination has no master snapshot\\) to 127\\.0\\.0\\.1:${server.port}/d: \\d+ blocks, [\\d.]+ MiB \\(a stream of [\\d.]+ MiB\\); nothing was sent\\n$`));
      // Nothing made on the endpoint, nothing recorded on the source.
      expect((await readdir(root)).filter((n) => !n.startsWith('.'))).toEqual([]);
      expect(existsSync(destinations)).toBe(false);
      const full = await json<ReplicateReport>('replicate', src, dest, '--key-file', key, '--dry-run');
      const sent = await json<ReplicateReport>('replicate', src, dest, '--key-file', key);
      expect(full).toMatchObject({ dryRun: true, kind: 'full', to: 'M1', blocks: sent.blocks, bytes: sent.bytes, resumedFromVbn: null });
      expect(full.streamBytes).toBeGreaterThan(full.bytes);

      // An incremental, cut short on the way: the dry run names the resume point the next run takes.
      await writeAndSnapshot(src, '/more.bin', 8 << 20, 6, 'M2');
      await ok('master', 'mark', src, 'M2');
      const recorded = await readFile(destinations, 'utf8');
      const incr = await json<ReplicateReport>('replicate', src, dest, '--key-file', key, '--dry-run');
      expect(incr).toMatchObject({ dryRun: true, kind: 'incremental', from: 'M1', to: 'M2', resumedFromVbn: null });
      expect(await readFile(destinations, 'utf8')).toBe(recorded);
      expect((await snapshots(join(root, 'd'))).map((x) => x.name)).toEqual(['M1']);
      proxy.cutAt = 4 << 20;
      expect((await snapplane('replicate', src, viaProxy, '--key-file', key)).code).not.toBe(0);
      proxy.cutAt = null;
      const resumed = await json<ReplicateReport>('replicate', src, viaProxy, '--key-file', key, '--dry-run');
      expect(resumed.resumedFromVbn).toBeGreaterThan(0);
      expect(resumed.blocks).toBeLessThan(incr.blocks);
      const text = await snapplane('replicate', src, viaProxy, '--key-file', key, '--dry-run');
      expect(text.stdout).toMatch(new RegExp(`^would replicate M1 → M2 to 127\\.0\\.0\\.1:${proxy.port}/d: ${resumed.blocks} blocks, .*, resuming an interrupted receive at VBN ${resumed.resumedFromVbn}; nothing was sent\\n$`));
      const done = await json<ReplicateReport>('replicate', src, viaProxy, '--key-file', key);
      expect(done).toMatchObject({ kind: 'incremental', resumedFromVbn: resumed.resumedFromVbn, blocks: resumed.blocks });
      expectSameTree(await treeOf(join(root, 'd')), await treeOf(src, 'M2'), 'after the resumed run');
      // Up to date: said so, as a run would.
      expect((await snapplane('replicate', src, dest, '--key-file', key, '--dry-run')).stdout).toBe(`127.0.0.1:${server.port}/d is up to date: the destination already has the newest master 'M2'\n`);
      // A master the source no longer has: the dry run names it as one the receive deletes, as the run then does.
      await ok('master', 'unmark', src, 'M1');
      await writeAndSnapshot(src, '/third.bin', 1 << 20, 7, 'M3');
      await ok('master', 'mark', src, 'M3');
      const dropping = await snapplane('replicate', src, dest, '--key-file', key, '--dry-run');
      expect(dropping.stdout).toMatch(/^would replicate M2 → M3 to .*; the destination would delete M1 \(no longer a master on the source\) unless held there or needed by its own destinations; nothing was sent\n$/);
      expect((await snapshots(join(root, 'd'))).map((x) => x.name)).toEqual(['M1', 'M2']);
      expect(await json<ReplicateReport>('replicate', src, dest, '--key-file', key)).toMatchObject({ kind: 'incremental', from: 'M2', to: 'M3', dropped: ['M1'] });
      expect((await snapshots(join(root, 'd'))).map((x) => x.name)).toEqual(['M2', 'M3']);
      // A key other users can read: a warning on stderr, and the run goes on.
      const open = await makeKey(dir, 'dry-open');
      await copyFile(key, open);
      await chmod(open, 0o644);
      const warned = await snapplane('replicate', src, dest, '--key-file', open, '--dry-run');
      expect(warned.code).toBe(0);
      expect(warned.stderr).toBe(`snapplane: warning: key file '${open}' is open to every user of this host (mode 0644): whoever reads it can pose as either end of a replication; \`chmod 600 ${open}\`\n`);
      // A wrong key is refused as in a run.
      const wrong = await makeKey(dir, 'dry-wrong');
      const refused = await snapplane('replicate', src, dest, '--key-file', wrong, '--dry-run');
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/\(AUTH\)/);
    } finally {
      await proxy.stop();
      await server.kill();
    }
  }, 120_000);

  it('cascades: A replicates to B, B serves C; C equals A', async () => {
    const src = join(dir, 'cascade.img');
    const [rootB, rootC] = [join(dir, 'casB'), join(dir, 'casC')];
    await mkdir(rootB);
    await mkdir(rootC);
    const v = await Volume.create(src, { sizeBytes: 32 << 20, cpIntervalMs: 0 });
    await v.close();
    const b = await startServer(rootB, key);
    const c = await startServer(rootC, key);
    try {
      const rnd = seeded(5);
      for (let round = 1; round <= 3; round++) {
        await newMaster(src, `c${round}`, rnd, 10);
        await json<ReplicateReport>('replicate', src, `127.0.0.1:${b.port}/vol`, '--key-file', key);
        // On host B: its copy is the source for C (multiple replication, a tree of hosts).
        const r = await json<ReplicateReport>('replicate', join(rootB, 'vol'), `127.0.0.1:${c.port}/vol`, '--key-file', key);
        expect(r.kind).toBe(round === 1 ? 'full' : 'incremental');
        expectSameTree(await treeOf(join(rootC, 'vol')), await treeOf(src, `c${round}`), `cascade round ${round}`);
      }
    } finally {
      await b.kill();
      await c.kill();
    }
  }, 120_000);

  it.skipIf(!Object.values(networkInterfaces()).flat().some((i) => i?.address === '::1'))('over IPv6: serve --listen ::1, a [::1]:port destination, and holds named as it was written', async () => {
    const { src, root } = await sourceAndServerless('ipv6', 16);
    const s6 = await startServer(root, key, 0, process.env, ['--listen', '::1']);
    try {
      await newMaster(src, 'v1', seeded(6), 5);
      const dest = `[::1]:${s6.port}/vol`;
      const r = await json<ReplicateReport>('replicate', src, dest, '--key-file', key);
      expect([r.kind, r.destination]).toEqual(['full', dest]);
      const masters = await json<{ name: string; neededBy: string[] }[]>('master', 'list', src);
      expect(masters.find((m) => m.name === 'v1')!.neededBy).toEqual([dest]);
      expectSameTree(await treeOf(join(root, 'vol')), await treeOf(src, 'v1'), 'over IPv6');
    } finally {
      await s6.kill();
    }
  });

  it('the job history names a local destination given as a relative path by its full path', async () => {
    const { src } = await sourceAndServerless('relative', 16);
    await newMaster(src, 'h1', seeded(8), 3);
    const r = await snapplaneIn(dir, 'replicate', src, 'relative-copy.img');
    expect(r.code).toBe(0);
    const history = await json<{ kind: string; volume: string; target: string }[]>('jobs');
    expect(history.filter((j) => j.kind === 'replicate').at(-1)).toMatchObject({ volume: src, target: join(dir, 'relative-copy.img') });
  });

  it('mirror create and mirror set --key-file try the key on the endpoint: a refused one changes nothing', async () => {
    const { src, server: s } = await sourceAndServer('trykey', 16);
    try {
      const wrong = await makeKey(dir, 'trykey-wrong');
      const dest = `127.0.0.1:${s.port}/tk`;
      const refused = await snapplane('mirror', 'create', 'tk', src, dest, '--kind', 'full', '--key-file', wrong);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^snapplane: 127\.0\.0\.1:\d+ does not know our key: authentication failed .*; the relationship was not created \(AUTH\)\n$/);
      expect((await json<{ name: string }[]>('mirror', 'list')).map((m) => m.name)).not.toContain('tk');
      await ok('mirror', 'create', 'tk', src, dest, '--kind', 'full', '--key-file', key);
      const same = await json<MirrorSetReport>('mirror', 'set', 'tk', '--key-file', key);
      expect(same.keyCheck).toEqual({ checked: true, message: `the endpoint at 127.0.0.1:${s.port} took the key` });
      const bad = await snapplane('mirror', 'set', 'tk', '--key-file', wrong);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/authentication failed .*; nothing was changed \(AUTH\)\n$/);
      expect((await json<MirrorInfo>('mirror', 'status', 'tk')).keyFile).toBe(key);
      // An endpoint that does not answer (stopped for now): set all the same, and said so.
      await s.kill();
      const later = await snapplane('mirror', 'set', 'tk', '--key-file', wrong);
      expect(later.code).toBe(0);
      expect(later.stdout).toMatch(/^tk: key file .* → .*trykey-wrong; the key was not checked: cannot reach 127\.0\.0\.1:\d+: connection refused .*\n$/);
      await ok('mirror', 'delete', 'tk');
    } finally {
      await s.kill();
    }
  });

  it('refuses a wrong key before reading anything, and survives garbage', async () => {
    const { src, server: s } = await sourceAndServer('keyed', 16);
    await newMaster(src, 'k1', seeded(2), 3);
    try {
      const wrong = await makeKey(dir, 'wrong-key');
      const r = await snapplane('replicate', src, `127.0.0.1:${s.port}/x`, '--key-file', wrong);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/authentication failed/);
      expect(r.stderr).toMatch(/\(AUTH\)/);
      // The server's admin is told the keys differ, not that a client hung up.
      for (let t = 0; t < 40 && !/authentication failed \(wrong key\)/.test(s.log()); t++) await new Promise((w) => setTimeout(w, 50));
      expect(s.log()).toMatch(/refused 127\.0\.0\.1:\d+: 127\.0\.0\.1:\d+: authentication failed \(wrong key\)/);
      // A client that does not speak the protocol: closed after the fixed-size hello, and the server lives on.
      await new Promise<void>((resolve) => {
        const sock = connect(s.port, '127.0.0.1', () => sock.write(Buffer.alloc(1 << 20, 0x41)));
        sock.on('error', () => resolve());
        sock.on('close', () => resolve());
      });
      const okRun = await json<ReplicateReport>('replicate', src, `127.0.0.1:${s.port}/x`, '--key-file', key);
      expect(okRun.kind).toBe('full');
      expect(s.log()).toMatch(/refused 127\.0\.0\.1:\d+: .*authentication failed|refused .*did not speak/);
      // A peer that hangs up mid-handshake (a server that stopped) is not reported as a wrong key.
      const hangUp = createServer((c) => c.destroy());
      await new Promise<void>((r) => hangUp.listen(0, '127.0.0.1', () => r()));
      try {
        const port = (hangUp.address() as { port: number }).port;
        const cut = await snapplane('replicate', src, `127.0.0.1:${port}/x`, '--key-file', key);
        expect(cut.code).toBe(1);
        expect(cut.stderr).toMatch(/closed the connection during the handshake \(it stopped, or is not a Snapplane endpoint\) \(NET\)/);
      } finally {
        await new Promise<void>((r) => hangUp.close(() => r()));
      }
      const short = await snapplane('replicate', src, `127.0.0.1:${s.port}/x`, '--key-file', join(dir, 'no-such-key'));
      expect(short.stderr).toMatch(/cannot read key file/);
      const bad = await snapplane('replicate', src, `127.0.0.1:${s.port}/../escape`, '--key-file', key);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/bad volume name/);
    } finally {
      await s.kill();
    }
  }, 60_000);

  it('Ctrl-C stops a replicate with the shell\'s 130, and an endpoint that dies mid-transfer is reported with how to resume; each resumes', async () => {
    const { src, root, server: first } = await sourceAndServerless('interrupted', 96).then(async (x) => ({ ...x, server: await startServer(x.root, key, 0, { ...process.env, SNAPPLANE_RESUME_POINT_MS: '0' }) }));
    let server = first;
    try {
      await writeAndSnapshot(src, '/big.bin', 64 << 20, 9, 'i1');
      await ok('master', 'mark', src, 'i1');
      const dest = () => `127.0.0.1:${server.port}/v`;
      /** A throttled replicate, stopped by `stop` once a few MiB went over. */
      const stopped = async (stop: (child: ChildProcess) => Promise<void>): Promise<CliResult> => {
        const connections = (): number => server.log().split('connection from').length;
        const before = connections();
        const child = spawn(process.execPath, [BIN, 'replicate', src, dest(), '--key-file', key, '--limit', '8M'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        const closed = new Promise<number>((r) => child.once('close', (code) => r(code ?? -1)));
        // From its connection on (a loaded machine takes seconds to start a process), then a second of 8 MiB/s.
        for (const t0 = Date.now(); connections() === before && Date.now() - t0 < 20_000; ) await new Promise((r) => setTimeout(r, 50));
        await new Promise((r) => setTimeout(r, 1000));
        await stop(child);
        return { code: await closed, stdout: '', stderr };
      };
      const interrupted = await stopped(async (child) => {
        child.kill('SIGINT');
      });
      expect(interrupted.code).toBe(130);
      expect(interrupted.stderr).toMatch(/cancelling \(Ctrl-C again to quit at once\)/);
      expect(interrupted.stderr).toMatch(/\(CANCELLED\)\n$/);
      const died = await stopped(async () => {
        await server.kill('SIGKILL');
      });
      expect(died.code).toBe(1);
      expect(died.stderr).toMatch(new RegExp(`during the transfer; what landed on 127\\.0\\.0\\.1:\\d+/v is kept: the next replication or mirror update of it resumes from there \\(NET\\)\\n$`));
      server = await startServer(root, key);
      const done = await json<ReplicateReport>('replicate', src, dest(), '--key-file', key);
      expect(done).toMatchObject({ kind: 'full', to: 'i1' });
      expect(done.resumedFromVbn).toBeGreaterThan(0);
      expectSameTree(await treeOf(join(root, 'v')), await treeOf(src, 'i1'), 'resumed replica');
    } finally {
      await server.kill();
    }
  }, 60_000);

  it('serve keeps a received volume open (a local writer is told which process holds it); --hold 0 closes it at once', async () => {
    const src = join(dir, 'hold.img');
    const [quick, held] = [join(dir, 'hold0'), join(dir, 'hold30')];
    await mkdir(quick);
    await mkdir(held);
    const v = await Volume.create(src, { sizeBytes: 16 << 20, cpIntervalMs: 0 });
    await v.close();
    const a = await startServer(quick, key, 0, process.env, ['--hold', '0']);
    const b = await startServer(held, key);
    try {
      await newMaster(src, 'h1', seeded(3), 4);
      await json<ReplicateReport>('replicate', src, `127.0.0.1:${a.port}/v`, '--key-file', key);
      await json<ReplicateReport>('replicate', src, `127.0.0.1:${b.port}/v`, '--key-file', key);
      const w = await Volume.open(join(quick, 'v'), { cpIntervalMs: 0 });
      await w.close();
      await expect(Volume.open(join(held, 'v'), { cpIntervalMs: 0 })).rejects.toMatchObject({ code: 'LOCKED', message: expect.stringContaining(`process ${b.proc.pid}`) });
      const bad = await snapplane('serve', '--port', '0', '--key-file', key, '--root', quick, '--hold', 'soon');
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/--hold must be a whole number/);
      const port = await snapplane('serve', '--port', '70000', '--key-file', key, '--root', quick);
      expect(port.code).toBe(2);
      expect(port.stderr).toBe("snapplane: --port must be a TCP port, 0 to 65535 (got '70000')\n");
      const v6 = await snapplane('replicate', src, '[::1]:1/v', '--key-file', key);
      expect(v6.code).toBe(1);
      expect(v6.stderr).toMatch(/^snapplane: cannot reach \[::1\]:1: /);
    } finally {
      await a.kill();
      await b.kill();
    }
  }, 60_000);

  it('a mirror taken over on the endpoint\'s host is let go by the endpoint at once, not after its 30 s hold', async () => {
    const { src, root, server: b } = await sourceAndServer('let', 16);
    const sourceHome = process.env.SNAPPLANE_HOME;
    try {
      await newMaster(src, 'l1', seeded(8), 4);
      await json('mirror', 'create', 'mlet', src, `127.0.0.1:${b.port}/m`, '--kind', 'full', '--key-file', key);
      await json('mirror', 'update', 'mlet');
      const mirror = join(root, 'm');
      // The endpoint holds the mirror open after the update: a local writer is told so.
      process.env.SNAPPLANE_HOME = join(dir, 'let-mirror-host');
      expect((await snapplane('put', mirror, __filename, '/early.ts')).stderr).toContain('(READ_ONLY)');
      await json('mirror', 'break', mirror);
      const t0 = Date.now();
      let put = await snapplane('put', mirror, __filename, '/after.ts');
      while (put.code !== 0 && Date.now() - t0 < 10_000) {
        expect(put.stderr).toContain(`open for writing by process ${b.proc.pid}`);
        await new Promise((r) => setTimeout(r, 250));
        put = await snapplane('put', mirror, __filename, '/after.ts');
      }
      expect(put.code, put.stderr).toBe(0);
      expect(Date.now() - t0).toBeLessThan(10_000);
      // Back on the source's host: a plain resync would drop the file written there; it refuses, over the wire.
      process.env.SNAPPLANE_HOME = sourceHome;
      const refused = await snapplane('mirror', 'resync', 'mlet');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(new RegExp(`^snapplane: '127\\.0\\.0\\.1:${b.port}/m' holds what its source does not: \\d+ blocks \\([^)]+\\) written since its newest snapshot 'mirror\\.mlet\\.1'; .* --discard\` discards it; to keep it, make the mirror the source: a relationship created on its host, the other way \\(DIVERGED\\)\n$`));
      expect([...(await treeOf(mirror)).keys()]).toContain('/after.ts');
      const discarded = await ok('mirror', 'resync', 'mlet', '--discard');
      expect(discarded.stdout).toMatch(/^mlet: resynced from common snapshot mirror\.mlet\.1; discarded on the destination: \d+ blocks written after mirror\.mlet\.1\n/);
      expect([...(await treeOf(mirror)).keys()]).not.toContain('/after.ts');
    } finally {
      process.env.SNAPPLANE_HOME = sourceHome;
      await b.kill();
    }
  }, 60_000);

  it('mirror resync --full: the endpoint, still holding the old mirror open, replaces it with a whole copy', async () => {
    const { src, root, server: b } = await sourceAndServer('full', 16);
    try {
      await newMaster(src, 'f1', seeded(5), 6);
      await json('mirror', 'create', 'mfull', src, `127.0.0.1:${b.port}/m`, '--kind', 'full', '--key-file', key);
      const init = await json<{ to: string }>('mirror', 'update', 'mfull');
      // The source loses the common snapshot; the endpoint still has the mirror open (its hold).
      const w = await Volume.open(src, { cpIntervalMs: 0 });
      await w.deleteSnapshot(init.to, { releaseHold: true });
      await w.close();
      await newMaster(src, 'f2', seeded(6), 6);
      const stuck = await snapplane('mirror', 'update', 'mfull');
      expect(stuck.stderr).toContain('`--full` copies the source whole again (NOT_FOUND)');
      const r = await json<{ common: string | null; transfer: string; discarded: string[]; to: string }>('mirror', 'resync', 'mfull', '--full');
      expect(r).toMatchObject({ common: null, transfer: 'full', discarded: ['f1', init.to] });
      expectSameTree(await treeOf(join(root, 'm')), await treeOf(src, r.to), 'after resync --full');
      expect((await json<{ state: string }>('mirror', 'status', 'mfull')).state).toBe('idle');
    } finally {
      await b.kill();
    }
  }, 60_000);

  it(`${DRILLS} drills: dropped connections and killed processes at random points; the destination always equals one source master, moves only forward, and converges`, async () => {
    const outcomes = await runReplicationDrills(dir, key, DRILLS, 2026);
    expect(outcomes.failed, JSON.stringify(outcomes)).toBeGreaterThan(DRILLS / 5);
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.resumed).toBeGreaterThan(0);
    expect(outcomes.serverKills + outcomes.clientKills).toBeGreaterThan(0);
  }, 600_000);
});
