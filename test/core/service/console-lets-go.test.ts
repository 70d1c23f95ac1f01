/**
 * The console host lets go of the volumes it wrote: after a change from a view, and after a copy job (done or
 * failed), the volume is closed once idle, so another writer (the CLI) gets it; meanwhile its LOCKED names the console.
 */
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
});
