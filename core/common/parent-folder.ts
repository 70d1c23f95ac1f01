/** The folder a new volume goes into must exist already (no parents are made, as `mkdir` without -p). */
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { SnapplaneError } from './errors.js';

/** Refuses to make `path` when its parent is missing or is not a folder, naming that parent. */
export async function requireParentFolder(path: string): Promise<void> {
  const parent = dirname(resolve(path));
  const kind = await stat(parent).then((s) => (s.isDirectory() ? 'folder' : 'other'), (e: NodeJS.ErrnoException) => (e.code === 'ENOTDIR' ? 'other' : 'missing'));
  if (kind === 'folder') return;
  throw new SnapplaneError('NOT_FOUND', `cannot create volume '${path}': ${kind === 'missing' ? `the folder '${parent}' does not exist` : `'${parent}' is not a folder`}`, { volume: path });
}
