/**
 * `mkdir -p` that ends: Node's recursive mkdir spins for ever where a folder exists but its file system makes no
 * entries in it (/proc, /sys answer ENOENT for the child, and Node retries the parent, which exists).
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

async function isFolder(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

/** Makes `path` and any missing parents; an existing folder is fine, anything else there fails as mkdir does. */
export async function makeFolders(path: string): Promise<void> {
  try {
    await mkdir(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && (await isFolder(path))) return;
    // The parent is there: this file system makes no folder here (ENOENT stands).
    if (code !== 'ENOENT' || dirname(path) === path || (await isFolder(dirname(path)))) throw e;
    await makeFolders(dirname(path));
    await mkdir(path).catch(async (again: unknown) => {
      if (!((again as NodeJS.ErrnoException).code === 'EEXIST' && (await isFolder(path)))) throw again;
    });
  }
}
