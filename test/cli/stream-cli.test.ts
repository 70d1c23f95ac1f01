import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
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
    expect(r.fsinfoBlocks).toBe(0);
    // A full image holds the fsinfo copies, which no stream carries: eval counts what the backup and the planner do.
    const full = await json<ImageEvalReport>('image', 'eval', vol, 'June1');
    const dry = await json<SendReport>('send', vol, 'June1', '--dry-run');
    expect(full.fsinfoBlocks).toBe(2);
    expect(full.blocks).toBe(dry.blocks);
    expect((await ok('image', 'eval', vol, 'June1')).stdout).toContain(`June1: ${dry.blocks} blocks,`);
    expect((await ok('image', 'eval', vol, 'June1')).stdout).toContain('its 2 fsinfo blocks left out');
    const all = await json<ImageEvalReport>('image', 'eval', vol, '(June1 + June2) & June2');
    const two = await json<ImageEvalReport>('image', 'eval', vol, 'June2');
    expect(all.blocks).toBe(two.blocks);
    expect(all.streamable).toBe(false);
    const bad = await snapplane('image', 'eval', vol, 'June5 - Jun3');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/unknown snapshot 'Jun3' at column 9 .*did you mean 'June3'\?/);
    const glued = await snapplane('image', 'eval', vol, 'June5+(June4-June3)');
    expect(glued.stderr).toContain("unknown snapshot 'June4-June3' at column 8 of \"June5+(June4-June3)\" (put spaces around - and + to use them as operators)");
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
    // A damaged record in tape-0002.tap: verify and restore name that tape file and the byte on it.
    const damaged = join(dir, 'tapes-damaged');
    await mkdir(damaged);
    for (const f of await readdir(tapes)) await writeFile(join(damaged, f), await readFile(join(tapes, f)));
    const t2 = await readFile(join(damaged, 'tape-0002.tap'));
    t2[4096 + 500_000] ^= 0x10;
    await writeFile(join(damaged, 'tape-0002.tap'), t2);
    const onTape = /record \d+, which starts at stream byte \d+, (on tape-0001\.tap \(tape 1 of .*tapes-damaged\) at its byte \d+, ending on tape-0002\.tap|on tape-0002\.tap) \(tape 2 of .*tapes-damaged\) at its byte \d+\)/;
    const v = await snapplane('verify', damaged);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/BAD .*tapes-damaged: record checksum mismatch/);
    expect(v.stdout).toMatch(onTape);
    const rs = await snapplane('restore', join(dir, 'from-damaged.img'), damaged);
    expect(rs.code).toBe(1);
    expect(rs.stderr).toMatch(onTape);
    const bad = await snapplane('backup', vol, 'June5 + June4 + June3 + June2 + June1', '--to', `tape:${join(dir, 'tapes-b')}`, '--tape-size', '1M', '--next-tape', 'exit 3');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--next-tape hook exited with 3 before tape 2/);
  });

  it('a backup into a folder that does not exist is refused up front, naming the folder (nothing is made)', async () => {
    const gone = join(dir, 'no-such-folder');
    for (const to of [`file:${join(gone, 'b.snap')}`, `tape:${join(gone, 'tapes')}`]) {
      const r = await snapplane('backup', vol, 'June1', '--to', to, '--tape-size', '1M');
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`^snapplane: cannot create (backup|tape folder) '${gone}/.*': the folder '${gone}' does not exist \\(NOT_FOUND\\)`));
    }
    await expect(stat(gone)).rejects.toThrow();
  });

  it('a backup or send onto a volume image (or a RAID member image) is refused: it would replace the volume', async () => {
    const victim = join(dir, 'victim.img');
    await ok('volume', 'create', victim, '--size', '8M');
    const group = join(dir, 'victim-group');
    await ok('volume', 'create', group, '--raid', '2', '--size', '4M');
    const member = join(group, (await readdir(group)).find((f) => f.endsWith('.img'))!);
    for (const target of [victim, member]) {
      const before = await readFile(target);
      for (const args of [['backup', vol, 'June1', '--to', `file:${target}`], ['send', vol, 'June1', '-o', target]]) {
        const r = await snapplane(...args);
        expect(r.code).toBe(1);
        expect(r.stderr).toBe(`snapplane: '${target}' is a Snapplane volume image; a backup written there would replace it: name a new file (INVALID)\n`);
      }
      expect((await readFile(target)).equals(before)).toBe(true);
    }
    await ok('fsck', victim);
    // An old backup file is replaced by a new one only with --force; send -o replaces it, as a shell redirect does.
    const old = join(dir, 'rotating.snap');
    await writeFile(old, 'last week');
    expect((await snapplane('backup', vol, 'June1', '--to', `file:${old}`)).stderr).toMatch(/exists already .*\(EXISTS\)/);
    expect(await readFile(old, 'utf8')).toBe('last week');
    await ok('backup', vol, 'June1', '--to', `file:${old}`, '--force');
    expect((await readFile(old)).subarray(0, 8).toString()).toBe('SNAPSTRM');
    await writeFile(old, 'last week');
    await ok('send', vol, 'June1', '-o', old);
    expect((await readFile(old)).subarray(0, 8).toString()).toBe('SNAPSTRM');
  });

  it('image plan names a --policy file that is not there, and says what --policy takes', async () => {
    const r = await snapplane('image', 'plan', vol, '--policy', join(dir, 'no-such-policy'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^snapplane: --policy '.*no-such-policy': no such file; give level=interval pairs \(e\.g\. 0=7d,1=1d,2=6h\) or a file holding them or the JSON form\n/);
  });

  it('a backup onto an existing file is refused (EXISTS, the file kept) unless --force, on the host and inside a volume', async () => {
    const first = join(dir, 'keep.level0');
    await ok('backup', vol, 'June2 + June1', '--to', `file:${first}`);
    const kept = await readFile(first);
    const again = await snapplane('backup', vol, 'June5 - June4', '--to', `file:${first}`);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(new RegExp(`'${first.replace(/[.]/g, '\\.')}' exists already and was left as it is.*--force.*\\(EXISTS\\)`));
    expect((await readFile(first)).equals(kept)).toBe(true);
    const forced = await json<SendReport>('backup', vol, 'June5 - June4', '--to', `file:${first}`, '--force');
    expect(forced.kind).toBe('incremental');
    expect((await stat(first)).size).toBe(forced.streamBytes);
    const store = join(dir, 'keep-store.img');
    await ok('volume', 'create', store, '--size', '16M');
    await ok('backup', vol, 'June2 + June1', '--to', 'file:/b.level0', '--in', store);
    const inside = await snapplane('backup', vol, 'June5 - June4', '--to', 'file:/b.level0', '--in', store);
    expect(inside.code).toBe(1);
    expect(inside.stderr).toMatch(/keep-store\.img:\/b\.level0' exists already .*\(EXISTS\)/);
    const kindIn = async (): Promise<string> => (JSON.parse((await snapplane('verify', '/b.level0', '--in', store, '--json')).stdout) as { backups: BackupCheck[] }).backups[0].kind;
    expect(await kindIn()).toBe('full');
    await ok('backup', vol, 'June5 - June4', '--to', 'file:/b.level0', '--in', store, '--force');
    expect(await kindIn()).toBe('incremental');
    expect((await snapplane('backup', '--help')).stdout).toMatch(/--force/);
  });

  it('a backup or send to a path that is a folder is refused before the transfer, and nothing is left beside it', async () => {
    const folder = join(dir, 'backups');
    await mkdir(folder);
    for (const args of [['backup', vol, 'June1', '--to', `file:${folder}`], ['backup', vol, 'June1', '--to', `file:${folder}/`], ['send', vol, 'June1', '-o', folder]]) {
      const r = await snapplane(...args);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`snapplane: '${args.at(-1)!.replace(/^file:/, '')}' is a folder; name the backup file to write (for example '${join(folder, 'backup.snap')}') (INVALID)\n`);
    }
    expect(await readdir(folder)).toEqual([]);
    expect((await readdir(dir)).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });

  it('a backup, tape folder or get where the host makes no files (/proc) names the path given and why, and ends', async () => {
    const why = "the folder '/proc' does not exist or does not let files be created in it (ENOENT)";
    const file = await snapplane('backup', vol, 'June1', '--to', 'file:/proc/nope.strm');
    expect(file.code).toBe(1);
    expect(file.stderr).toBe(`snapplane: cannot create backup file '/proc/nope.strm': ${why}; nothing was written (NOT_FOUND)\n`);
    // A recursive mkdir there used to spin for ever.
    const tapes = await snapplane('backup', vol, 'June1', '--to', 'tape:/proc/nope', '--tape-size', '1M');
    expect(tapes.stderr).toBe(`snapplane: cannot create tape folder '/proc/nope': ${why}; nothing was written (NOT_FOUND)\n`);
    const got = await snapplane('get', vol, '/', '/proc/nope');
    expect(got.stderr).toMatch(/^snapplane: cannot write '\/proc\/nope': ENOENT/);
    const file2 = join(dir, 'not-a-folder');
    await writeFile(file2, 'x');
    const over = await snapplane('backup', vol, 'June1', '--to', `tape:${file2}`, '--tape-size', '1M');
    expect(over.stderr).toBe(`snapplane: cannot create tape folder '${file2}': something that is not a tape folder is already there (EEXIST); nothing was written (EXISTS)\n`);
  }, 60_000);

  it('file backups inside another volume: backup, verify, restore, restore-file, receive, from a snapshot of it too', async () => {
    const store = join(dir, 'store.img');
    await ok('volume', 'create', store, '--size', '64M');
    await ok('mkdir', store, '/backups');
    const dry = await json<SendReport>('send', vol, 'June3 + June2 + June1', '--dry-run');
    const b0 = await json<SendReport & { target: string }>('backup', vol, 'June3 + June2 + June1', '--to', 'file:/backups/june3.level0', '--in', store);
    expect(b0.streamBytes).toBe(dry.streamBytes);
    expect(b0.target).toBe(`${store}:/backups/june3.level0`);
    const b1 = await json<SendReport>('backup', vol, 'June5 + June4 - June3', '--to', 'file:/backups/june5.level1', '--in', store);
    // The backups are files of the store volume, and nothing half-written is left beside them.
    const listed = await json<{ name: string; size: number }[]>('ls', store, '/backups');
    expect(listed.map((e) => e.name).sort()).toEqual(['june3.level0', 'june5.level1']);
    expect(listed.find((e) => e.name === 'june3.level0')!.size).toBe(dry.streamBytes);
    await ok('snap', 'create', store, 'kept');
    const v = await json<{ ok: boolean; backups: BackupCheck[] }>('verify', '/backups/june3.level0', '/backups/june5.level1', '--in', store);
    expect(v.ok).toBe(true);
    expect(v.backups.map((b) => b.file)).toEqual([`${store}:/backups/june3.level0`, `${store}:/backups/june5.level1`]);
    const restored = join(dir, 'from-store.img');
    const r = await json<ReceiveReport[]>('restore', restored, '/backups/june3.level0', '/backups/june5.level1', '--in', store);
    expect(r.map((x) => x.current)).toEqual(['June3', 'June5']);
    expect((await json<FsckReport>('fsck', restored)).clean).toBe(true);
    // One file out of the chain, read from a snapshot of the store after the live backups are gone.
    await ok('rm', store, '/backups', '--recursive');
    const one = join(dir, 'report5-from-store.txt');
    const rf = await json<{ bytes: number; backupBytesRead: number }>('restore-file', '/day5/report5.txt', one, '--from', '/backups/june3.level0', '/backups/june5.level1', '--in', `${store}@kept`);
    expect(await readFile(one, 'utf8')).toBe('June 5\n'.repeat(100000));
    // It reads only the records holding its metadata and blocks, exactly as from the same chain as host files.
    expect(rf.backupBytesRead).toBeLessThan(b0.streamBytes + b1.streamBytes);
    const host = await json<{ backupBytesRead: number }>('restore-file', '/day5/report5.txt', `${one}.host`, '--from', join(dir, 'june3.level0'), join(dir, 'june5.level1'));
    expect(rf.backupBytesRead).toBe(host.backupBytesRead);
    const recv = join(dir, 'recv-from-store.img');
    await json<ReceiveReport>('receive', recv, '-i', '/backups/june3.level0', '--in', `${store}@kept`);
    expect((await json<SnapshotInfo[]>('snap', 'list', recv)).map((x) => x.name)).toEqual(['June1', 'June2', 'June3']);
    // Wrong names and the volume itself are refused with the reason.
    const missing = await snapplane('verify', '/backups/nope', '--in', store);
    expect(missing.code).toBe(1);
    expect(missing.stdout + missing.stderr).toMatch(/nope/);
    const self = await snapplane('backup', vol, 'June2', '--to', 'file:/self.level0', '--in', vol);
    expect(self.code).toBe(1);
    expect(self.stderr).toMatch(/cannot be written inside .* itself/);
    // A store too small: a clear ENOSPC, and the store keeps what it had, with no half-written backup.
    const small = join(dir, 'small-store.img');
    await ok('volume', 'create', small, '--size', '1M');
    await writeFile(join(dir, 'keep.txt'), 'keep\n');
    await ok('put', small, join(dir, 'keep.txt'), '/keep.txt');
    const full = await snapplane('backup', vol, 'June3 + June2 + June1', '--to', 'file:/b.level0', '--in', small);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/small-store\.img' is full .*\(ENOSPC\)/);
    expect((await json<{ name: string }[]>('ls', small, '/')).map((e) => e.name)).toEqual(['keep.txt']);
    expect((await json<FsckReport>('fsck', small)).clean).toBe(true);
    const into = await snapplane('restore', store, '/backups/june3.level0', '--in', `${store}@kept`);
    expect(into.code).toBe(1);
    expect(into.stderr).toMatch(/the volume being restored/);
  });

  /**
   * A tape drive emulated with a FIFO: recording, each cartridge is what one writer writes between its open and
   * close, and `ejected<n>` appears once it is on disk; playing, cartridge n+1 is fed only after the reader's
   * --next-tape hook asked for it (so two cartridges never run together, as on a real drive).
   */
  function drive(script: string): ChildProcess {
    return spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  }
  function stop(p: ChildProcess): void {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  it('backup to a tape device (a FIFO) across cartridges; verify, restore and receive read them back in order', async () => {
    const dev = join(dir, 'nst0');
    expect(spawnSync('mkfifo', [dev]).status).toBe(0);
    const record = async <T>(carts: string, run: () => Promise<T>): Promise<T> => {
      await mkdir(carts);
      const recorder = drive(`n=0; while true; do n=$((n+1)); cat "${dev}" > "${carts}/cart$n"; touch "${carts}/ejected$n"; done`);
      try {
        return await run();
      } finally {
        stop(recorder);
      }
    };
    const expr = 'June5 + June4 + June3 + June2 + June1';
    // Without a way to change cartridges (no hook, no terminal) it stops at the end of the first, saying so.
    const none = await record(join(dir, 'carts-none'), () => snapplane('backup', vol, expr, '--to', `tape:${dev}`, '--tape-size', '1M'));
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/needs tape 2 in .*nst0: give --next-tape/);
    const carts = join(dir, 'carts');
    const sent = await record(carts, async () => {
      const r = await json<SendReport & { tapes: number }>('backup', vol, expr, '--to', `tape:${dev}`, '--tape-size', '1M', '--next-tape', `while [ ! -e "${carts}/ejected$((SNAPPLANE_TAPE-1))" ]; do sleep 0.02; done`);
      while (!(await readdir(carts)).includes(`ejected${r.tapes}`)) await new Promise((resolve) => setTimeout(resolve, 20));
      return r;
    });
    expect(sent.tapes).toBeGreaterThan(2);
    const dry = await json<SendReport>('send', vol, expr, '--order', 'tape', '--dry-run');
    expect(sent.streamBytes).toBe(dry.streamBytes);
    for (let n = 1; n <= sent.tapes; n++) {
      const cart = await readFile(join(carts, `cart${n}`));
      expect(cart.length % 65536).toBe(0);
      expect(cart.length).toBeLessThanOrEqual(1 << 20);
      expect(cart.subarray(0, 8).toString()).toBe('SNAPTAPE');
    }
    // Playing the cartridges back: cartridge n is loaded when the reader's hook asks for it.
    const play = (order: number[]): ChildProcess =>
      drive(order.map((n, i) => `${i > 0 ? `while [ ! -e "${carts}/load${i + 1}" ]; do sleep 0.02; done; ` : ''}cat "${carts}/cart${n}" > "${dev}"`).join('; '));
    const load = `touch "${carts}/load$SNAPPLANE_TAPE"`;
    const inOrder = Array.from({ length: sent.tapes }, (_, k) => k + 1);
    const session = async <T>(order: number[], run: () => Promise<T>): Promise<T> => {
      for (const f of await readdir(carts)) if (f.startsWith('load')) await rm(join(carts, f));
      const player = play(order);
      try {
        return await run();
      } finally {
        stop(player);
      }
    };
    const v = await session(inOrder, () => json<{ ok: boolean; backups: BackupCheck[] }>('verify', dev, '--next-tape', load));
    expect(v.ok).toBe(true);
    expect(v.backups[0]).toMatchObject({ file: dev, kind: 'full', ok: true });
    const restored = join(dir, 'from-tape.img');
    const r = await session(inOrder, () => json<ReceiveReport[]>('restore', restored, dev, '--next-tape', load));
    expect(r[0].snapshots).toEqual(['June1', 'June2', 'June3', 'June4', 'June5']);
    expect((await json<FsckReport>('fsck', restored)).clean).toBe(true);
    await ok('get', `${restored}@June5`, '/day5', join(dir, 'tape-out5'));
    expect(await readFile(join(dir, 'tape-out5', 'report5.txt'), 'utf8')).toBe('June 5\n'.repeat(100000));
    // receive -i reads the tape directly (no spool); the result is the same volume.
    const received = join(dir, 'received-from-tape.img');
    await session(inOrder, () => json<ReceiveReport>('receive', received, '-i', dev, '--next-tape', load));
    expect((await json<SnapshotInfo[]>('snap', 'list', received)).map((x) => x.name)).toEqual(['June1', 'June2', 'June3', 'June4', 'June5']);
    // Cartridges loaded in the wrong order are refused, naming the tape wanted, and nothing is restored.
    const swapped = [2, 1, ...inOrder.slice(2)];
    const wrong = await session(swapped, () => snapplane('restore', join(dir, 'wrong-order.img'), dev, '--next-tape', load));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/this is tape 2 of its set; load tape 1/);
    // A damaged record on cartridge 2: verify, restore and receive name the cartridge and the byte on it.
    const second = join(carts, 'cart2');
    const good = await readFile(second);
    const damaged = Buffer.from(good);
    damaged[65536 + 300_000] ^= 0x10;
    await writeFile(second, damaged);
    const onTape = /record \d+, which starts at stream byte \d+, (on cartridge 1 \(tape 1 of .*nst0\) at its byte \d+, ending on cartridge 2|on cartridge 2) \(tape 2 of .*nst0\)/;
    const badVerify = await session(inOrder, () => snapplane('verify', dev, '--next-tape', load));
    expect(badVerify.code).toBe(1);
    expect(badVerify.stdout).toMatch(/BAD .*nst0: record checksum mismatch/);
    expect(badVerify.stdout).toMatch(onTape);
    const badReceive = await session(inOrder, () => snapplane('receive', join(dir, 'bad-cart.img'), '-i', dev, '--next-tape', load));
    expect(badReceive.code).toBe(1);
    expect(badReceive.stderr).toMatch(onTape);
    await writeFile(second, good);
    // A cartridge cut short (the drive lost its end) fails verification with the reason.
    const last = join(carts, `cart${sent.tapes}`);
    const whole = await readFile(last);
    await writeFile(last, whole.subarray(0, whole.length - 65536));
    const cut = await session(inOrder, () => snapplane('verify', dev, '--next-tape', load));
    expect(cut.code).toBe(1);
    expect(cut.stdout + cut.stderr).toMatch(/tape \d+\): (no trailer before the end of the tape|holds \d+ tape blocks)/);
  }, 120_000);

  it('image plan calls the snapshots after its newest point not covered by the plan (not "not in a backup")', async () => {
    const r = await ok('image', 'plan', vol, '--policy', '0=7d,1=1d');
    expect(r.stdout).toMatch(/^not covered by this plan yet \(taken after its newest point; the next point carries them\): June2, June3, June4, June5$/m);
    expect(r.stdout).not.toMatch(/not yet in a backup/);
  });

  it('an lz4 backup smaller than its data says how much smaller, not a negative overhead', async () => {
    const r = await ok('backup', vol, 'June2 + June1', '--compress', 'lz4', '--to', `file:${join(dir, 'small.lz4')}`);
    expect(r.stdout).toMatch(/stream .* \(\d+ bytes, compressed \d+\.\d% smaller than the data\) to /);
    expect(r.stdout).not.toMatch(/overhead -/);
  });

  it('an incremental into an unrelated volume says it is a different volume (not "a copy of" its own uuid)', async () => {
    const big = join(dir, 'unrelated.img');
    await ok('volume', 'create', big, '--size', '64M');
    await ok('snap', 'create', big, 'June4');
    const own = (await json<{ uuid: string }>('volume', 'info', big)).uuid;
    const r = await snapplane('copy', vol, big, 'June5 - June4');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`'.*unrelated\\.img' is a different volume \\(${own}\\), not a copy of it`));
    expect(r.stderr).not.toMatch(/is a copy of volume/);
  });

  it('receive -i names the stream file that is damaged, cut short, not a stream, or missing; the volume is not made', async () => {
    const good = join(dir, 'june1.stream');
    await ok('send', vol, 'June1', '-o', good);
    const bytes = await readFile(good);
    const cut = join(dir, 'cut.stream');
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const flipped = join(dir, 'flipped.stream');
    const f = Buffer.from(bytes);
    f[f.length - 5000] ^= 0xff;
    await writeFile(flipped, f);
    const text = join(dir, 'notes.txt');
    await writeFile(text, 'not a stream\n');
    for (const [k, [file, why]] of ([[cut, /stream truncated/], [flipped, /checksum mismatch/], [text, /magic|preamble|truncated/]] as const).entries()) {
      const dst = join(dir, `from-bad${k}.img`);
      const r = await snapplane('receive', dst, '-i', file);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${file}: `);
      expect(r.stderr).toMatch(why);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      // A volume the receive made stays only to be resumed into, and then it says how.
      if (!/--resume \S+/.test(r.stderr)) await expect(stat(dst)).rejects.toThrow();
    }
    const missing = await snapplane('receive', join(dir, 'from-missing.img'), '-i', join(dir, 'nowhere.stream'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/stream file '.*nowhere\.stream' does not exist \(NOT_FOUND\)/);
  });

  it('counts read "1 file", "1 backup", "1 tape", "1 block"', async () => {
    const one = await ok('restore-file', '/day1/report1.txt', join(dir, 'one.txt'), '--from', join(dir, 'june3.level0'));
    expect(one.stdout).toMatch(/: 1 file, /);
    const plan = await ok('image', 'plan', vol, '--policy', '0=7d,1=1d');
    expect(plan.stdout).toMatch(/^level 0: 1 backup, /m);
    const tape = await ok('backup', vol, 'June1', '--to', `tape:${join(dir, 'one-tape')}`);
    expect(tape.stdout).toMatch(/, on 1 tape\n$/);
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
