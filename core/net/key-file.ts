/** Pre-shared key files: reading one, and saying when other users can read it. */
import { readFile, stat } from 'node:fs/promises';
import { SnapplaneError } from '../common/errors.js';
import { parseKey } from './wire.js';

/** Reads and checks a pre-shared key file (NOT_FOUND when it cannot be read, INVALID when it is too short). */
export async function readKeyFile(path: string): Promise<Buffer> {
  let text: Buffer;
  try {
    text = await readFile(path);
  } catch (e) {
    throw new SnapplaneError('NOT_FOUND', `cannot read key file '${path}': ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path });
  }
  return parseKey(text, path);
}

/**
 * A warning when users other than the owner may read or change a key file (as ssh says of a private key), else
 * null. Only a warning: the key still works, and a script that made it with the default umask keeps running.
 */
export async function keyFileExposure(path: string): Promise<string | null> {
  if (process.platform === 'win32') return null;
  const mode = await stat(path).then((s) => s.mode & 0o777, () => null);
  if (mode === null || (mode & 0o077) === 0) return null;
  const who = mode & 0o007 ? 'every user of this host' : 'its group';
  return `key file '${path}' is open to ${who} (mode ${mode.toString(8).padStart(4, '0')}): whoever reads it can pose as either end of a replication; \`chmod 600 ${path}\``;
}
