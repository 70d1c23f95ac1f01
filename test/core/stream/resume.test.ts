import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapplaneService, SnapplaneError } from '../../../core/service/index.js';
import { pattern } from '../../helpers/model.js';
import { PREAMBLE_SIZE, RECORD_HEADER_SIZE, RecordType, decodeRecordHeader } from '../../../core/stream/format.js';

let dir: string;
let s: SnapplaneService;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-resume-'));
  s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
});
afterAll(async () => {
  await s.closeAll();
  await rm(dir, { recursive: true, force: true });
});

/** Passes the stream through until `limit` bytes, then fails like a dropped connection. */
async function* dropAfter(src: AsyncIterable<Buffer>, limit: number): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const b of src) {
    if (n + b.length > limit) {
      yield b.subarray(0, limit - n);
      throw new Error('connection reset by peer');
    }
    n += b.length;
    yield b;
  }
}

async function hostFiles(at: string, n: number, size: number): Promise<void> {
  await mkdir(at, { recursive: true });
  for (let i = 0; i < n; i++) await writeFile(join(at, `f${i}.bin`), pattern(size, i));
}

async function total(src: AsyncIterable<Buffer>): Promise<number> {
  let n = 0;
  for await (const b of src) n += b.length;
  return n;
}

describe('resumable receive', () => {
  it('a dropped stream leaves a token; sending from it finishes without resending what landed', async () => {
    const src = join(dir, 'src.img');
    const dst = join(dir, 'dst.img');
    await s.createVolume(src, 256 * 2 ** 20);
    await hostFiles(join(dir, 'h1'), 12, 2 * 2 ** 20);
    await s.put(src, join(dir, 'h1'), '/data');
    await s.snapCreate(src, 'base');
    const whole = await total((await s.sendStream(src, 'base')).stream);

    // Drop the connection two thirds of the way through.
    const first = await s.sendStream(src, 'base');
    const err = await s.receive(dst, dropAfter(first.stream, Math.floor((whole * 2) / 3))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SnapplaneError);
    expect((err as SnapplaneError).message).toMatch(/resume with/);
    const token = await s.receiveToken(dst);
    expect(token).toMatch(/^[0-9a-f]{32}-[0-9a-f]+$/);
    expect(await s.snapList({ volume: dst })).toEqual([]); // still at its base (the new, empty volume)

    const [streamId, from] = token!.split('-');
    const resumed = await s.sendStream(src, 'base', { resume: { streamId, fromVbn: parseInt(from, 16) } });
    const parts: Buffer[] = [];
    const report = await s.receive(dst, (async function* () {
      for await (const b of resumed.stream) {
        parts.push(b);
        yield b;
      }
    })());
    const resent = parts.reduce((n, b) => n + b.length, 0);
    expect(report.resumedFromVbn).toBe(parseInt(from, 16));
    expect(resent).toBeLessThan(whole / 2); // about a third, plus headers and planes
    expect((await s.fsck(dst)).clean).toBe(true);
    await s.get({ volume: dst }, '/data', join(dir, 'back'));
    for (let i = 0; i < 12; i++) expect((await readFile(join(dir, 'back', `f${i}.bin`))).equals(pattern(2 * 2 ** 20, i))).toBe(true);
    expect(await s.receiveToken(dst)).toBeNull();
  }, 120_000);

  it('a fresh stream that stops before its first block drops an older interrupted receive, whose spool it empties', async () => {
    const src = join(dir, 'fresh-src.img');
    const dst = join(dir, 'fresh-dst.img');
    await s.createVolume(src, 64 * 2 ** 20);
    await hostFiles(join(dir, 'h-fresh'), 4, 2 ** 20);
    await s.put(src, join(dir, 'h-fresh'), '/data');
    await s.snapCreate(src, 'base');
    await s.receive(dst, (await s.sendStream(src, 'base')).stream);
    await s.closeAll();
    // Both sides change after the base; the destination's changes sit where the incremental's blocks go, so a forced
    // receive holds those blocks in the spool until the stream has verified.
    await writeFile(join(dir, 'local.bin'), pattern(6 * 2 ** 20, 50));
    await s.put(dst, join(dir, 'local.bin'), '/local.bin');
    await writeFile(join(dir, 'more.bin'), pattern(6 * 2 ** 20, 51));
    await s.put(src, join(dir, 'more.bin'), '/more.bin');
    await s.snapCreate(src, 'next');
    await s.receive(dst, dropAfter((await s.sendStream(src, 'next - base')).stream, 4 * 2 ** 20), { force: true }).catch(() => undefined);
    const old = await s.receiveToken(dst);
    expect(old).not.toBeNull();
    expect((await readFile(`${dst}.receive-token.spool`)).length).toBeGreaterThan(100 * 4096);
    // The same image again from the start, cut inside its first block record: the spool was opened (emptied) for it
    // and nothing of it landed, so it saves no token of its own.
    const bytes: Buffer[] = [];
    for await (const b of (await s.sendStream(src, 'next - base')).stream) bytes.push(Buffer.from(b));
    const all = Buffer.concat(bytes);
    let at = PREAMBLE_SIZE;
    for (;;) {
      const h = decodeRecordHeader(all.subarray(at, at + RECORD_HEADER_SIZE));
      if (h.type === RecordType.blocks) break;
      at += RECORD_HEADER_SIZE + h.payloadLength;
    }
    await expect(s.receive(dst, dropAfter((async function* () { yield all; })(), at + RECORD_HEADER_SIZE + 100), { force: true })).rejects.toThrow(/reset/);
    // Before, the older token stayed with the emptied spool: resuming it failed "held blocks never arrived", and kept
    // failing so (the token stayed). Now it is gone, and a resume of it is refused as unknown.
    expect(await s.receiveToken(dst)).toBeNull();
    const [streamId, from] = old!.split('-');
    const resumed = await s.sendStream(src, 'next - base', { resume: { streamId, fromVbn: parseInt(from, 16) } });
    await expect(s.receive(dst, resumed.stream, { force: true })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('no interrupted receive of stream') });
    // The whole stream again lands, and the destination equals the source's snapshot.
    await s.receive(dst, (await s.sendStream(src, 'next - base')).stream, { force: true });
    expect((await s.fsck(dst)).clean).toBe(true);
    expect((await s.ls({ volume: dst }, '/')).map((e) => e.name).sort()).toEqual(['data', 'more.bin']);
    await s.get({ volume: dst }, '/more.bin', join(dir, 'more-back.bin'));
    expect((await readFile(join(dir, 'more-back.bin'))).equals(pattern(6 * 2 ** 20, 51))).toBe(true);
  }, 120_000);

  it('a token is refused once the destination changed, and a wrong token is refused', async () => {
    const src = join(dir, 'src2.img');
    const dst = join(dir, 'dst2.img');
    await s.createVolume(src, 64 * 2 ** 20);
    await hostFiles(join(dir, 'h2'), 4, 3 * 2 ** 20);
    await s.put(src, join(dir, 'h2'), '/data');
    await s.snapCreate(src, 'one');
    const whole = await total((await s.sendStream(src, 'one')).stream);
    await s.receive(dst, dropAfter((await s.sendStream(src, 'one')).stream, Math.floor(whole / 2))).catch(() => undefined);
    const token = (await s.receiveToken(dst))!;
    expect(token).not.toBeNull();
    await s.mkdir(dst, '/local-change');
    await s.sync(dst);
    const [streamId, from] = token.split('-');
    const err = await s.receive(dst, (await s.sendStream(src, 'one', { resume: { streamId, fromVbn: parseInt(from, 16) } })).stream).catch((e: unknown) => e);
    expect(String((err as Error).message)).toMatch(/changed after the interrupted receive|already has files/);
    const err2 = await s.receive(join(dir, 'fresh.img'), (await s.sendStream(src, 'one', { resume: { streamId: 'ab'.repeat(16), fromVbn: 100 } })).stream).catch((e: unknown) => e);
    expect(String((err2 as Error).message)).toMatch(/no interrupted receive/);
  }, 120_000);
});

describe('restore one file out of a backup chain', () => {
  it('reads only the metadata and that file\'s blocks, at the newest or a chosen snapshot', async () => {
    const vol = join(dir, 'files.img');
    await s.createVolume(vol, 128 * 2 ** 20);
    await hostFiles(join(dir, 'h3'), 8, 4 * 2 ** 20);
    await s.put(vol, join(dir, 'h3'), '/data');
    await s.snapCreate(vol, 'mon');
    await writeFile(join(dir, 'h3', 'f2.bin'), pattern(100_000, 222));
    await s.put(vol, join(dir, 'h3', 'f2.bin'), '/data/f2.bin');
    await s.snapCreate(vol, 'tue');
    const l0 = join(dir, 'files.level0');
    const l1 = join(dir, 'files.level1');
    await s.sendToFile(vol, 'mon', l0, { codec: 'lz4' });
    await s.sendToFile(vol, 'tue - mon', l1);
    const newest = await s.restoreFile([l0, l1], '/data/f2.bin', join(dir, 'f2-tue.bin'));
    expect((await readFile(join(dir, 'f2-tue.bin'))).equals(pattern(100_000, 222))).toBe(true);
    expect(newest.backupBytesRead).toBeLessThan(3 * 2 ** 20); // of about 32 MiB of backups
    const older = await s.restoreFile([l0, l1], '/data/f5.bin', join(dir, 'f5-mon.bin'), { snapshot: 'mon' });
    expect((await readFile(join(dir, 'f5-mon.bin'))).equals(pattern(4 * 2 ** 20, 5))).toBe(true);
    expect(older.backupBytesRead).toBeLessThan(8 * 2 ** 20);
    await expect(s.restoreFile([l1], '/data/f2.bin', join(dir, 'x'))).rejects.toThrow(/starts with a full/);
    await expect(s.restoreFile([l0, l1], '/data/nope', join(dir, 'x'))).rejects.toThrow(/no such file/);
  }, 60_000);
});

describe('transfers are jobs', () => {
  it('a cancelled copy stays at its base, keeps a resume token, and the history says so', async () => {
    const src = join(dir, 'jobsrc.img');
    const dst = join(dir, 'jobdst.img');
    await s.createVolume(src, 128 * 2 ** 20);
    await hostFiles(join(dir, 'h4'), 6, 4 * 2 ** 20);
    await s.put(src, join(dir, 'h4'), '/data');
    await s.snapCreate(src, 'one');
    let cancelled = 0;
    const err = await s
      .copy(src, dst, 'one', {}, (p) => {
        if (p.phase === 'receive' && p.done > 8 * 2 ** 20 && cancelled === 0) cancelled = s.cancelJobs();
      })
      .catch((e: unknown) => e);
    expect(cancelled).toBe(1);
    expect((err as SnapplaneError).code).toBe('CANCELLED');
    expect(await s.snapList({ volume: dst })).toEqual([]);
    const history = await s.jobHistory();
    const job = history[history.length - 1];
    expect(job.kind).toBe('copy');
    expect(job.outcome).toBe('cancelled');
    expect(job.kind !== 'schedule-run' && job.resumeToken).toMatch(/^[0-9a-f]{32}-/);
    expect(job.kind !== 'schedule-run' && job.phases).toContain('receive');
    // Finishing it from the token is recorded as a second, successful job.
    const [streamId, from] = (await s.receiveToken(dst))!.split('-');
    await s.copy(src, dst, 'one', { resume: { streamId, fromVbn: parseInt(from, 16) } });
    const last = (await s.jobHistory()).at(-1)!;
    expect([last.kind, last.outcome]).toEqual(['copy', 'ok']);
    expect((await s.fsck(dst)).clean).toBe(true);
  }, 60_000);
});
