/**
 * Resume points made while a receive runs (a flush in the background on an image file, then the token): a
 * `snapplane receive` killed mid-stream leaves its destination at its base and a token at a point that had
 * landed; sending from that token finishes the copy, which then equals the source.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapplaneService } from '../../core/service/index.js';
import { pattern } from '../helpers/model.js';

const BIN = join(process.cwd(), 'bin', 'snapplane.js');
let dir: string;
let s: SnapplaneService;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-point-'));
  s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
});
afterAll(async () => {
  await s.closeAll();
  await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('resume points during a receive', () => {
  it('a receiver killed mid-stream keeps its base and a token that resumes to an exact copy', async () => {
    const src = join(dir, 'src.img');
    const dst = join(dir, 'dst.img');
    await s.createVolume(src, 128 * 2 ** 20);
    await mkdir(join(dir, 'h'));
    for (let i = 0; i < 12; i++) await writeFile(join(dir, 'h', `f${i}.bin`), pattern(2 * 2 ** 20, i));
    await s.put(src, join(dir, 'h'), '/data');
    await s.snapCreate(src, 'base');
    const parts: Buffer[] = [];
    for await (const b of (await s.sendStream(src, 'base')).stream) parts.push(Buffer.from(b));
    const whole = Buffer.concat(parts);
    await s.closeAll();

    const child = spawn(process.execPath, [BIN, 'receive', dst, '-i', '-'], { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, SNAPPLANE_RESUME_POINT_MS: '0' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Killed below with stream bytes still queued for it: their write fails EPIPE, which is expected here (CI at
    // 7516fd1 failed on it as an uncaught error, under load).
    child.stdin.on('error', () => undefined);
    const exited = new Promise<number | null>((r) => child.once('exit', (code, signal) => r(signal ? null : code)));
    // Three quarters of the stream, in 256 KiB pieces, then nothing more: the receiver waits for the rest.
    const cut = Math.floor(whole.length * 0.75);
    for (let at = 0; at < cut; at += 256 * 1024) {
      child.stdin.write(whole.subarray(at, Math.min(cut, at + 256 * 1024)));
      await sleep(5);
    }
    // A resume point lands once its background flush is done: wait for the token, then kill the receiver.
    let token: string | null = null;
    for (let i = 0; i < 200 && !token; i++) {
      token = await s.receiveToken(dst).catch(() => null);
      if (!token) await sleep(50);
    }
    expect(token, stderr).toMatch(/^[0-9a-f]{32}-[0-9a-f]+$/);
    await sleep(300); // let later points land too
    child.kill('SIGKILL');
    expect(await exited).toBeNull();

    token = await s.receiveToken(dst);
    const [streamId, from] = token!.split('-');
    const fromVbn = parseInt(from, 16);
    expect(fromVbn).toBeGreaterThan(0);
    expect(await s.snapList({ volume: dst })).toEqual([]); // still at its base: the new, empty volume
    expect((await s.fsck(dst)).clean).toBe(true);

    const resumed = await s.sendStream(src, 'base', { resume: { streamId, fromVbn } });
    let resent = 0;
    const report = await s.receive(dst, (async function* () {
      for await (const b of resumed.stream) {
        resent += b.length;
        yield b;
      }
    })());
    expect(report.resumedFromVbn).toBe(fromVbn);
    expect(resent).toBeLessThan(whole.length * 0.75);
    expect((await s.fsck(dst)).clean).toBe(true);
    await s.get({ volume: dst }, '/data', join(dir, 'back'));
    for (let i = 0; i < 12; i++) expect((await readFile(join(dir, 'back', `f${i}.bin`))).equals(pattern(2 * 2 ** 20, i))).toBe(true);
    expect(await s.receiveToken(dst)).toBeNull();
  }, 120_000);
});
