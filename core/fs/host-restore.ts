/**
 * Restoring a file or folder out of a volume (or snapshot) into a host folder the user chose, writing nothing
 * outside that folder. The target is `folder/name` with `name` one path component; it must not exist (a symlink
 * already there is refused, never followed). Every file is created with O_EXCL|O_NOFOLLOW and every folder with a
 * plain mkdir (which fails on anything already there), so a name that collides with an earlier one (a case or
 * Unicode-normalization alias on the host's file system, a symlink made earlier in the same restore) stops the
 * restore instead of writing through it. Each folder's real path is checked to lie inside the chosen folder before
 * anything is written into it. Set-id bits and owners are not restored.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, realpath, symlink, unlink, utimes } from 'node:fs/promises';
import { isAbsolute, join, sep } from 'node:path';
import type { CopySummary } from '../api/types.js';
import { SnapplaneError, asIoError } from '../common/errors.js';
import { writeSparse } from '../common/write-fully.js';
import { MAX_NAME } from './format.js';
import type { Volume } from './volume.js';

/** Checks a name the restore will create in a host folder: one component, no NUL, not `.` or `..`, ≤ 255 bytes. */
export function checkHostName(name: string, what: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\\') || name.includes('\0')) {
    throw new SnapplaneError('OUTSIDE', `${what} '${name.replace(/\0/g, '\\0')}' is not a single file name inside the chosen folder`, { path: name });
  }
  if (Buffer.byteLength(name, 'utf8') > Math.min(255, MAX_NAME)) {
    throw new SnapplaneError('INVALID', `${what} is longer than 255 bytes`, { path: name.slice(0, 40) });
  }
  // Control characters and Unicode bidirectional overrides would make the name lie about itself on screen.
  if (/[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]/u.test(name)) {
    throw new SnapplaneError('INVALID', `${what} contains control or direction-override characters`, { path: name.slice(0, 40) });
  }
}

/** The chosen folder's real path: it must be an absolute path to an existing folder. */
export async function chosenFolder(folder: string): Promise<string> {
  if (!isAbsolute(folder) || folder.includes('\0')) throw new SnapplaneError('OUTSIDE', `the restore folder must be an absolute path (got '${folder.replace(/\0/g, '\\0')}')`, { path: folder });
  let real: string;
  try {
    real = await realpath(folder);
  } catch (e) {
    throw new SnapplaneError('NOT_FOUND', `restore folder '${folder}' does not exist`, { path: folder, cause: e });
  }
  if (!(await lstat(real)).isDirectory()) throw new SnapplaneError('NOT_DIR', `restore folder '${folder}' is not a folder`, { path: folder });
  return real;
}

function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

async function mustNotExist(path: string): Promise<void> {
  try {
    await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw asIoError(e, `cannot check '${path}'`, { path });
  }
  throw new SnapplaneError('EXISTS', `'${path}' already exists in the restore folder; choose another name (nothing is overwritten)`, { path });
}

/** Copies `volPath` of `volume` to `folder/name`, confined to `folder`. */
export async function restoreIntoFolder(volume: Volume, volPath: string, folder: string, name: string | undefined): Promise<CopySummary & { target: string }> {
  const root = await chosenFolder(folder);
  const top = await volume.stat(volPath);
  const targetName = name ?? (top.path === '/' ? 'root' : top.name);
  checkHostName(targetName, 'restore name');
  const target = join(root, targetName);
  if (!inside(root, target) || target === root) throw new SnapplaneError('OUTSIDE', `'${targetName}' would land outside '${root}'`, { path: targetName });
  await mustNotExist(target);
  const summary: CopySummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };

  const copy = async (src: string, dst: string, parentReal: string): Promise<void> => {
    const s = await volume.stat(src);
    const mtime = new Date(s.mtime);
    try {
      if (s.type === 'symlink') {
        // The link is created as it was; nothing is ever written through it.
        await symlink(s.target ?? '', dst);
        summary.symlinks++;
      } else if (s.type === 'file') {
        const fh = await open(dst, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, s.mode & 0o777);
        let whole = false;
        try {
          // Sparse where the file has blocks of zeros, as `get` writes it (a new file: O_EXCL).
          let at = 0;
          for await (const chunk of volume.readChunks(src, { reuse: true })) {
            await writeSparse(fh, chunk, at);
            at += chunk.length;
            summary.bytes += chunk.length;
          }
          await fh.truncate(at);
          await fh.chmod(s.mode & 0o777);
          await fh.utimes(mtime, mtime);
          whole = true;
        } catch (e) {
          if (e instanceof SnapplaneError) throw e;
          const err = asIoError(e, `cannot write '${dst}'`, { path: src });
          const done = summary.files + summary.symlinks > 0 ? `; the ${summary.files + summary.symlinks} file(s) restored before it are kept` : '';
          throw new SnapplaneError(err.code, `${err.message}; the part of it written was removed${done}`, { path: src, cause: e });
        } finally {
          await fh.close();
          // This restore made it (O_EXCL): a part of a file is not left under its name.
          if (!whole) await unlink(dst).catch(() => undefined);
        }
        summary.files++;
      } else {
        await mkdir(dst, 0o700);
        const real = await realpath(dst);
        if (!inside(root, real) || real === parentReal) throw new SnapplaneError('OUTSIDE', `folder '${dst}' resolves outside the restore folder`, { path: dst });
        summary.dirs++;
        for (const e of await volume.readdir(src)) {
          checkHostName(e.name, `name in '${src}'`);
          await copy(e.path, join(real, e.name), real);
        }
        const dh = await open(real, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
        try {
          await dh.chmod(s.mode & 0o777);
        } finally {
          await dh.close();
        }
        await utimes(real, mtime, mtime);
      }
    } catch (e) {
      if (e instanceof SnapplaneError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ELOOP') throw new SnapplaneError('EXISTS', `'${dst}' already exists (or is a symbolic link); the restore stopped without writing through it`, { path: src, cause: e });
      throw asIoError(e, `cannot write '${dst}'`, { path: src });
    }
  };
  await copy(top.path, target, root);
  return { ...summary, target };
}
