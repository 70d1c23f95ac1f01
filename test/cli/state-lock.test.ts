/**
 * state.json is changed by separate processes (CLI commands, the daemon, the console): each change is made under
 * `state.json.lock`, so none is lost when they run at once, and a lock left by a killed process is taken over.
 */
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { access, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ok, snapplane } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';
import type { ScheduleInfo } from '../../core/api/index.js';
import type { ConsoleState } from '../../core/service/state-store.js';

const dir = useTempDir('state-lock');

describe('state.json under concurrent CLI processes', () => {
  it('keeps every schedule added by 10 processes at once, and none fails', async () => {
    process.env.SNAPPLANE_HOME = join(dir(), 'home');
    const vol = join(dir(), 'p3.img');
    await ok('volume', 'create', vol, '--size', '16M');
    const labels = Array.from({ length: 10 }, (_, i) => `N${i + 1}`);
    const results = await Promise.all(labels.map((l) => snapplane('schedule', 'add', vol, l, '--every', '1h', '--keep', '2')));
    for (const r of results) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    const list = JSON.parse((await ok('schedule', 'list', vol, '--json')).stdout) as ScheduleInfo[];
    expect(list.map((x) => x.label).sort()).toEqual([...labels].sort());
    // The lock is released: nothing is left next to the state file.
    await expect(access(join(dir(), 'home', 'state.json.lock'))).rejects.toThrow();
  }, 60_000);

  it('takes over a lock left by a process that died, and waits for a live holder', async () => {
    const home = join(dir(), 'home2');
    process.env.SNAPPLANE_HOME = home;
    const vol = join(dir(), 'q.img');
    await ok('volume', 'create', vol, '--size', '16M');
    await ok('schedule', 'add', vol, 'first', '--every', '1h', '--keep', '2');
    // A pid that surely ran and is gone.
    const dead = spawn(process.execPath, ['-e', '0']);
    const deadPid = dead.pid!;
    await new Promise((r) => dead.once('exit', r));
    const lock = join(home, 'state.json.lock');
    await writeFile(lock, JSON.stringify({ pid: deadPid, host: hostname(), since: new Date().toISOString(), nonce: 'dead' }));
    const r = await snapplane('schedule', 'add', vol, 'second', '--every', '1h', '--keep', '2');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);

    // A live holder (this test's process): the CLI waits until it lets go, then makes its change on what is there.
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString(), nonce: 'live' }));
    const waiting = snapplane('schedule', 'add', vol, 'third', '--every', '1h', '--keep', '2');
    await new Promise((res) => setTimeout(res, 4000));
    const state = JSON.parse(await readFile(join(home, 'state.json'), 'utf8')) as ConsoleState;
    expect(Object.values(state.volumes)[0]!.schedules.map((s) => s.label)).toEqual(['first', 'second']);
    await unlink(lock);
    const r3 = await waiting;
    expect(r3.stderr).toBe('');
    expect(r3.code).toBe(0);
    const list = JSON.parse((await ok('schedule', 'list', vol, '--json')).stdout) as ScheduleInfo[];
    expect(list.map((x) => x.label)).toEqual(['first', 'second', 'third']);
  }, 60_000);
});
