/**
 * `snapplane daemon` as an administrator runs it (no --once): it keeps running, picks up schedules and mirror
 * relationships created after it started, and stops cleanly on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { json, ok, snapplane } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';
import type { MirrorInfo, SnapshotInfo } from '../../core/api/index.js';
import { literal } from '../helpers/literal.js';

const dir = useTempDir('daemon');
const BIN = join(process.cwd(), 'bin', 'snapplane.js');

/** Starts `snapplane daemon --interval 1` with `env`; what it prints collects in `out` and `err`. */
function startDaemon(env: NodeJS.ProcessEnv): { child: ChildProcess; out: { text: string }; err: { text: string }; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, 'daemon', '--interval', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const out = { text: '' };
  const err = { text: '' };
  child.stdout!.on('data', (d: Buffer) => (out.text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err.text += d.toString()));
  return { child, out, err, exit: new Promise<number | null>((r) => child.once('exit', (code) => r(code))) };
}

/** Resolves once the child's stdout has printed something matching `re` (or rejects when it exits first). */
function printed(child: ChildProcess, out: { text: string }, re: RegExp, ms = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (re.test(out.text)) {
        cleanup();
        resolve();
      }
    };
    const exited = (code: number | null): void => {
      cleanup();
      reject(new Error(`daemon exited (${code}) before printing ${re}: ${out.text}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${re} within ${ms} ms: ${out.text}`));
    }, ms);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout!.off('data', check);
      child.off('exit', exited);
    };
    child.stdout!.on('data', check);
    child.once('exit', exited);
    check();
  });
}

describe('snapplane daemon', () => {
  it('keeps running between passes, runs what was scheduled after it started, and stops on SIGTERM with exit 0', async () => {
    const home = join(dir(), 'home');
    const env = { ...process.env, SNAPPLANE_HOME: home };
    const vol = join(dir(), 'v.img');
    const mirror = join(dir(), 'm.img');
    const run = (...args: string[]): Promise<unknown> => ok(...args);
    process.env.SNAPPLANE_HOME = home;
    await run('volume', 'create', vol, '--size', '16M');

    const { child, out, err, exit } = startDaemon(env);
    try {
      await printed(child, out, /checking schedules every 1s/);
      // Longer than a pass and its wait: the daemon must still be there (it used to exit after its first pass).
      await new Promise((r) => setTimeout(r, 2500));
      expect(child.exitCode).toBeNull();

      // Created now, while the daemon waits: its next passes take the snapshot and initialize the mirror.
      await run('schedule', 'add', vol, 'hourly', '--every', '1h', '--keep', '2');
      await run('mirror', 'create', 'nightly', vol, mirror, '--kind', 'full', '--every', '1d');
      await printed(child, out, new RegExp(`${literal(vol)}: took hourly-`));
      await printed(child, out, /mirror nightly: initialized with a full image of mirror\.nightly\.1: \d+ blocks/);
      const snaps = await json<SnapshotInfo[]>('snap', 'list', vol);
      expect(snaps.some((s) => s.name.startsWith('hourly-'))).toBe(true);
      const status = await json<MirrorInfo>('mirror', 'status', 'nightly');
      expect(status.lastCommon).not.toBeNull();
      expect(status.state).toBe('idle');

      child.kill('SIGTERM');
      const code = await Promise.race([exit, new Promise<string>((r) => setTimeout(() => r('still running 5 s after SIGTERM'), 5000))]);
      expect(code).toBe(0);
      expect(out.text).toMatch(/snapplane daemon: stopped/);
      expect(err.text).toBe('');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('SIGTERM during a long transfer stops it at once; the next update resumes it instead of sending it again', async () => {
    const home = join(dir(), 'home-stop');
    process.env.SNAPPLANE_HOME = home;
    const vol = join(dir(), 'big.img');
    const mirror = join(dir(), 'big-mirror.img');
    const payload = join(dir(), 'payload.bin');
    await writeFile(payload, randomBytes(5 << 20));
    await ok('volume', 'create', vol, '--size', '32M');
    await ok('put', vol, payload, '/payload.bin');
    // 1 MiB/s: about 5 s for the whole copy, far longer than the daemon is given.
    await ok('mirror', 'create', 'slow', vol, mirror, '--kind', 'full', '--every', '1h', '--limit', '1M');
    const env = { ...process.env, SNAPPLANE_HOME: home, SNAPPLANE_RESUME_POINT_MS: '200' };
    const { child, out, exit } = startDaemon(env);
    try {
      await printed(child, out, /checking schedules/);
      for (let i = 0; i < 100 && (await json<MirrorInfo>('mirror', 'status', 'slow')).state !== 'transferring'; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 2000));
      const t0 = performance.now();
      child.kill('SIGTERM');
      const code = await Promise.race([exit, new Promise<string>((r) => setTimeout(() => r('still running 5 s after SIGTERM'), 5000))]);
      expect(code).toBe(0);
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(out.text).toContain('stopping the running transfer');
      expect(out.text).not.toMatch(/mirror slow: initialized/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    // What stopped is recorded in words that fit a mirror (the next update resumes it; no `send --resume` token).
    const stopped = await json<MirrorInfo>('mirror', 'status', 'slow');
    expect(stopped.lastError).toMatch(/cancelled; blocks that landed are kept: the next replication or mirror update of this destination resumes from them/);
    // Written after the stop: the next update finishes the stopped copy (resuming it), then sends this too.
    await writeFile(join(dir(), 'later.txt'), 'written after the stop\n');
    await ok('put', vol, join(dir(), 'later.txt'), '/later.txt');
    const update = await ok('mirror', 'update', 'slow');
    const line = /^slow: finished its initialization with a full image of mirror\.slow\.1, resumed at VBN (\d+), then sent mirror\.slow\.1 → mirror\.slow\.2 \(blocks chosen by the mark-on-allocate image\): \d+ blocks/.exec(update.stdout);
    expect(line, update.stdout).not.toBeNull();
    expect(Number(line![1])).toBeGreaterThan(0);
    const after = await json<MirrorInfo>('mirror', 'status', 'slow');
    expect([after.state, after.lastCommon, after.limit]).toEqual(['idle', 'mirror.slow.2', 1 << 20]);
    expect((await ok('mirror', 'status', 'slow')).stdout).toMatch(/^limit:\s+1\.00 MiB\/s$/m);
    expect(await json<unknown>('ls', mirror, '/')).toEqual(await json<unknown>('ls', vol, '/'));
  });

  it('skips a relationship another process took after its list was made (no BUSY error, exit 0)', async () => {
    const home = join(dir(), 'home-race');
    process.env.SNAPPLANE_HOME = home;
    const payload = join(dir(), 'race-payload.bin');
    await writeFile(payload, randomBytes(5 << 20));
    const vols = ['race-a.img', 'race-b.img'].map((f) => join(dir(), f));
    for (const v of vols) {
      await ok('volume', 'create', v, '--size', '32M');
      await ok('put', v, payload, '/payload.bin');
    }
    // The daemon lists both at once and updates `first` (about 2.5 s at 2 MiB/s) before it gets to `second`.
    await ok('mirror', 'create', 'first', vols[0], join(dir(), 'race-a-m.img'), '--kind', 'full', '--every', '1h', '--limit', '2M');
    await ok('mirror', 'create', 'second', vols[1], join(dir(), 'race-b-m.img'), '--kind', 'full', '--every', '1h', '--limit', '1M');
    const daemon = spawn(process.execPath, [BIN, 'daemon', '--once'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SNAPPLANE_HOME: home } });
    const out = { text: '' };
    const err = { text: '' };
    daemon.stdout.on('data', (d: Buffer) => (out.text += d.toString()));
    daemon.stderr.on('data', (d: Buffer) => (err.text += d.toString()));
    const exit = new Promise<number | null>((r) => daemon.once('exit', (code) => r(code)));
    try {
      for (let i = 0; i < 200 && (await json<MirrorInfo>('mirror', 'status', 'first')).state !== 'transferring'; i++) await new Promise((r) => setTimeout(r, 50));
      // Meanwhile an administrator updates `second` from a shell (about 5 s): still running when the daemon gets there.
      const manual = snapplane('mirror', 'update', 'second');
      const code = await exit;
      expect(err.text).toBe('');
      expect(code).toBe(0);
      expect(out.text).toMatch(/mirror first: initialized with a full image of mirror\.first\.1/);
      expect(out.text).toMatch(/ mirror second: skipped, it is being updated by process \d+ \(since [\d-]+T[\d:.]+Z\)\n/);
      const r = await manual;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^second: initialized with a full image of mirror\.second\.1/);
    } finally {
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
    }
    expect((await json<MirrorInfo>('mirror', 'status', 'second')).state).toBe('idle');
    // Nothing is due now: another pass does nothing and says nothing.
    const again = await ok('daemon', '--once');
    expect(again.stdout).not.toMatch(/mirror (first|second)/);
  });

  it('stamps an error line and says it once while it stays the same; says when it works again', async () => {
    const home = join(dir(), 'home-errors');
    process.env.SNAPPLANE_HOME = home;
    const gone = join(dir(), 'gone.img');
    await ok('volume', 'create', gone, '--size', '16M');
    await ok('schedule', 'add', gone, 'hourly', '--every', '1h', '--keep', '2');
    await rename(gone, `${gone}.away`);
    const env = { ...process.env, SNAPPLANE_HOME: home };
    const { child, out, err, exit } = startDaemon(env);
    try {
      await printed(child, out, /checking schedules every 1s/);
      // Several passes with the volume missing: one line, stamped.
      await new Promise((r) => setTimeout(r, 4000));
      const lines = err.text.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z ${literal(gone)}: volume '.*' does not exist \\(NOT_FOUND\\) \\(said again if it changes, or hourly while it lasts\\)$`));
      // Back in place: the next pass takes the snapshot and says the volume works again.
      await rename(`${gone}.away`, gone);
      await printed(child, out, /gone\.img: works again/);
      expect(out.text).toMatch(/gone\.img: took hourly-/);
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
      expect(err.text.trim().split('\n')).toHaveLength(1);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('replacing a schedule with a smaller --keep warns of the snapshots its next run prunes; mkdir and snap delete take --json', async () => {
    process.env.SNAPPLANE_HOME = join(dir(), 'home-keep');
    const vol = join(dir(), 'keep.img');
    await ok('volume', 'create', vol, '--size', '16M');
    for (const d of ['01', '02', '03', '04']) await ok('snap', 'create', vol, `h-2026-01-${d}_0000`);
    expect((await ok('schedule', 'add', vol, 'h', '--every', '1h', '--keep', '5')).stderr).toBe('');
    const smaller = await ok('schedule', 'add', vol, 'h', '--every', '1h', '--keep', '2');
    expect(smaller.stdout).toMatch(/^schedule h replaced; /);
    expect(smaller.stderr).toBe(
      `snapplane: warning: schedule h keeps 2, so its next run (\`snapplane schedule run\` or the daemon's next pass) prunes 2 of its snapshots: h-2026-01-01_0000, h-2026-01-02_0000 (\`schedule run ${vol} --dry-run\` shows the space this frees)\n`,
    );
    expect((await json<SnapshotInfo[]>('snap', 'list', vol)).length).toBe(4);

    const folder = await json<{ path: string; type: string }>('mkdir', vol, '/a/b', '-p');
    expect([folder.path, folder.type]).toEqual(['/a/b', 'dir']);
    const deleted = await json<{ deleted: string; freedBlocks: number; freedBytes: number }>('snap', 'delete', vol, 'h-2026-01-01_0000');
    expect(deleted.deleted).toBe('h-2026-01-01_0000');
    expect(deleted.freedBytes).toBe(deleted.freedBlocks * 4096);
    expect((await json<SnapshotInfo[]>('snap', 'list', vol)).length).toBe(3);
  });

  it('refuses an interval of 0 (it would spin)', async () => {
    const r = await snapplane('daemon', '--interval', '0');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^snapplane: --interval must be at least 1/);
  });
});
