/** Sidecar files of a volume (lock, receive token, mirror marker, known destinations): beside an image, inside a RAID group's folder. */
import { stat } from 'node:fs/promises';
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
