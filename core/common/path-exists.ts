import { access } from 'node:fs/promises';

/** Whether something (a file, folder or device) is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
