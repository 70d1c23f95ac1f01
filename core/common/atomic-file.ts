/** Small state files written so a crash leaves the old or the new content, never a mix: temp file, fsync, rename. */
import { open, rename, rm } from 'node:fs/promises';

/** Replaces `path` with `text` atomically. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Removes `path` if it exists. */
export function removeFile(path: string): Promise<void> {
  return rm(path, { force: true });
}
