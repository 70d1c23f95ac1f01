/**
 * Puts a fully written temporary file at `path` without replacing anything there: a hard link, which fails with
 * EEXIST if `path` exists. File systems without hard links (FAT, some network mounts) get a rename after a check
 * that `path` is free; two writers racing there could both pass the check, so only there is the guarantee weaker.
 */
import { access, link, rename } from 'node:fs/promises';

const NO_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);

/** Links `tmp` to `path` (the caller removes `tmp`); an existing `path` throws an error with code EEXIST. */
export async function linkIntoPlace(tmp: string, path: string): Promise<void> {
  try {
    await link(tmp, path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (!NO_LINKS.has(code)) throw e;
    const taken = await access(path).then(
      () => true,
      () => false,
    );
    if (taken) throw Object.assign(new Error(`'${path}' exists`), { code: 'EEXIST' });
    await rename(tmp, path);
  }
}
