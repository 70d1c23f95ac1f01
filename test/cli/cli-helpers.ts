/** Runs the built `snapplane` CLI as a user would. */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SnapshotInfo } from '../../core/api/index.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const BIN = join(process.cwd(), 'bin', 'snapplane.js');

/** Runs `snapplane ...args` to completion. */
export function snapplane(...args: string[]): Promise<CliResult> {
  return snapplaneIn(process.cwd(), ...args);
}

/** The same, run from folder `cwd` (for relative paths, as a user types them). */
export function snapplaneIn(cwd: string, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Runs a command that must succeed and returns its stdout parsed as JSON. */
export async function json<T>(...args: string[]): Promise<T> {
  const r = await snapplane(...args, '--json');
  if (r.code !== 0) throw new Error(`snapplane ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Runs a command that must succeed. */
export async function ok(...args: string[]): Promise<CliResult> {
  const r = await snapplane(...args);
  if (r.code !== 0) throw new Error(`snapplane ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}

/** The names of a volume's snapshots, oldest first (`snap list`). */
export async function snapshotNames(vol: string): Promise<string[]> {
  return (await json<SnapshotInfo[]>('snap', 'list', vol)).map((s) => s.name);
}

/** Copies file `from` to `to` with the byte at `offset` flipped (a damaged backup or stream). */
export async function flipByte(from: string, to: string, offset: number): Promise<void> {
  const b = await readFile(from);
  b[offset] ^= 0xa5;
  await writeFile(to, b);
}
