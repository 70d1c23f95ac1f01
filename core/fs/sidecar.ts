/** Sidecar files of a volume (lock, receive token, mirror marker, known destinations): beside an image, inside a RAID group's folder. */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** The path of sidecar `name` of the volume at `volumePath` (`<image>.<name>`, or `<folder>/<name>`). */
export async function sidecarPath(volumePath: string, name: string): Promise<string> {
  try {
    if ((await stat(volumePath)).isDirectory()) return join(volumePath, name);
  } catch {
    // a volume that does not exist yet: its sidecars would sit beside it
  }
  return `${volumePath}.${name}`;
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
