/** Sidecar files of a volume (lock, receive token, mirror marker, known destinations): beside an image, inside a RAID group's folder. */
import { rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { syncFolder } from '../common/half-made.js';

/** The path of sidecar `name` of the volume at `volumePath` (`<image>.<name>`, or `<folder>/<name>`). */
export async function sidecarPath(volumePath: string, name: string): Promise<string> {
  try {
    if ((await stat(volumePath)).isDirectory()) return join(volumePath, name);
  } catch {
    // a volume that does not exist yet: its sidecars would sit beside it
  }
  return `${volumePath}.${name}`;
}

/**
 * Where a full resync receives the copy that is to take a volume's place (core/transfer/replacement.ts decides
 * when; `replaceVolumeFiles` below makes the move).
 */
export function replacementOf(volume: string): string {
  return `${volume}.replacement`;
}

/** True when a copy waits beside `volume` to take its place. */
export async function replacementWaits(volume: string): Promise<boolean> {
  return stat(replacementOf(volume)).then(
    () => true,
    () => false,
  );
}

/** What sits beside an image as `<image>.<name>` (a RAID group keeps the same files inside its folder). */
const SIDECARS = ['lock', 'receive-token.json', 'receive-token.json.tmp', 'receive-token.spool', 'mirror.json', 'offline.json', 'destinations.json'];

/**
 * Files beside an image that exist only while a process does something: the known destinations' lock and the
 * takeover guards (core/fs/lock.ts), the sends in flight and their lock (core/fs/sending.ts). They go with the
 * volume and are never moved with it.
 */
const TRANSIENT = ['destinations.json.lock', 'lock.takeover', 'destinations.json.lock.takeover', 'sending.json', 'sending.json.lock', 'sending.json.lock.takeover'];

/**
 * Endings a volume's own name must not have: the name would read as a file another volume keeps beside it
 * (`<volume>.<sidecar>`, the full resync's `<volume>.replacement` and its record, and the temporaries that
 * writers and creators leave as `<name>.<pid>.tmp` and `<volume>.creating-<pid>`, which are deleted on sight).
 */
const RESERVED_ENDINGS = [...SIDECARS, ...TRANSIENT, 'replacement', 'replacement.json'];

/**
 * When `path`'s last component reads as a sidecar of another volume (`lim1.mirror.json`, `v2.receive-token.json`,
 * `m.replacement`), the volume that would own it and the ending; else null. Case is ignored, as some host file
 * systems ignore it.
 */
export function sidecarClash(path: string): { owner: string; ending: string } | null {
  const name = basename(path);
  const lower = name.toLowerCase();
  for (let dot = name.indexOf('.', 1); dot > 0; dot = name.indexOf('.', dot + 1)) {
    const ending = lower.slice(dot + 1);
    const bare = ending.replace(/\.\d+\.tmp$/, '');
    if (RESERVED_ENDINGS.includes(bare) || ending.startsWith('creating-')) return { owner: join(dirname(path), name.slice(0, dot)), ending: `.${name.slice(dot + 1)}` };
  }
  return null;
}

/** What the endings `sidecarClash` refuses are, for error messages. */
export const SIDECAR_ENDINGS_TEXT = `${RESERVED_ENDINGS.filter((e) => !e.endsWith('.tmp')).map((e) => `.${e}`).join(', ')} or .creating-…`;

/** Deletes a volume: its RAID group folder with everything in it, or its image and the sidecars beside it. */
export async function deleteVolumeFiles(volumePath: string): Promise<void> {
  if ((await stat(volumePath)).isDirectory()) {
    await rm(volumePath, { recursive: true, force: true });
    return;
  }
  // The image last: a crash meanwhile leaves a volume without its sidecars, which opens as a plain volume.
  for (const name of [...SIDECARS, ...TRANSIENT]) await rm(`${volumePath}.${name}`, { force: true });
  await rm(volumePath, { force: true });
}

/**
 * Puts the volume at `from` in place of the one at `to`, which is deleted first (all but its lock file: the caller
 * holds that lock and releases it after, so no writer opens either meanwhile). Sidecars move before the image, so
 * the image appears with its mirror marker beside it. Repeatable after a crash at any step: it finishes the move.
 */
export async function replaceVolumeFiles(to: string, from: string): Promise<void> {
  const fromIsGroup = await stat(from).then((st) => st.isDirectory(), () => null);
  if (fromIsGroup === null) return;
  const toIsGroup = await stat(to).then((st) => st.isDirectory(), () => null);
  if (toIsGroup) await rm(to, { recursive: true, force: true });
  else if (toIsGroup === false) {
    for (const name of SIDECARS) if (name !== 'lock') await rm(`${to}.${name}`, { force: true });
    await rm(to, { force: true });
  }
  if (!fromIsGroup) {
    for (const name of SIDECARS) {
      if (name === 'lock') await rm(`${from}.lock`, { force: true });
      else await renameIfThere(`${from}.${name}`, `${to}.${name}`);
    }
  }
  await rename(from, to);
  await syncFolder(dirname(to));
}

async function renameIfThere(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
