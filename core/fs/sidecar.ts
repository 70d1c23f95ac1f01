/** Sidecar files of a volume (lock, receive token, mirror marker, known destinations): beside an image, inside a RAID group's folder. */
import { rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
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

/** Deletes a volume: its RAID group folder with everything in it, or its image and the sidecars beside it. */
export async function deleteVolumeFiles(volumePath: string): Promise<void> {
  if ((await stat(volumePath)).isDirectory()) {
    await rm(volumePath, { recursive: true, force: true });
    return;
  }
  // The image last: a crash meanwhile leaves a volume without its sidecars, which opens as a plain volume.
  for (const name of SIDECARS) await rm(`${volumePath}.${name}`, { force: true });
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
