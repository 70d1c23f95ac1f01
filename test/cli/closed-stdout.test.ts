/**
 * Standard output closed by its reader before the command writes (`snapplane … | head`): a report is dropped
 * quietly and the command's work still lands; a stream sent there fails with one line.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { json, ok } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';

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
});
