/**
 * Which names a new volume may have: none that reads as another volume's sidecar (`v.mirror.json` would be
 * overwritten by v's mirror marker, and break v when read as one). Served names are also one plain component
 * under the server's root.
 */
import { basename } from 'node:path';
import { SnapplaneError } from '../common/errors.js';
import { SIDECAR_ENDINGS_TEXT, sidecarClash } from '../fs/sidecar.js';
import { readReplacement } from '../transfer/replacement.js';

/** Why a volume name reads as a sidecar of `owner`, for an INVALID message. */
function clashMessage(shown: string, clash: { owner: string; ending: string }): string {
  return `bad volume name '${shown}': it ends in '${clash.ending}', which reads as a file volume '${basename(clash.owner)}' keeps beside it (names ending in ${SIDECAR_ENDINGS_TEXT} are taken by volumes' bookkeeping); choose another name`;
}

/** Refuses a volume name a remote may use under a server's root: one plain component, no sidecar ending. */
export function checkServedName(name: unknown): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name) || name.includes('..')) {
    throw new SnapplaneError('INVALID', `bad volume name ${JSON.stringify(name)}: one name under the server's root (letters, digits, '.', '_', '-')`);
  }
  // Where a full resync receives a mirror's copy (core/transfer/replacement.ts): not a volume of its own.
  if (/\.replacement$/i.test(name)) throw new SnapplaneError('INVALID', `bad volume name ${JSON.stringify(name)}: names ending in '.replacement' are where full resyncs receive their copies`);
  const clash = sidecarClash(name);
  if (clash) throw new SnapplaneError('INVALID', clashMessage(name, clash));
  return name;
}

/**
 * Refuses to create a volume at `path` whose name reads as another volume's sidecar. The one sidecar-named volume
 * made on purpose is a full resync's copy (`<mirror>.replacement`), once its record is written.
 */
export async function checkNewVolumePath(path: string): Promise<void> {
  const clash = sidecarClash(path);
  if (clash && !(clash.ending.toLowerCase() === '.replacement' && (await readReplacement(clash.owner)))) {
    throw new SnapplaneError('INVALID', clashMessage(path, clash), { volume: path });
  }
}

