/**
 * Host room for sparse images: a write of new blocks into an image takes host space only where the image has
 * none yet, so what it takes at least is its size less all the image holds already. Checked before a transfer
 * starts, so a host that cannot hold it is told at once rather than after hours, with nothing written.
 */
import { readdir, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Host file systems that may compress what they store (btrfs, ZFS, bcachefs): no lower bound holds there. */
const COMPRESSING = new Set([0x9123683e, 0x2fc12fc1, 0xca451a4e]);

export interface HostSpaceShortfall {
  /** Host bytes the write takes at least. */
  need: number;
  /** Host bytes free for this process. */
  free: number;
  /** The folder whose file system is short. */
  folder: string;
}

/** Host bytes the files of a volume (an image, or every file of a RAID group's folder) take now; 0 when missing. */
async function allocatedBytes(volume: string): Promise<{ bytes: number; folder: string | null }> {
  const st = await stat(volume).catch(() => null);
  if (!st) return { bytes: 0, folder: null };
  if (!st.isDirectory()) return { bytes: st.blocks * 512, folder: dirname(volume) };
  let bytes = 0;
  for (const name of await readdir(volume)) bytes += ((await stat(join(volume, name)).catch(() => null))?.blocks ?? 0) * 512;
  return { bytes, folder: volume };
}

/**
 * Whether writing `bytes` of blocks into the volume at `volume` (existing or not) cannot fit on its host file
 * system: the shortfall, or null when it may fit or the host cannot tell (a compressing file system).
 */
export async function hostSpaceShortfall(volume: string, bytes: number): Promise<HostSpaceShortfall | null> {
  const held = await allocatedBytes(volume);
  const folder = held.folder ?? dirname(volume);
  const fs = await statfs(folder).catch(() => null);
  if (!fs || COMPRESSING.has(fs.type)) return null;
  // root may use the blocks the file system reserves for it.
  const free = (process.getuid?.() === 0 ? fs.bfree : fs.bavail) * fs.bsize;
  const need = Math.max(0, bytes - held.bytes);
  return need > free ? { need, free, folder } : null;
}
