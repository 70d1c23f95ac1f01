/**
 * Getting a relationship going again after something went wrong with it: a replica broken and resynced (local,
 * and behind a `snapplane serve` child process), an update killed, a destination deleted, a relationship deleted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { SnapplaneService } from '../../../core/service/index.js';
import { Volume } from '../../../core/fs/volume.js';
import { pattern } from '../../helpers/model.js';
import { makeKey, snapshots, startServer, treeOf } from '../../helpers/replication.js';

let dir: string;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-mrecover-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const BIN = join(process.cwd(), 'bin', 'snapplane.js');

/** The CLI's state lives here too: its children and the service see the same relationships. */
function home(): string {
  return join(dir, 'home');
}

function service(): SnapplaneService {
  return new SnapplaneService({ cpIntervalMs: 0, stateFile: join(home(), 'state.json') });
}

/** Runs `snapplane ...args` with this file's state; `onSpawn` gets the child (to kill it). */
function cli(args: string[], onSpawn?: (pid: number) => void): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SNAPPLANE_HOME: home() } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    onSpawn?.(child.pid!);
  });
}

/** A new source volume with a file, and the base path for this case's other files. */
async function source(s: SnapplaneService): Promise<{ base: string; src: string }> {
  const base = join(dir, `c${++n}`);
  const src = `${base}-src.img`;
  await s.createVolume(src, 32 << 20);
  await s.closeAll();
  await write(src, '/a', 1);
  return { base, src };
}

async function write(path: string, file: string, seed: number, snapshot?: string): Promise<void> {
  const v = await Volume.open(path, { cpIntervalMs: 0 });
  try {
    await v.writeFile(file, pattern(20_000, seed));
    if (snapshot) await v.createSnapshot(snapshot);
  } finally {
    await v.close();
  }
}

describe('a replica relationship', () => {
  for (const where of ['local', 'behind serve'] as const) {
    it(`${where}: after a break and writes on the replica, resync rolls it back and updates go on`, async () => {
      const s = service();
      const { base, src } = await source(s);
      let dst = `${base}-replica.img`;
      let keyFile: string | undefined;
      let stop = async (): Promise<void> => undefined;
      if (where === 'behind serve') {
        const root = `${base}-root`;
        await mkdir(root);
        keyFile = await makeKey(dir, `k${n}`);
        const server = await startServer(root, keyFile);
        stop = () => server.kill('SIGTERM');
        dst = `127.0.0.1:${server.port}/rep`;
      }
      const onDisk = where === 'local' ? dst : join(base + '-root', 'rep');
      try {
        await write(src, '/m1', 2, 'm1');
        await s.masterMark(src, 'm1', true);
        const name = `rep${n}`;
        await s.mirrorCreate(name, src, dst, { kind: 'replica', keyFile });
        await s.mirrorUpdate(name);
        expect((await s.mirrorBreak(name)).writable).toBe(true);
        await s.closeAll();
        await write(onDisk, '/written-after-break', 3);
        // The replica holds a file its source does not: a plain resync refuses, naming it, and changes nothing.
        const refused = await s.mirrorResync(name).then(() => null, (e: unknown) => e);
        expect(refused).toMatchObject({ code: 'DIVERGED' });
        expect((refused as Error).message).toMatch(new RegExp(`holds what its source does not: \\d+ blocks \\([^)]+\\) written since its newest snapshot 'm1'; rolling it back to 'm1' would discard that\\. \`snapplane mirror resync ${name} --discard\` discards it; `));
        await s.closeAll();
        expect([...(await treeOf(onDisk)).keys()]).toContain('/written-after-break');
        expect((await s.mirrorStatus(name)).state).toBe('broken');
        const r = await s.mirrorResync(name, { discard: true });
        await s.closeAll();
        expect(r.discardedBlocks).toBeGreaterThan(0);
        expect(r.common).toBe('m1');
        expect([...(await treeOf(onDisk)).keys()]).not.toContain('/written-after-break');
        expect((await s.mirrorStatus(name)).state).toBe('idle');
        await write(src, '/m2', 4, 'm2');
        await s.masterMark(src, 'm2', true);
        const up = await s.mirrorUpdate(name);
        await s.closeAll();
        expect(up.to).toBe('m2');
        expect(up.transfer).toBe('incremental');
        expect((await snapshots(onDisk)).map((x) => x.name)).toContain('m2');
        // No hold of the resync's left on the source's master: the destination record keeps what it needs.
        expect((await snapshots(src)).find((x) => x.name === 'm1')?.flags.hold).toBe(false);
      } finally {
        await s.closeAll();
        await stop();
      }
    });
  }
});

describe('mirror status after an update was killed', () => {
  it('says the update was interrupted (not idle) while its process is gone; the next update finishes it', async () => {
    const s = service();
    const { base, src } = await source(s);
    const v = await Volume.open(src, { cpIntervalMs: 0 });
    for (let i = 0; i < 3; i++) await v.writeFile(`/big${i}`, pattern(1 << 20, 100 + i));
    await v.close();
    const name = `killed${n}`;
    await s.mirrorCreate(name, src, `${base}-mirror.img`, { kind: 'full', limit: 1 << 20 });
    let pid = 0;
    const run = cli(['mirror', 'update', name], (p) => (pid = p));
    // Killed once it is under way (recorded as transferring, blocks landing).
    for (let i = 0; i < 200 && (await s.mirrorStatus(name)).state !== 'transferring'; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await s.mirrorStatus(name)).state).toBe('transferring');
    await new Promise((r) => setTimeout(r, 700));
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    const st = await s.mirrorStatus(name);
    expect(st.state).toBe('failed');
    expect(st.lastError).toContain(`interrupted: the update in process ${pid}`);
    expect(st.lastError).toContain(`snapplane mirror update ${name}`);
    await s.mirrorUpdate(name);
    await s.closeAll();
    const after = await s.mirrorStatus(name);
    await s.closeAll();
    expect(after.state).toBe('idle');
    expect(after.lastError).toBe(null);
  });
});

describe('a full mirror whose destination volume was deleted', () => {
  it('update and resync say it does not exist and that resync --full recreates it, which it does', async () => {
    const s = service();
    const { base, src } = await source(s);
    const dst = `${base}-gone.img`;
    const name = `gone${n}`;
    await s.mirrorCreate(name, src, dst, { kind: 'full' });
    await s.mirrorUpdate(name);
    await s.closeAll();
    await write(src, '/b', 5);
    await s.mirrorUpdate(name);
    await s.closeAll();
    for (const f of await readdir(dirname(dst))) if (f === basename(dst) || f.startsWith(`${basename(dst)}.`)) await rm(join(dirname(dst), f), { recursive: true });
    for (const attempt of [() => s.mirrorUpdate(name), () => s.mirrorResync(name)]) {
      const e = await attempt().then(() => null, (x: unknown) => x as Error & { code: string });
      expect(e?.code).toBe('NOT_FOUND');
      expect(e?.message).toContain(`destination volume '${dst}' does not exist`);
      expect(e?.message).toContain(`snapplane mirror resync ${name} --full\` recreates it`);
      await s.closeAll();
    }
    const r = await s.mirrorResync(name, { full: true });
    await s.closeAll();
    expect(r.transfer).toBe('full');
    expect([...(await treeOf(dst)).keys()].sort()).toEqual(['/a', '/b']);
  });
});

describe('the smaller loose ends of a relationship', () => {
  it('mirror delete releases the holds it put on the source and says so; status of a broken scheduled one has no "next null"', async () => {
    const s = service();
    const { base, src } = await source(s);
    const name = `del${n}`;
    await s.mirrorCreate(name, src, `${base}-m.img`, { kind: 'full', schedule: { kind: 'every', everyMs: 86_400_000 } });
    await s.mirrorUpdate(name);
    await s.mirrorBreak(name);
    await s.closeAll();
    const shown = await cli(['mirror', 'status', name]);
    expect(shown.stdout).toMatch(/schedule: +every 1d, stopped while the relationship is broken/);
    expect(shown.stdout).not.toContain('null');
    await s.mirrorResync(name);
    await s.closeAll();
    const held = (await snapshots(src)).filter((x) => x.name.startsWith(`mirror.${name}.`));
    expect(held.map((x) => x.flags.hold)).toEqual([true]);
    const out = await cli(['mirror', 'delete', name]);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`the source's snapshot ${held[0].name} stays, no longer held`);
    expect((await snapshots(src)).find((x) => x.name === held[0].name)?.flags.hold).toBe(false);
  });

  it("a mirror whose relationship this host does not know is made writable by breaking the volume, as its READ_ONLY says", async () => {
    const s = service();
    const { base, src } = await source(s);
    const dst = `${base}-orphan.img`;
    await s.mirrorCreate(`orph${n}`, src, dst, { kind: 'full' });
    await s.mirrorUpdate(`orph${n}`);
    await s.closeAll();
    await writeFile(`${dst}.mirror.json`, JSON.stringify({ relationship: 'deleted-one', source: src, sourceUuid: 'x', since: new Date().toISOString() }));
    const e = await s.put(dst, __filename, '/x').then(() => null, (x: unknown) => x as Error & { code: string });
    await s.closeAll();
    expect(e?.code).toBe('READ_ONLY');
    expect(e?.message).toContain(`this host knows no relationship 'deleted-one'`);
    expect(e?.message).toContain(`\`snapplane mirror break ${dst}\``);
  });

  it('master unmark of a snapshot that is not a master says so', async () => {
    const s = service();
    const { src } = await source(s);
    await write(src, '/m', 6, 'mon');
    const e = await s.masterMark(src, 'mon', false).then(() => null, (x: unknown) => x as Error & { code: string });
    await s.closeAll();
    expect(e?.code).toBe('INVALID');
    expect(e?.message).toContain(`'mon' of '${src}' is not a master snapshot`);
  });
});

describe('two updates of one relationship in one process (two console jobs)', () => {
  it('the second is refused BUSY at once, and the first finishes with the relationship idle and nothing failed', async () => {
    const s = service();
    const { base, src } = await source(s);
    const v = await Volume.open(src, { cpIntervalMs: 0 });
    await v.writeFile('/big', pattern(1_500_000, 4));
    await v.close();
    // Paced, so the first is still sending when the others ask.
    await s.mirrorCreate('twice', src, `${base}-m.img`, { kind: 'full', limit: 1 << 20 });
    const first = s.mirrorUpdate('twice');
    await new Promise((r) => setTimeout(r, 200));
    await expect(s.mirrorUpdate('twice')).rejects.toMatchObject({ code: 'BUSY', message: expect.stringMatching(/^relationship 'twice' is being updated by this process \(since .*\); wait for that to finish$/) });
    await expect(s.mirrorResync('twice')).rejects.toMatchObject({ code: 'BUSY' });
    const r = await first;
    expect(r.transfer).toBe('full');
    const st = await s.mirrorStatus('twice');
    expect(st.state).toBe('idle');
    expect(st.lastError).toBe(null);
    // Free again once it finished.
    await s.closeAll();
    await write(src, '/b', 5);
    expect((await s.mirrorUpdate('twice')).transfer).toBe('incremental');
    await s.closeAll();
    expect(await treeOf(`${base}-m.img`)).toEqual(await treeOf(src, (await s.mirrorStatus('twice')).lastCommon!));
    await s.closeAll();
  });
});

describe('changing a relationship while it transfers', () => {
  /** A source with a file that takes a transfer paced at 1 MiB/s about `seconds`, and a relationship to a local mirror. */
  async function pacedRelationship(s: SnapplaneService, name: string, seconds: number): Promise<{ base: string; src: string }> {
    const { base, src } = await source(s);
    const v = await Volume.open(src, { cpIntervalMs: 0 });
    await v.writeFile('/big', pattern(seconds << 20, 7));
    await v.close();
    await s.mirrorCreate(name, src, `${base}-m.img`, { kind: 'full', limit: 1 << 20, schedule: { kind: 'every', everyMs: 60_000 } });
    return { base, src };
  }

  it('in this process: break and delete are refused BUSY, the scheduler leaves it alone; a break after it lands holds', async () => {
    const s = service();
    const { base, src } = await pacedRelationship(s, 'busy1', 1);
    expect(await s.dueMirrors()).toContain('busy1');
    const first = s.mirrorUpdate('busy1');
    await new Promise((r) => setTimeout(r, 300));
    const busy = expect.stringMatching(/^relationship 'busy1' is transferring \(in this process, since .*\): (break|delete) it once that transfer has ended or been stopped$/);
    await expect(s.mirrorBreak('busy1')).rejects.toMatchObject({ code: 'BUSY', message: busy });
    await expect(s.mirrorDelete('busy1')).rejects.toMatchObject({ code: 'BUSY', message: busy });
    expect(await s.dueMirrors()).not.toContain('busy1');
    expect((await first).transfer).toBe('full');
    expect((await s.mirrorStatus('busy1')).state).toBe('idle');
    expect((await s.mirrorBreak('busy1')).writable).toBe(true);
    expect((await s.mirrorStatus('busy1')).state).toBe('broken');
    await expect(s.mirrorUpdate('busy1')).rejects.toMatchObject({ code: 'INVALID' });
    await s.closeAll();
    expect(await treeOf(`${base}-m.img`)).toEqual(await treeOf(src));
  });

  it('in another process: break, resync and delete are refused BUSY naming it, and the broken state recorded after it stays', async () => {
    const s = service();
    const { base, src } = await pacedRelationship(s, 'busy2', 1);
    let pid = 0;
    const child = cli(['mirror', 'update', 'busy2'], (p) => (pid = p));
    const deadline = Date.now() + 10_000;
    while ((await s.mirrorStatus('busy2')).state !== 'transferring') {
      expect(Date.now(), 'the update in the child never started').toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 50));
    }
    const inChild = (verb: string): unknown => expect.stringMatching(new RegExp(`^relationship 'busy2' is transferring \\(in process ${pid}, since .*\\): ${verb} it once`));
    await expect(s.mirrorBreak('busy2')).rejects.toMatchObject({ code: 'BUSY', message: inChild('break') });
    await expect(s.mirrorDelete('busy2')).rejects.toMatchObject({ code: 'BUSY', message: inChild('delete') });
    await expect(s.mirrorResync('busy2')).rejects.toMatchObject({ code: 'BUSY', message: expect.stringContaining(`transferring in process ${pid}`) });
    expect(await s.dueMirrors()).not.toContain('busy2');
    const done = await child;
    expect(done.code, done.stderr).toBe(0);
    await s.mirrorBreak('busy2');
    await s.closeAll();
    // The record says broken, and the mirror is the source's state the update sent.
    const st = await s.mirrorStatus('busy2');
    expect(st.state).toBe('broken');
    expect(await treeOf(`${base}-m.img`)).toEqual(await treeOf(src, st.lastCommon!));
    await s.closeAll();
  });
});
