/**
 * Volume names: reading `<vol>@<snap>`, and which names a new volume may have: none that reads as another volume's
 * sidecar (`v.mirror.json` would be overwritten by v's mirror marker, and break v when read as one) and, given on a
 * command line, none that reads as a snapshot of an existing volume (`v.img@A`). Served names are also one plain
 * component under the server's root.
 */
import { stat } from 'node:fs/promises';
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
 * Refuses to create a volume at `path` whose name reads as another volume's sidecar, or (given as text on a command
 * line) as snapshot `<snap>` of existing volume `<vol>` (`<vol>@<snap>`), which reads would open instead. The one
 * sidecar-named volume made on purpose is a full resync's copy (`<mirror>.replacement`), once its record is written.
 */
export async function checkNewVolumePath(path: string): Promise<void> {
  const clash = sidecarClash(path);
  if (clash && !(clash.ending.toLowerCase() === '.replacement' && (await readReplacement(clash.owner)))) {
    throw new SnapplaneError('INVALID', clashMessage(path, clash), { volume: path });
  }
  const ref = parseVolumeRef(path);
  if (ref.snapshot !== undefined && (await exists(ref.volume))) {
    throw new SnapplaneError('INVALID', `bad volume name '${path}': it reads as snapshot '${ref.snapshot}' of volume '${ref.volume}'; choose a name without '@'`, { volume: path });
  }
}

/** A volume reference: a volume path, optionally at a snapshot (`vol@snap`, read-only). */
export interface VolumeRef {
  volume: string;
  snapshot?: string;
}

/** Splits `vol@snap` at the last '@' (a volume path may itself contain '@' before it); no file system look-up. */
export function parseVolumeRef(text: string): VolumeRef {
  const at = text.lastIndexOf('@');
  if (at > 0 && !text.slice(at + 1).includes('/') && at < text.length - 1) {
    return { volume: text.slice(0, at), snapshot: text.slice(at + 1) };
  }
  return { volume: text };
}

/**
 * What `<vol>` or `<vol>@<snap>` given on a command line names: the whole text when a volume (or anything) is there,
 * so a volume whose name holds '@' reads as itself; otherwise the volume before the last '@' at that snapshot.
 */
export async function resolveVolumeRef(text: string): Promise<VolumeRef> {
  return (await exists(text)) ? { volume: text } : parseVolumeRef(text);
}

/**
 * For a volume that does not exist at `path`: when the text reads as `<vol>@<snap>` of an existing volume, the
 * error to give instead of NOT_FOUND (writes: the snapshot is read-only; other commands: they take a volume).
 */
export async function snapshotGivenForVolume(path: string, write: boolean): Promise<SnapplaneError | null> {
  const ref = parseVolumeRef(path);
  if (ref.snapshot === undefined || !(await exists(ref.volume))) return null;
  const where = { volume: ref.volume, snapshot: ref.snapshot };
  if (write) return new SnapplaneError('READ_ONLY', `snapshot '${ref.snapshot}' of '${ref.volume}' is read-only; change the volume itself ('${ref.volume}'), or \`snap restore\` from the snapshot`, where);
  return new SnapplaneError('INVALID', `'${path}' names snapshot '${ref.snapshot}' of '${ref.volume}', and this command takes a whole volume: give '${ref.volume}'`, where);
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
