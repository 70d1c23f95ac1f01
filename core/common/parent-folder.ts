/** The folder a new volume, backup or tape folder goes into must exist already (no parents are made, as `mkdir` without -p). */
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { SnapplaneError } from './errors.js';

/** Refuses to make `path` (a `what`: volume, backup, tape folder…) when its parent is missing or not a folder, naming that parent. */
export async function requireParentFolder(path: string, what = 'volume'): Promise<void> {
  const parent = dirname(resolve(path));
  const kind = await stat(parent).then((s) => (s.isDirectory() ? 'folder' : 'other'), (e: NodeJS.ErrnoException) => (e.code === 'ENOTDIR' ? 'other' : 'missing'));
  if (kind === 'folder') return;
  const why = kind === 'missing' ? `the folder '${parent}' does not exist` : `'${parent}' is not a folder`;
  throw new SnapplaneError('NOT_FOUND', `cannot create ${what} '${path}': ${why}`, what === 'volume' ? { volume: path } : { path });
}
