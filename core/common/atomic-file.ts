/** Small state files written so a crash leaves the old or the new content, never a mix: temp file, fsync, rename. */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { SnapplaneError } from './errors.js';
import { removeDeadTemporaries } from './half-made.js';

/** Replaces `path` with `text` atomically. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  // A writer killed between writing its temporary and renaming it left `<path>.<pid>.tmp`: the next one removes it.
  await removeDeadTemporaries(dirname(path), `${basename(path)}.`, '.tmp');
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Removes `path` if it exists, and what dead writers of it left (their temporaries). */
export async function removeFile(path: string): Promise<void> {
  await removeDeadTemporaries(dirname(path), `${basename(path)}.`, '.tmp');
  await rm(path, { force: true });
}

/** The JSON in `path`, or null when there is no such file; a file that does not parse is BAD_FORMAT naming it. */
export async function readJsonFile<T>(path: string): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return null;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new SnapplaneError('BAD_FORMAT', `'${path}' is damaged (${(e as Error).message})`, { path });
  }
}
