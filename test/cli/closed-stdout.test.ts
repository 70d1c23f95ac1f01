/**
 * Standard output closed by its reader before the command writes (`snapplane … | head`): a report is dropped
 * quietly and the command's work still lands; a stream sent there fails with one line. Standard error closed under
 * a long-running command (serve's log): the log is dropped, the command goes on.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { json, ok } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { makeKey } from '../helpers/replication.js';

const BIN = join(process.cwd(), 'bin', 'snapplane.js');
const temp = useTempDir('epipe');

/** Runs `snapplane ...args` with its standard output's reader gone before it writes. */
function withClosedStdout(...args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('a closed standard output', () => {
  it('drops the report quietly, and the work lands; a stream sent there fails with one line', async () => {
    const vol = join(temp(), 'v.img');
    await ok('volume', 'create', vol, '--size', '16M');
    const host = join(temp(), 'f.bin');
    await writeFile(host, Buffer.alloc(3 << 20, 9));
    // The put prints its summary after writing: the write must still be committed and the volume closed cleanly.
    expect(await withClosedStdout('put', vol, host, '/f.bin')).toEqual({ code: 0, stderr: '' });
    expect(await withClosedStdout('snap', 'create', vol, 's1')).toEqual({ code: 0, stderr: '' });
    expect(await withClosedStdout('ls', vol, '/')).toEqual({ code: 0, stderr: '' });
    expect((await json<{ name: string; size: number }[]>('ls', vol, '/')).map((e) => [e.name, e.size])).toEqual([['f.bin', 3 << 20]]);
    expect((await json<{ issues: unknown[] }>('fsck', vol)).issues).toEqual([]);
    const sent = await withClosedStdout('send', vol, 's1');
    expect(sent.code).toBe(1);
    expect(sent.stderr).toMatch(/^snapplane: cannot write the stream to standard output: .*EPIPE.*\n$/);
  });

  it('a closed standard error (the log reader gone) does not take serve down: replications go on', async () => {
    const root = join(temp(), 'root');
    await mkdir(root);
    const key = await makeKey(temp(), 'key');
    const src = join(temp(), 'src.img');
    await ok('volume', 'create', src, '--size', '16M');
    await ok('snap', 'create', src, 'M1');
    await ok('master', 'mark', src, 'M1');
    const serve = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--key-file', key, '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        serve.stdout.on('data', (d: Buffer) => {
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(d.toString());
          if (m) resolve(Number(m[1]));
        });
        serve.on('exit', (code) => reject(new Error(`serve exited ${code}`)));
      });
      serve.stderr.destroy();
      // Each connection is logged to the closed standard error.
      for (const round of [1, 2]) {
        if (round === 2) {
          await ok('snap', 'create', src, 'M2');
          await ok('master', 'mark', src, 'M2');
        }
        const r = await json<{ kind: string }>('replicate', src, `127.0.0.1:${port}/r`, '--key-file', key);
        expect(r.kind).toBe(round === 1 ? 'full' : 'incremental');
      }
      expect(serve.exitCode).toBeNull();
    } finally {
      serve.kill('SIGINT');
    }
  });
});
