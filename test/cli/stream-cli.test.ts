import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { json, ok, snapplane } from './cli-helpers.js';
import type { BackupCheck, FsckReport, ImageEvalReport, ReceiveReport, SendReport, SnapshotInfo } from '../../core/api/index.js';

let dir: string;
let vol: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-streamcli-'));
  process.env.SNAPPLANE_HOME = join(dir, 'home');
  vol = join(dir, 'june.img');
  await ok('volume', 'create', vol, '--size', '64M');
  for (let d = 1; d <= 5; d++) {
    const host = join(dir, `day${d}`);
    await mkdir(host, { recursive: true });
    await writeFile(join(host, `report${d}.txt`), `June ${d}\n`.repeat(20000 * d));
    await ok('put', vol, host, `/day${d}`);
    await ok('snap', 'create', vol, `June${d}`);
  }
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('snapplane image, send, receive, backup, restore, verify', () => {
  it('image eval reports blocks and bytes, and points at typos', async () => {
    const r = await json<ImageEvalReport>('image', 'eval', vol, 'June5 + June4 - June3');
    expect(r.kind).toBe('incremental');
    expect(r.bytes).toBe(r.blocks * 4096);
    expect(r.blocks).toBeGreaterThan(0);
    const all = await json<ImageEvalReport>('image', 'eval', vol, '(June1 + June2) & June2');
    const two = await json<ImageEvalReport>('image', 'eval', vol, 'June2');
    expect(all.blocks).toBe(two.blocks);
    expect(all.streamable).toBe(false);
    const bad = await snapplane('image', 'eval', vol, 'June5 - Jun3');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/unknown snapshot 'Jun3' at column 9 .*did you mean 'June3'\?/);
    const syntax = await snapplane('image', 'eval', vol, 'June5 + (June4');
    expect(syntax.stderr).toMatch(/expected '\)' but found end of expression at column 15/);
  });

  it('send --dry-run predicts the exact stream size; backup, verify and restore a level-0 + level-1 chain', async () => {
    const dry = await json<SendReport>('send', vol, 'June3 + June2 + June1', '--dry-run');
    const l0 = join(dir, 'june3.level0');
    const sent = await json<SendReport>('backup', vol, 'June3 + June2 + June1', '--to', `file:${l0}`);
    expect((await stat(l0)).size).toBe(dry.streamBytes);
    expect(sent.streamBytes).toBe(dry.streamBytes);
    expect(dry.overhead).toBeLessThan(0.01);
    const l1 = join(dir, 'june5.level1');
    await ok('backup', vol, 'June5 + June4 - June3', '--to', `file:${l1}`);
    const v = await json<{ ok: boolean; backups: BackupCheck[] }>('verify', l0, l1);
    expect(v.ok).toBe(true);
    // Out of order, the chain is refused before anything is written.
    const wrong = await snapplane('restore', join(dir, 'nope.img'), l1, l0);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/starts with a full/);
    const restored = join(dir, 'restored.img');
    const r = await json<ReceiveReport[]>('restore', restored, l0, l1);
    expect(r.map((x) => x.current)).toEqual(['June3', 'June5']);
    const snaps = await json<SnapshotInfo[]>('snap', 'list', restored);
    expect(snaps.map((s) => s.name)).toEqual(['June1', 'June2', 'June3', 'June4', 'June5']);
    expect((await json<FsckReport>('fsck', restored)).clean).toBe(true);
    await ok('get', `${restored}@June4`, '/day4', join(dir, 'out4'));
    expect(await readFile(join(dir, 'out4', 'report4.txt'), 'utf8')).toBe('June 4\n'.repeat(80000));
    // A corrupted backup fails verify with the reason, and exit 1.
    const bytes = await readFile(l1);
    bytes[bytes.length - 5000] ^= 0x10;
    const broken = join(dir, 'broken.level1');
    await writeFile(broken, bytes);
    const bad = await snapplane('verify', broken);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/BAD .*checksum mismatch/);
  });

  it('backup to tape runs the --next-tape hook before each further tape, and a failing hook stops it', async () => {
    const log = join(dir, 'tapes.log');
    const tapes = join(dir, 'tapes');
    const r = await snapplane('backup', vol, 'June5 + June4 + June3 + June2 + June1', '--to', `tape:${tapes}`, '--tape-size', '1M', '--next-tape', `echo "$SNAPPLANE_TAPE $SNAPPLANE_TAPE_PATH" >> ${log}`);
    expect(r.code).toBe(0);
    const n = Number(/on (\d+) tape/.exec(r.stdout)![1]);
    expect(n).toBeGreaterThan(1);
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    expect(lines).toEqual(Array.from({ length: n - 1 }, (_, k) => `${k + 2} ${join(tapes, `tape-000${k + 2}.tap`)}`));
    expect((await json<{ ok: boolean }>('verify', tapes)).ok).toBe(true);
    const bad = await snapplane('backup', vol, 'June5 + June4 + June3 + June2 + June1', '--to', `tape:${join(dir, 'tapes-b')}`, '--tape-size', '1M', '--next-tape', 'exit 3');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--next-tape hook exited with 3 before tape 2/);
  });

  it('send | receive through a pipe, then copy an incremental', async () => {
    const dst = join(dir, 'piped.img');
    const code = await new Promise<number>((resolve) => {
      const bin = join(process.cwd(), 'bin', 'snapplane.js');
      const send = spawn(process.execPath, [bin, 'send', vol, 'June2 + June1', '--compress', 'lz4'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const recv = spawn(process.execPath, [bin, 'receive', dst], { stdio: ['pipe', 'pipe', 'inherit'] });
      send.stdout.pipe(recv.stdin);
      recv.on('close', (c) => resolve(c ?? -1));
    });
    expect(code).toBe(0);
    const r = await json<ReceiveReport>('copy', vol, dst, 'June5 + June4 + June3 - June2');
    expect(r.snapshots).toEqual(['June3', 'June4', 'June5']);
    expect((await json<FsckReport>('fsck', dst)).clean).toBe(true);
    // Copying the same increment again is refused with the reason.
    const again = await snapplane('copy', vol, dst, 'June5 - June4');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/has changed since snapshot 'June4'|already has snapshot 'June5'/);
  });
});
