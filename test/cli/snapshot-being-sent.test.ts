/**
 * A snapshot another process is sending cannot be deleted under it: `snap delete` in a second shell used to
 * succeed, its blocks were reused by the next write, and the replication failed with a stale read partway. Now the
 * sender records what it reads beside the volume (`<image>.sending.json`), the delete is refused naming the
 * sender, schedule pruning keeps it, and a killed sender's record holds nothing.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { json, ok, snapplane } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { treeOf, writeAndSnapshot } from '../helpers/replication.js';
import { expectSameTree } from '../helpers/model.js';
import type { ScheduleRunReport } from '../../core/api/index.js';
import { literal } from '../helpers/literal.js';

const dir = useTempDir('being-sent');
const BIN = join(process.cwd(), 'bin', 'snapplane.js');

/** Starts a replication throttled to 4 MiB/s and resolves once its record is beside the source. */
async function slowReplicate(src: string, dest: string): Promise<{ pid: number; done: Promise<{ code: number; stderr: string }>; kill: () => void }> {
  const child = spawn(process.execPath, [BIN, 'replicate', src, dest, '--limit', '4M'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number; stderr: string }>((r) => child.once('close', (code) => r({ code: code ?? -1, stderr })));
  for (const t0 = Date.now(); !existsSync(`${src}.sending.json`); ) {
    if (Date.now() - t0 > 20_000) throw new Error(`no send recorded: ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return { pid: child.pid!, done, kill: () => child.kill('SIGKILL') };
}

/** A source `src<n>.img` with master `snap`, whose replication to `copy<n>.img` was killed (SIGKILL) mid-send. */
async function killedSender(n: string, seed: number, snap: string): Promise<{ src: string; run: { pid: number } }> {
  const src = join(dir(), `src${n}.img`);
  await ok('volume', 'create', src, '--size', '64M');
  await writeAndSnapshot(src, '/big.bin', 20 << 20, seed, snap);
  await ok('master', 'mark', src, snap);
  const run = await slowReplicate(src, join(dir(), `copy${n}.img`));
  run.kill();
  await run.done;
  return { src, run };
}

describe('a snapshot being sent by another process', () => {
  it('is not deleted under the transfer, nor pruned; the transfer lands whole while the source is written', async () => {
    process.env.SNAPPLANE_HOME = join(dir(), 'home');
    const src = join(dir(), 'src.img');
    await ok('volume', 'create', src, '--size', '64M');
    // Named as an hourly schedule's snapshots are, so the schedule would prune the older one.
    const older = 'hourly-2026-01-01_0000';
    await writeAndSnapshot(src, '/big.bin', 20 << 20, 3, older);
    await writeAndSnapshot(src, '/small.bin', 4096, 4, 'hourly-2026-01-01_0100');
    await ok('schedule', 'add', src, 'hourly', '--every', '1h', '--keep', '1');
    await ok('master', 'mark', src, older);
    const expected = await treeOf(src, older);

    const run = await slowReplicate(src, join(dir(), 'copy.img'));
    const refused = await snapplane('snap', 'delete', src, older);
    expect(refused.code).toBe(1);
    // Named as its locks name it: the command it runs.
    const sender = `process ${run.pid} (snapplane replicate ${src} ${join(dir(), 'copy.img')}) on ${hostname()}`;
    expect(refused.stderr).toMatch(new RegExp(`^snapplane: snapshot '${older}' is being sent by ${literal(sender)} \\(since \\S+Z\\); delete it after that transfer ends, or stop it first \\(HELD\\)\\n$`));
    const plan = await json<ScheduleRunReport>('schedule', 'run', src, '--dry-run');
    expect(plan.prune).not.toContain(older);
    expect(plan.kept).toContainEqual({ name: older, reason: `being sent by ${sender}` });
    // Writes go on meanwhile; they land in other blocks.
    await writeAndSnapshot(src, '/more.bin', 8 << 20, 5, 'later');
    const done = await run.done;
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    expectSameTree(await treeOf(join(dir(), 'copy.img')), expected, 'the copy');
    // The record goes with the transfer.
    expect(existsSync(`${src}.sending.json`)).toBe(false);
  }, 120_000);

  it('a killed sender holds nothing, nor does a record a crash cut short: the delete goes through', async () => {
    const { src } = await killedSender('2', 6, 'mon');
    expect(existsSync(`${src}.sending.json`)).toBe(true);
    await ok('master', 'unmark', src, 'mon');
    await ok('snap', 'delete', src, 'mon');
    expect((await json<{ name: string }[]>('snap', 'list', src)).map((s) => s.name)).toEqual([]);
    // Cut short by a crash (it is written without fsync): read as no send running, not an error for every delete.
    await ok('snap', 'create', src, 'tue');
    await writeFile(`${src}.sending.json`, '[{"id": "1f2e", "pid": 4');
    await ok('snap', 'delete', src, 'tue');
    expect((await json<{ name: string }[]>('snap', 'list', src)).map((s) => s.name)).toEqual([]);
  }, 120_000);

  it("a sender on another host (shared storage) holds until its entry goes; the refusal says which entry, in which file", async () => {
    const { src, run } = await killedSender('3', 7, 'wed');
    // As another host's sender leaves it: this host cannot ask whether that process runs.
    const records = JSON.parse(await readFile(`${src}.sending.json`, 'utf8')) as { id: string; host: string }[];
    expect(records).toHaveLength(1);
    const foreign = 'nas-b.example';
    expect(hostname()).not.toBe(foreign);
    await writeFile(`${src}.sending.json`, JSON.stringify([{ ...records[0], host: foreign }]));
    await ok('master', 'unmark', src, 'wed');
    const refused = await snapplane('snap', 'delete', src, 'wed');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`snapplane: snapshot 'wed' is being sent by process ${run.pid} (snapplane replicate ${src} ${join(dir(), 'copy3.img')}) on ${foreign} (since ${(records[0] as unknown as { since: string }).since}); delete it after that transfer ends, or stop it first (this host cannot tell whether that process still runs: if it does not, remove the entry with id ${records[0].id} from ${src}.sending.json) (HELD)\n`);
    expect((await json<{ name: string }[]>('snap', 'list', src)).map((s) => s.name)).toEqual(['wed']);
    // Following the advice: the entry goes, and so does the snapshot.
    await writeFile(`${src}.sending.json`, '[]');
    await ok('snap', 'delete', src, 'wed');
    expect((await json<{ name: string }[]>('snap', 'list', src)).map((s) => s.name)).toEqual([]);
  }, 120_000);
});
