/**
 * The console host lets go of the volumes it wrote: after a change from a view, and after a copy job (done or
 * failed), the volume is closed once idle, so another writer (the CLI) gets it; meanwhile its LOCKED names the console.
 * A mirror update it runs gives up its source's writer for the transfer, as a one-shot `mirror update` does, unless
 * other work of the console's is under way then.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsoleEvent, JobState } from '../../../core/api/index.js';
import { ConsoleHost, SnapplaneService } from '../../../core/service/index.js';

let dir: string;
let host: ConsoleHost;
let cli: SnapplaneService;
let vol: string;
const jobs: JobState[] = [];

async function call<T>(method: string, args: unknown): Promise<T> {
  const r = await host.router.call(method, args);
  if (!r.ok) throw new Error(`${method}: ${r.error.code} ${r.error.message}`);
  return r.result as T;
}

/** Another writer (as the CLI is): snapCreate, then close; the error when it is refused. */
async function otherWrites(volume: string, snap: string): Promise<Error | null> {
  try {
    await cli.snapCreate(volume, snap);
    return null;
  } catch (e) {
    return e as Error;
  } finally {
    await cli.closeAll().catch(() => cli.abortAll());
  }
}

/** Waits until the job's transfer has sent something, the job still running. */
async function transferring(id: number): Promise<void> {
  await until(async () => jobs.some((j) => j.id === id && j.state === 'running' && j.done > 0), 20_000);
}

/** Waits for the job to end; its final state. */
async function finished(id: number): Promise<JobState> {
  await until(async () => jobs.some((j) => j.id === id && j.state !== 'running'), 60_000);
  return jobs.find((j) => j.id === id && j.state !== 'running')!;
}

async function until(fn: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-letgo-'));
  host = await ConsoleHost.start({ transport: 'direct', stateFile: join(dir, 'state.json'), schedulerIntervalMs: 0, cpIntervalMs: 0, idleCloseMs: 800 });
  host.onEvent((e: ConsoleEvent) => {
    if (e.type === 'job') jobs.push(e.job);
  });
  cli = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'cli-state.json') });
  vol = join(dir, 'v.img');
  await call('volumeCreate', { path: vol, sizeBytes: 8 * 2 ** 20 });
  await call('writeFile', { volume: vol, path: '/f', base64: Buffer.alloc(200_000, 1).toString('base64') });
  await call('snapCreate', { volume: vol, name: 'A' });
});

afterAll(async () => {
  await host.close();
  await cli.closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe('the console lets go of volumes it wrote', () => {
  it('after a change from a view: LOCKED names the console while busy, then the other writer gets the volume', async () => {
    await call('mkdir', { volume: vol, path: '/made-here' });
    const refused = await otherWrites(vol, 'too-soon');
    expect(refused?.message).toMatch(/open for writing by process \d+ \(the snapplane console\).*the console lets go of a volume 0\.8 s after its last change/);
    await until(async () => (await otherWrites(vol, 'cli-1')) === null, 5_000);
    expect((await cli.snapList({ volume: vol })).map((s) => s.name)).toContain('cli-1');
    await cli.closeAll();
    // The console's change was committed before it let go.
    expect((await cli.ls({ volume: vol }, '/')).map((e) => e.name)).toContain('made-here');
    await cli.closeAll();
  });

  it('after a copy job, done or failed: its target is let go too', async () => {
    const target = join(dir, 'copy.img');
    const start = await call<JobState>('jobStart', { kind: 'copy', source: vol, destination: target, expression: 'A' });
    await until(async () => jobs.some((j) => j.id === start.id && j.state !== 'running'), 20_000);
    expect(jobs.find((j) => j.id === start.id && j.state !== 'running')?.state).toBe('ok');
    await until(async () => (await otherWrites(target, 'cli-2')) === null, 5_000);
    // A copy of a snapshot the target lacks a base for fails; the target it opened is let go all the same.
    const failed = await call<JobState>('jobStart', { kind: 'copy', source: vol, destination: target, expression: 'cli-1 - A' });
    await until(async () => jobs.some((j) => j.id === failed.id && j.state !== 'running'), 20_000);
    expect(jobs.find((j) => j.id === failed.id && j.state !== 'running')?.state).toBe('error');
    expect(host.service.writableVolumes()).toEqual([target]); // the failed receive had opened it for writing
    await until(async () => host.service.writableVolumes().length === 0 && (await otherWrites(target, 'cli-3')) === null, 5_000);
  });

  it('during a mirror update it runs: the source is writable elsewhere while the stream goes out, unless other work runs', async () => {
    const src = join(dir, 'ms.img');
    await call('volumeCreate', { path: src, sizeBytes: 32 * 2 ** 20 });
    await call('writeFile', { volume: src, path: '/data.bin', base64: randomBytes(6 << 20).toString('base64') });
    // 2 MiB/s: each update of the 6 MiB takes ~3 s.
    for (const name of ['ml', 'ml2']) await call('mirrorCreate', { name, source: src, destination: join(dir, `${name}-mirror.img`), kind: 'full', limit: 2 * 2 ** 20 });
    const first = await call<JobState>('jobStart', { kind: 'mirror-update', name: 'ml' });
    await transferring(first.id);
    // The console gave the writer up for the transfer: another writer gets the source now.
    expect(await otherWrites(src, 'during')).toBeNull();
    expect(jobs.filter((j) => j.id === first.id).at(-1)?.state).toBe('running');
    expect((await finished(first.id)).state).toBe('ok');
    const mirror = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'reader-state.json') });
    try {
      // The mirror is the update's snapshot: the write from elsewhere came after it, and the next update brings it.
      expect((await mirror.snapList({ volume: join(dir, 'ml-mirror.img') })).map((x) => x.name)).toEqual(['mirror.ml.1']);
      await mirror.closeAll();
      const second = await call<JobState>('jobStart', { kind: 'mirror-update', name: 'ml' });
      expect((await finished(second.id)).state).toBe('ok');
      expect((await mirror.snapList({ volume: join(dir, 'ml-mirror.img') })).map((x) => x.name)).toEqual(['during', 'mirror.ml.2']);
      await mirror.closeAll();
      // Two updates at once (other work for each): the writer stays with the console through the transfers. The
      // first sends 8 MiB (~4 s), so it still runs when the second, a full copy, decides.
      await call('writeFile', { volume: src, path: '/more.bin', base64: randomBytes(8 << 20).toString('base64') });
      const a = await call<JobState>('jobStart', { kind: 'mirror-update', name: 'ml' });
      const b = await call<JobState>('jobStart', { kind: 'mirror-update', name: 'ml2' });
      await transferring(b.id);
      expect(jobs.filter((j) => j.id === a.id).at(-1)?.state).toBe('running');
      expect((await otherWrites(src, 'refused'))?.message).toMatch(/open for writing by process \d+ \(the snapplane console\)/);
      expect(jobs.filter((j) => j.id === b.id).at(-1)?.state).toBe('running');
      expect((await finished(a.id)).state).toBe('ok');
      expect((await finished(b.id)).state).toBe('ok');
      for (const [name, top] of [['ml', 'mirror.ml.3'], ['ml2', 'mirror.ml2.1']]) {
        expect((await mirror.snapList({ volume: join(dir, `${name}-mirror.img`) })).map((x) => x.name)).toContain(top);
        const files = await mirror.ls({ volume: join(dir, `${name}-mirror.img`) }, '/');
        expect(files.map((e) => e.name).sort()).toEqual(['data.bin', 'more.bin']);
        await mirror.closeAll();
      }
    } finally {
      await mirror.closeAll();
    }
  }, 120_000);
});
