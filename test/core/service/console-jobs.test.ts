/**
 * Console jobs on the real engine over a real socket: a replication throttled to a known rate runs long enough to
 * measure how often progress is pushed (at least 4 updates a second), ends at 100% with its report, and a second
 * job is cancelled on request and recorded as cancelled.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsoleEvent, JobState } from '../../../core/api/index.js';
import { ConsoleHost, SnapplaneService } from '../../../core/service/index.js';
import { makeKey } from '../../helpers/replication.js';
import { ScheduleLoop } from '../../../core/service/schedule-loop.js';

let dir: string;
let host: ConsoleHost;
let server: SnapplaneService;
let port: number;
let closeEndpoint: () => Promise<void>;
let key: string;
let src: string;
const events: { at: number; job: JobState }[] = [];

async function call<T>(method: string, args: unknown): Promise<T> {
  const r = await host.router.call(method, args);
  if (!r.ok) throw new Error(`${method}: ${r.error.code} ${r.error.message}`);
  return r.result as T;
}

/** Waits for a job to leave the running state. */
async function finished(id: number): Promise<JobState> {
  for (;;) {
    const done = events.find((e) => e.job.id === id && e.job.state !== 'running');
    if (done) return done.job;
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-jobs-'));
  host = await ConsoleHost.start({ transport: 'direct', stateFile: join(dir, 'state.json'), schedulerIntervalMs: 0, cpIntervalMs: 0 });
  host.onEvent((e: ConsoleEvent) => {
    if (e.type === 'job') events.push({ at: performance.now(), job: e.job });
  });
  src = join(dir, 'src.img');
  await call('volumeCreate', { path: src, sizeBytes: 32 * 2 ** 20 });
  const data = Buffer.alloc(5 * 2 ** 20);
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
  await call('writeFile', { volume: src, path: '/payload', base64: data.toString('base64') });
  await call('snapCreate', { volume: src, name: 'M1' });
  await call('masterMark', { volume: src, name: 'M1', mark: true });
  key = await makeKey(dir);
  const root = join(dir, 'remote');
  await mkdir(root);
  server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'server-state.json') });
  const ep = await server.serve({ port: 0, root, keyFile: key });
  port = ep.port;
  closeEndpoint = () => ep.close();
});

afterAll(async () => {
  await host.close();
  await closeEndpoint();
  await server.closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe('console jobs', () => {
  it('pushes progress at least 4 times a second and ends at 100% with the report', async () => {
    const started = await call<JobState>('jobStart', { kind: 'replicate', source: src, destination: `127.0.0.1:${port}/a`, keyFile: key, limit: 2 * 2 ** 20 });
    expect(started.state).toBe('running');
    const end = await finished(started.id);
    expect(end.state).toBe('ok');
    expect(end.done).toBe(end.total);
    expect(end.total).toBeGreaterThan(5 * 2 ** 20);
    expect(end.result).toMatchObject({ kind: 'full', to: 'M1' });
    const mine = events.filter((e) => e.job.id === started.id && e.job.state === 'running' && e.job.phase === 'transfer');
    const seconds = (mine.at(-1)!.at - mine[0].at) / 1000;
    expect(seconds).toBeGreaterThan(1); // the limit makes it last
    expect(mine.length / seconds).toBeGreaterThanOrEqual(4);
    // Real progress, not only ticks: the amount done moves, never backwards.
    const done = mine.map((e) => e.job.done);
    expect(new Set(done).size).toBeGreaterThanOrEqual(3);
    expect([...done].sort((a, b) => a - b)).toEqual(done);
    // Rate and ETA while it ran: the rate near the limit once the first second's burst is over.
    const late = mine.filter((e) => e.job.done > 3 * 2 ** 20);
    expect(late.some((e) => e.job.etaSeconds !== null && e.job.rate > 0)).toBe(true);
    const history = await call<{ kind: string; outcome: string }[]>('jobHistory', {});
    expect(history[0]).toMatchObject({ kind: 'replicate', outcome: 'ok' });
  });

  it('cancels one job on request', async () => {
    const job = await call<JobState>('jobStart', { kind: 'replicate', source: src, destination: `127.0.0.1:${port}/b`, keyFile: key, limit: 1 * 2 ** 20 });
    while (!events.some((e) => e.job.id === job.id && e.job.phase === 'transfer' && e.job.done > 0)) await new Promise((r) => setTimeout(r, 20));
    const asked = await call<JobState>('jobCancel', { id: job.id });
    expect(asked.id).toBe(job.id);
    const end = await finished(job.id);
    expect(end.state).toBe('cancelled');
    expect(end.error?.code).toBe('CANCELLED');
    expect(end.done).toBeLessThan(end.total);
    const history = await call<{ kind: string; outcome: string }[]>('jobHistory', {});
    expect(history[0]).toMatchObject({ kind: 'replicate', outcome: 'cancelled' });
    expect((await host.router.call('jobCancel', { id: 999 })).ok).toBe(false);
  });

  it('a cancelled copy: the card and History (what `snapplane jobs` lists) say one number and the bytes it moved; the message says how to go on', async () => {
    const big = join(dir, 'big.img');
    await call('volumeCreate', { path: big, sizeBytes: 160 * 2 ** 20 });
    const file = join(dir, 'big.bin');
    const data = Buffer.alloc(120 * 2 ** 20);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i ^ 0x5a5a5a5a, i);
    await writeFile(file, data);
    await call('put', { volume: big, hostPath: file, path: '/big.bin' });
    await call('snapCreate', { volume: big, name: 'B1' });
    const job = await call<JobState>('jobStart', { kind: 'copy', source: big, destination: join(dir, 'big-copy.img'), expression: 'B1' });
    while (!events.some((e) => e.job.id === job.id && e.job.done > 0)) await new Promise((r) => setTimeout(r, 5));
    await call('jobCancel', { id: job.id });
    const end = await finished(job.id);
    expect(end.state).toBe('cancelled');
    expect(end.done).toBeGreaterThan(0);
    expect(end.error?.message).toContain('run the same copy again');
    expect(end.error?.message).not.toContain('--resume');
    const history = await call<{ id: number; kind: string; outcome: string; bytes: number }[]>('jobHistory', {});
    const rec = history.find((h) => h.kind === 'copy')!;
    expect(rec).toMatchObject({ id: job.id, outcome: 'cancelled', bytes: end.done });
  });

  it('backs up into a file inside another volume, verifies and restores it from there as jobs', async () => {
    const store = join(dir, 'store.img');
    await call('volumeCreate', { path: store, sizeBytes: 32 * 2 ** 20 });
    const backup = await call<JobState>('jobStart', { kind: 'backup', volume: src, expression: 'M1', file: '/M1.level0', inVolume: store });
    expect((await finished(backup.id)).state).toBe('ok');
    const files = await call<{ entries: { name: string; size: number }[] }>('ls', { volume: store, path: '/' });
    expect(files.entries.map((e) => e.name)).toEqual(['M1.level0']);
    // A second backup to the same file is refused, naming it, and the first is kept; asked to, it replaces it.
    const again = await call<JobState>('jobStart', { kind: 'backup', volume: src, expression: 'M1', file: '/M1.level0', inVolume: store });
    const refused = await finished(again.id);
    expect(refused.state).toBe('error');
    expect(refused.error?.code).toBe('EXISTS');
    expect(refused.error?.message).toMatch(/store\.img:\/M1\.level0' exists already and was left as it is/);
    const before = (await call<{ entries: { name: string; size: number }[] }>('ls', { volume: store, path: '/' })).entries;
    expect(before.map((e) => [e.name, e.size])).toEqual(files.entries.map((e) => [e.name, e.size]));
    const replaced = await call<JobState>('jobStart', { kind: 'backup', volume: src, expression: 'M1', file: '/M1.level0', inVolume: store, force: true });
    expect((await finished(replaced.id)).state).toBe('ok');
    const verify = await call<JobState>('jobStart', { kind: 'verify', files: ['/M1.level0'], inVolume: store });
    expect((await finished(verify.id)).state).toBe('ok');
    const back = join(dir, 'back.img');
    const restore = await call<JobState>('jobStart', { kind: 'restore', volume: back, files: ['/M1.level0'], inVolume: store });
    expect((await finished(restore.id)).state).toBe('ok');
    const original = await call<{ entries: { name: string; size: number }[] }>('ls', { volume: src, path: '/' });
    const restored = await call<{ entries: { name: string; size: number }[] }>('ls', { volume: back, path: '/' });
    expect(restored.entries.map((e) => [e.name, e.size])).toEqual(original.entries.map((e) => [e.name, e.size]));
    // A verify of a name the store does not have ends in an error that names it.
    const missing = await call<JobState>('jobStart', { kind: 'verify', files: ['/nope'], inVolume: store });
    const end = await finished(missing.id);
    expect(end.state).toBe('error');
    expect(end.error?.message).toMatch(/nope/);
  });

  it('the scheduler leaves a relationship alone while an update started from the console runs: no second job, no failed run', async () => {
    await call('mirrorCreate', { name: 'sched', source: src, destination: join(dir, 'sched-mirror.img'), kind: 'full', every: '1h', limit: 2 ** 20 });
    const job = await call<JobState>('jobStart', { kind: 'mirror-update', name: 'sched' });
    // Due now (never transferred): a pass of the scheduler finds it so while the console's update runs (5 MiB at 1 MiB/s).
    expect(await host.service.dueMirrors()).toContain('sched');
    await new ScheduleLoop(host.service, host.jobs, () => undefined, { intervalMs: 0 }).runOnce();
    expect(host.jobs.list().filter((j) => j.kind === 'mirror-update' && j.target === 'sched').map((j) => j.id)).toEqual([job.id]);
    expect((await finished(job.id)).state).toBe('ok');
    const st = (await call<{ name: string; state: string; lastError: string | null }[]>('mirrorList', {})).find((m) => m.name === 'sched');
    expect(st).toMatchObject({ state: 'idle', lastError: null });
  });
});
