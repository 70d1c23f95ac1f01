/** Whether two paths name the same file or folder, also through symbolic links and other spellings. */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';

/** True when `a` and `b` are the same file (same device and inode), or, where one does not exist, the same path. */
export async function sameFile(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a).catch(() => null), stat(b).catch(() => null)]);
  if (sa && sb) return sa.dev === sb.dev && sa.ino === sb.ino;
  return resolve(a) === resolve(b);
}
