/** Telling a volume's image (or a RAID-4 member image) from other files, before something would write over it. */
import { open, stat } from 'node:fs/promises';
import { BLOCK_SIZE } from '../common/units.js';
import { FSINFO_MAGIC } from '../fs/format.js';
import { RAID_MAGIC } from '../raid/member-label.js';

/** True when `path` is a file whose first or second block starts as a volume's fsinfo or a member label does. */
export async function isVolumeImage(path: string): Promise<boolean> {
  // A folder, or nothing there: not an image (what else is wrong with the path is said where it is written).
  if (!(await stat(path).then((st) => st.isFile(), () => false))) return false;
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return false;
  try {
    const b = Buffer.alloc(2 * BLOCK_SIZE);
    const bytesRead = await fh.read(b, 0, b.length, 0).then(
      (r) => r.bytesRead,
      () => 0,
    );
    // Either fsinfo copy (VBN 0 or 1) may be the one intact.
    for (const at of [0, BLOCK_SIZE]) {
      if (at + 8 > bytesRead) continue;
      const head = b.subarray(at, at + 8);
      if (head.equals(FSINFO_MAGIC) || head.equals(RAID_MAGIC)) return true;
    }
    return false;
  } finally {
    await fh.close();
  }
}
