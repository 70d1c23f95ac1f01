/**
 * Things made under a temporary name and put in place only when whole (volume images, RAID-4 group folders, lock
 * files): a process killed meanwhile leaves its temporary behind, named with its pid so the next maker can tell an
 * abandoned one from one still being made.
 */
import { open, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { processAlive } from './process-alive.js';

/** The infix of a volume being created: `<path>.creating-<pid>`. */
const CREATING = '.creating-';

/** The temporary name this process makes `path` under before putting it in place. */
export function creatingName(path: string): string {
  return `${path}${CREATING}${process.pid}`;
}

/** Removes `<path>.creating-<pid>` files or folders whose process is gone (it died before putting them in place). */
export async function removeAbandonedCreations(path: string): Promise<void> {
  await removeDeadTemporaries(dirname(path), `${basename(path)}${CREATING}`, '');
}

/** Removes entries `<dir>/<prefix><pid><suffix>` whose process is gone; this process's own and live ones stay. */
export async function removeDeadTemporaries(dir: string, prefix: string, suffix: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names) {
    if (!n.startsWith(prefix) || !n.endsWith(suffix)) continue;
    const pid = Number(n.slice(prefix.length, n.length - suffix.length));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || processAlive(pid)) continue;
    await rm(join(dir, n), { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Makes a new directory entry in `folder` durable. */
export async function syncFolder(folder: string): Promise<void> {
  const fh = await open(folder, 'r').catch(() => null);
  if (!fh) return;
  try {
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on a folder; the entry is then as durable as they make it.
  } finally {
    await fh.close();
  }
}
