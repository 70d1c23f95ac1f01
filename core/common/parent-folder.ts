/** The folder a new volume, backup or tape folder goes into must exist already (no parents are made, as `mkdir` without -p). */
import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { SnapplaneError } from './errors.js';

/** Refuses to make `path` (a `what`: volume, backup, tape folder…) when its parent is missing or not a folder, naming that parent. */
export async function requireParentFolder(path: string, what = 'volume'): Promise<void> {
  const parent = dirname(resolve(path));
  const kind = await stat(parent).then((s) => (s.isDirectory() ? 'folder' : 'other'), (e: NodeJS.ErrnoException) => (e.code === 'ENOTDIR' ? 'other' : 'missing'));
  if (kind === 'folder') return;
  const why = kind === 'missing' ? `the folder '${parent}' does not exist` : `'${parent}' is not a folder`;
  throw new SnapplaneError('NOT_FOUND', `cannot create ${what} '${path}': ${why}`, what === 'volume' ? { volume: path } : { path });
}

/**
 * Refuses a file to be written at `path` (a `what`: backup, stream file…) when `path` names a folder or ends in a
 * separator, before any work: the file is written under a temporary name and renamed at the end, which a folder
 * there would fail only after the whole transfer. Its parent must exist too.
 */
export async function requireFilePath(path: string, what: string): Promise<void> {
  const isFolder = /[/\\]$/.test(path) || (await stat(path).then((s) => s.isDirectory(), () => false));
  if (isFolder) throw new SnapplaneError('INVALID', `'${path}' is a folder; name the ${what} file to write (for example '${join(path, `${what}.snap`)}')`, { path });
  await requireParentFolder(path, what);
}
