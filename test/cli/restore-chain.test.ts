/**
 * Backup chains (the CLI, as a storage admin runs it): `verify` calls a chain restorable exactly when `restore`
 * accepts it — after `snap revert` / `snap restore` on the source, an incremental whose blocks a restored snapshot
 * holds with the same bytes is both; one whose source deleted that snapshot and wrote over its blocks is neither —
 * and a restore that stops (a damaged backup, a snapshot to delete first) names the backup, keeps what came before,
 * and the same restore run again goes on.
 */
import { describe, expect, it } from 'vitest';
import { readFile, readdir, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { flipByte, json, ok, snapplane, snapshotNames } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';
import type { FsckReport, ReceiveReport } from '../../core/api/index.js';

const tmp = useTempDir('restore-chain');

async function host(name: string, text: string | Buffer): Promise<string> {
  const p = join(tmp(), name);
  await writeFile(p, text);
  return p;
}

describe('an incremental after a revert or a restore on the source', () => {
  async function source(name: string, back: (vol: string) => Promise<unknown>): Promise<string> {
    const vol = join(tmp(), name);
    await ok('volume', 'create', vol, '--size', '16M');
    await ok('put', vol, await host('sv1', 'v1\n'.repeat(5000)), '/f');
    await ok('snap', 'create', vol, 'A');
    await ok('put', vol, await host('sv2', 'version2\n'.repeat(5000)), '/f');
    await ok('snap', 'create', vol, 'B');
    await back(vol);
    await ok('put', vol, await host('n.txt', 'n\n'), '/n');
    await ok('snap', 'create', vol, 'C');
    return vol;
  }

  it('verifies and restores (the blocks it shares with A come with the bytes the destination has)', async () => {
    const d = tmp();
    process.env.SNAPPLANE_HOME = join(d, 'home');
    const reverted = await source('rv.img', (v) => ok('snap', 'revert', v, 'A', '--yes'));
    const restored = await source('sr.img', (v) => ok('snap', 'restore', v, 'A', '/f'));
    for (const src of [reverted, restored]) {
      const b0 = `${src}.b0`;
      const b1 = `${src}.b1`;
      await ok('backup', src, 'B + A', '--to', `file:${b0}`);
      await ok('backup', src, 'C - B', '--to', `file:${b1}`);
      const v = await json<{ ok: boolean; chain: string | null }>('verify', b0, b1);
      expect(v).toMatchObject({ ok: true, chain: null });
      const into = `${src}.restored`;
      const r = await json<ReceiveReport[]>('restore', into, b0, b1);
      expect(r.map((x) => x.current)).toEqual(['B', 'C']);
      expect(await snapshotNames(into)).toEqual(['A', 'B', 'C']);
      expect((await json<FsckReport>('fsck', into)).clean).toBe(true);
      for (const [snap, text] of [['A', 'v1\n'], ['B', 'version2\n'], ['C', 'v1\n']]) {
        const out = join(d, `out-${snap}`);
        await ok('get', `${into}@${snap}`, '/f', out);
        expect(await readFile(out, 'utf8')).toBe(text.repeat(5000));
      }
    }
  }, 120_000);

  it('one whose source deleted A and wrote over its blocks is refused by verify and by restore; deleting A lets the restore go on', async () => {
    const d = tmp();
    process.env.SNAPPLANE_HOME = join(d, 'home');
    const src = join(d, 'x.img');
    await ok('volume', 'create', src, '--size', '16M');
    await ok('put', src, await host('k', 'k\n'), '/keep');
    await ok('put', src, await host('old', Buffer.alloc(2_000_000, 1)), '/old');
    await ok('snap', 'create', src, 'a');
    await ok('rm', src, '/old');
    await ok('snap', 'create', src, 'b');
    const x0 = join(d, 'x0');
    const x1 = join(d, 'x1');
    await ok('backup', src, 'b + a', '--to', `file:${x0}`);
    await ok('snap', 'delete', src, 'a');
    await ok('put', src, await host('new', Buffer.alloc(3_000_000, 2)), '/new');
    await ok('snap', 'create', src, 'c');
    await ok('backup', src, 'c - b', '--to', `file:${x1}`);
    const v = await snapplane('verify', x0, x1);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/chain: .*x1 rewrites VBN \d+, which a snapshot restored from an earlier backup of the chain holds, with other data/);
    const into = join(d, 'xr.img');
    const r = await snapplane('restore', into, x0, x1);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/restore stopped at .*x1: '.*xr\.img' keeps snapshot 'a' the source no longer has, using VBN \d+, which the stream needs; delete it on/);
    expect(await snapshotNames(into)).toEqual(['a', 'b']);
    expect((await json<FsckReport>('fsck', into)).clean).toBe(true);
    expect((await readdir(d)).filter((f) => f.startsWith('xr.img.'))).toEqual([]);
    await ok('snap', 'delete', into, 'a');
    const again = await json<ReceiveReport[]>('restore', into, x0, x1);
    expect(again.map((x) => [x.current, x.alreadyThere === true])).toEqual([['b', true], ['c', false]]);
    expect((await json<FsckReport>('fsck', into)).clean).toBe(true);
  }, 120_000);
});

describe('a restore that stops at a damaged backup', () => {
  it('names it, keeps what came before, and the same restore with a good copy goes on', async () => {
    const d = tmp();
    process.env.SNAPPLANE_HOME = join(d, 'home');
    const src = join(d, 'l.img');
    await ok('volume', 'create', src, '--size', '64M');
    await ok('put', src, await host('one', Buffer.alloc(400_000, 3)), '/one');
    await ok('snap', 'create', src, 'S1');
    await ok('put', src, await host('two', Buffer.alloc(600_000, 4)), '/two');
    await ok('snap', 'create', src, 'S2');
    const l0 = join(d, 'l0.bak');
    const l1 = join(d, 'l1.bak');
    await ok('backup', src, 'S1', '--to', `file:${l0}`);
    await ok('backup', src, 'S2 - S1', '--to', `file:${l1}`);
    const l1c = join(d, 'l1c.bak');
    await flipByte(l1, l1c, 300_000);
    const r7 = join(d, 'r7.img');
    const bad = await snapplane('restore', r7, l0, l1c);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^snapplane: restore stopped at .*l1c\.bak: .*; '.*r7\.img' keeps what the backups before it restored \(snapshots S1\); put a good copy of .*l1c\.bak in its place .*, then run the same restore again/);
    expect(bad.stderr).not.toMatch(/--resume/);
    expect(await snapshotNames(r7)).toEqual(['S1']);
    // restore-file out of the same chain names the damaged backup and the record.
    const rf = await snapplane('restore-file', '/two', join(d, 'two.out'), '--from', l0, l1c);
    expect(rf.code).toBe(1);
    expect(rf.stderr).toMatch(/^snapplane: .*l1c\.bak: backup record \d+ \(VBNs \d+\.\.\d+, starting at stream byte \d+\) fails its checksum \(corrupted\); put a good copy of .*l1c\.bak in its place .*\(BAD_STREAM\)\n$/);
    expect((await readdir(d)).filter((f) => f.startsWith('r7.img.'))).toEqual([]);
    // The advice, followed: the same restore with a good copy goes on from l1.
    await copyFile(l1, l1c);
    const r = await json<ReceiveReport[]>('restore', r7, l0, l1c);
    expect(r.map((x) => [x.current, x.alreadyThere === true])).toEqual([['S1', true], ['S2', false]]);
    expect(await snapshotNames(r7)).toEqual(['S1', 'S2']);
    expect((await json<FsckReport>('fsck', r7)).clean).toBe(true);
    // A volume that holds the chain's start takes the rest alone; a new one still needs the full backup first.
    const r8 = join(d, 'r8.img');
    await ok('restore', r8, l0);
    expect((await json<ReceiveReport[]>('restore', r8, l1)).map((x) => x.current)).toEqual(['S2']);
    const lone = await snapplane('restore', join(d, 'r9.img'), l1);
    expect(lone.code).toBe(1);
    expect(lone.stderr).toMatch(/starts with a full \(level-0\) backup/);
  }, 120_000);

  it('a restore of a damaged full backup, or a receive of one that kept nothing to resume, removes the volume it created', async () => {
    const d = tmp();
    process.env.SNAPPLANE_HOME = join(d, 'home');
    const src = join(d, 'c.img');
    await ok('volume', 'create', src, '--size', '64M');
    await ok('put', src, await host('big', Buffer.alloc(3_000_000, 7)), '/big');
    await ok('snap', 'create', src, 'S1');
    const c1 = join(d, 'c1.full');
    await ok('backup', src, 'S1', '--to', `file:${c1}`);
    const size = (await readFile(c1)).length;
    // Damaged early (a block record near the start) and late (the last records, after blocks landed).
    const early = join(d, 'c1-early.full');
    const late = join(d, 'c1-late.full');
    await flipByte(c1, early, 200_000);
    await flipByte(c1, late, size - 100_000);
    const left = async (name: string): Promise<string[]> => (await readdir(d)).filter((f) => f === name || f.startsWith(`${name}.`));
    for (const damaged of [early, late]) {
      const into = join(d, `cr-${damaged === early ? 'early' : 'late'}.img`);
      const r = await snapplane('restore', into, damaged);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^snapplane: restore stopped at .*c1-(early|late)\.full: record checksum mismatch .*; nothing was restored, and '.*cr-(early|late)\.img' was not created; put a good copy of/);
      expect(await left(`cr-${damaged === early ? 'early' : 'late'}.img`)).toEqual([]);
    }
    const rx = join(d, 'rx.img');
    const early2 = await snapplane('receive', rx, '-i', early);
    expect(early2.code).toBe(1);
    expect(early2.stderr).toMatch(/^snapplane: .*c1-early\.full: record checksum mismatch .*; '.*rx\.img', which this receive created, was removed \(BAD_STREAM\)\n$/);
    expect(await left('rx.img')).toEqual([]);
    // Blocks landed before the damage: the volume and its resume token stay, for a resumed send.
    const late2 = await snapplane('receive', rx, '-i', late);
    expect(late2.code).toBe(1);
    expect(late2.stderr).toMatch(/blocks that landed are kept: resume with `snapplane send \.\.\. --resume [0-9a-f]+-\d+`/);
    expect(await left('rx.img')).toEqual(['rx.img', 'rx.img.receive-token.json', 'rx.img.receive-token.spool']);
    // With a good copy, the restore makes the volume.
    expect((await json<ReceiveReport[]>('restore', join(d, 'cr-early.img'), c1)).map((x) => x.current)).toEqual(['S1']);
  }, 120_000);
});

describe('verify of backups that start with an incremental (a nightly check of what was just written)', () => {
  it('exits 0 and says the chain was not checked; real chain faults still exit 1', async () => {
    const d = tmp();
    process.env.SNAPPLANE_HOME = join(d, 'home');
    const src = join(d, 'n.img');
    await ok('volume', 'create', src, '--size', '16M');
    for (const s of ['N1', 'N2', 'N3']) {
      await ok('put', src, await host(s, `${s}\n`.repeat(3000)), `/${s}`);
      await ok('snap', 'create', src, s);
    }
    const [f1, i2, i3] = ['f1.bak', 'i2.bak', 'i3.bak'].map((f) => join(d, f));
    await ok('backup', src, 'N1', '--to', `file:${f1}`);
    await ok('backup', src, 'N2 - N1', '--to', `file:${i2}`);
    await ok('backup', src, 'N3 - N2', '--to', `file:${i3}`);
    const lone = await snapplane('verify', i3);
    expect(lone.code).toBe(0);
    expect(lone.stdout).toMatch(/^ok {3}.*i3\.bak: incremental N3 - N2/);
    expect(lone.stdout).toMatch(/chain: .*i3\.bak is an incremental \(based on 'N2'\), so the chain was not checked; to check it, verify it with the backups it goes on from, starting with a full \(level-0\) backup/);
    type Verify = { ok: boolean; chain: string | null; chainStatus: string; chainNote: string | null };
    const j = await json<Verify>('verify', i3);
    expect([j.ok, j.chain, j.chainStatus]).toEqual([true, null, 'not-checked']);
    expect(j.chainNote).toMatch(/not checked/);
    // A tail in order is the same; the whole chain is restorable.
    expect((await json<Verify>('verify', i2, i3)).chainStatus).toBe('not-checked');
    const whole = await json<Verify>('verify', f1, i2, i3);
    expect([whole.ok, whole.chain, whole.chainStatus, whole.chainNote]).toEqual([true, null, 'restorable', null]);
    // A tail out of order, a gap, a second full, another volume: exit 1, the fault in `chain`.
    const other = join(d, 'o.img');
    await ok('volume', 'create', other, '--size', '16M');
    await ok('snap', 'create', other, 'N2');
    await ok('put', other, await host('o', 'o\n'), '/o');
    await ok('snap', 'create', other, 'N3');
    const o3 = join(d, 'o3.bak');
    await ok('backup', other, 'N3 - N2', '--to', `file:${o3}`);
    for (const [args, why] of [
      [[i3, i2], /i2\.bak needs snapshot 'N1'/],
      [[f1, i3], /i3\.bak needs snapshot 'N2', which no earlier backup of the chain carries/],
      [[i2, f1], /f1\.bak is a full backup; only the first/],
      [[i2, o3], /o3\.bak is from another volume/],
    ] as const) {
      const r = await snapplane('verify', ...args);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(why);
      const rj = await snapplane('verify', ...args, '--json');
      expect(rj.code).toBe(1);
      const v = JSON.parse(rj.stdout) as Verify;
      expect([v.ok, v.chainStatus]).toEqual([false, 'broken']);
      expect(v.chain).toMatch(why);
    }
    // A damaged lone incremental is a failure, as before.
    const bad = join(d, 'i3bad.bak');
    await flipByte(i3, bad, 9000);
    const b = await snapplane('verify', bad);
    expect(b.code).toBe(1);
    expect(b.stdout).toMatch(/BAD .*i3bad\.bak/);
  }, 120_000);
});
