/** Copying between the host file system and a volume (put/get): files, folders and symbolic links with their metadata. */
import { chmod, lchown, lstat, lutimes, open, readdir, readlink, rename, stat, symlink, unlink, utimes, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { CopySummary, DirEntryInfo, ProgressEvent } from '../api/types.js';
import { SnapplaneError, asIoError, hostCreateError } from '../common/errors.js';
import { writeSparse } from '../common/write-fully.js';
import { makeFolders } from '../common/make-folders.js';
import { BLOCK_SIZE, formatBytes } from '../common/units.js';
import { indirectBlocksFor } from './file-tree.js';
import { normalizePath, validateName } from './namespace.js';
import type { FileMeta, Volume } from './volume.js';

type Progress = ((p: ProgressEvent) => void) | undefined;
/** Set when the copy is to stop (Ctrl-C in the CLI): it stops at the next chunk. */
type Signal = { cancelled: boolean } | undefined;

/**
 * The name a put writes a file under, in its target folder, until the file is complete and renamed over its target.
 * One left by a put that was killed is removed by the next put into that folder.
 */
export const PUT_TEMPORARY = /^\.snapplane-put-\d+-\d+\.tmp$/;
/** Counts temporaries (put and get) of this process, so two copies at once never share one. */
let temporaries = 0;
/** Temporaries of puts running in this process, which no sweep removes (`label NUL path`). */
const livePuts = new Set<string>();

function cancelled(): SnapplaneError {
  return new SnapplaneError('CANCELLED', 'interrupted');
}

/**
 * Reads a host file through one reused 1 MiB buffer. Each chunk is valid only until the next is requested,
 * which is how the volume consumes it (it copies blocks out before asking for more); reusing the buffer avoids
 * paging in fresh memory for every chunk.
 */
async function* readReused(fh: FileHandle, onBytes: (n: number) => void, signal: Signal): AsyncIterable<Buffer> {
  const buf = Buffer.allocUnsafeSlow(1 << 20);
  for (;;) {
    if (signal?.cancelled) throw cancelled();
    const { bytesRead } = await fh.read(buf, 0, buf.length, null);
    if (bytesRead === 0) return;
    onBytes(bytesRead);
    yield buf.subarray(0, bytesRead);
  }
}

/** Bytes and files (and links) under a host path: the progress total, and what a put that stops says it kept of. */
async function hostSize(path: string): Promise<{ bytes: number; files: number }> {
  const st = await lstat(path);
  if (st.isFile()) return { bytes: st.size, files: 1 };
  if (st.isSymbolicLink()) return { bytes: 0, files: 1 };
  if (!st.isDirectory()) return { bytes: 0, files: 0 };
  const n = { bytes: 0, files: 0 };
  for (const name of await readdir(path)) {
    const sub = await hostSize(join(path, name));
    n.bytes += sub.bytes;
    n.files += sub.files;
  }
  return n;
}

/** Block counts as people read them (17,090). */
function blocks(n: number): string {
  return n.toLocaleString('en-US');
}

async function volumeTarget(volume: Volume, volPath: string, name: string): Promise<string> {
  const target = normalizePath(volPath, volume.label);
  try {
    const st = await volume.stat(target);
    if (st.type === 'dir') return target === '/' ? `/${name}` : `${target}/${name}`;
  } catch (e) {
    if (!(e instanceof SnapplaneError && e.code === 'NOT_FOUND')) throw e;
  }
  return target;
}

async function statOrNull(volume: Volume, path: string): Promise<DirEntryInfo | null> {
  try {
    return await volume.stat(path);
  } catch (e) {
    if (e instanceof SnapplaneError && e.code === 'NOT_FOUND') return null;
    throw e;
  }
}

function specialKind(s: Stats): string {
  return s.isFIFO() ? 'a FIFO' : s.isSocket() ? 'a socket' : s.isCharacterDevice() ? 'a character device' : s.isBlockDevice() ? 'a block device' : 'not a regular file';
}

function counted(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/**
 * Copies a host file or folder into the volume (into `volPath` if it is a folder, else as `volPath`). Each file
 * lands whole: it is written under a temporary name (PUT_TEMPORARY) beside its target and renamed over it when
 * complete. A put that fails or is cancelled removes the temporary and commits, so the volume keeps the files it
 * completed and the file it was replacing as it was, never part of a file.
 */
export async function copyFromHost(volume: Volume, hostPath: string, volPath: string, onProgress?: Progress, signal?: Signal): Promise<CopySummary> {
  let st;
  try {
    st = await lstat(hostPath);
  } catch (e) {
    throw new SnapplaneError('NOT_FOUND', `host path '${hostPath}' does not exist`, { path: hostPath, cause: e });
  }
  if (!st.isFile() && !st.isDirectory() && !st.isSymbolicLink()) {
    throw new SnapplaneError('INVALID', `'${hostPath}' is ${specialKind(st)}: put copies files, folders and symbolic links`, { path: hostPath });
  }
  const { bytes: total, files: totalFiles } = await hostSize(hostPath);
  const summary: CopySummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  const target = await volumeTarget(volume, volPath, basename(hostPath) || 'root');
  if (target === '/' && !st.isDirectory()) throw new SnapplaneError('IS_DIR', `cannot write a file over the root folder`, { path: '/' });
  const tick = (): void => onProgress?.({ phase: 'put', done: summary.bytes, total, unit: 'bytes' });
  const swept = new Set<string>();
  // Leftovers of a put that was killed (this put holds the volume's one writer lock, so no other put is writing them).
  const sweep = async (folder: string): Promise<void> => {
    if (swept.has(folder)) return;
    swept.add(folder);
    for (const e of await volume.readdir(folder)) {
      if (e.type === 'file' && PUT_TEMPORARY.test(e.name) && !livePuts.has(`${volume.label}\u0000${e.path}`)) await volume.remove(e.path);
    }
  };
  const putFile = async (src: string, dst: string, size: number, meta: FileMeta): Promise<void> => {
    const cut = dst.lastIndexOf('/');
    const folder = dst.slice(0, cut) || '/';
    validateName(dst.slice(cut + 1), dst, volume.label);
    await sweep(folder);
    const old = await statOrNull(volume, dst);
    if (old?.type === 'dir') throw new SnapplaneError('IS_DIR', `'${dst}' is a folder`, { volume: volume.label, path: dst });
    const map = volume.blockMap;
    const room = map ? (map.freeBlocks - map.reserve) * BLOCK_SIZE : 0;
    // What writes may still take before this file: free blocks less the reserve and a CP's margin (Volume.reserve).
    const freeAtStart = map?.freeBlocks ?? 0;
    const writable = volume.writableBlocks;
    const tmp = `${folder === '/' ? '' : folder}/.snapplane-put-${process.pid}-${++temporaries}.tmp`;
    const live = `${volume.label}\u0000${tmp}`;
    livePuts.add(live);
    const fh = await open(src, 'r');
    try {
      const data = readReused(fh, (n) => {
        summary.bytes += n;
        tick();
      }, signal);
      await volume.writeFile(tmp, data, meta, size);
      await volume.rename(tmp, dst);
    } catch (e) {
      await volume.remove(tmp).catch(() => undefined);
      if (e instanceof SnapplaneError && e.code === 'CANCELLED') {
        const done = summary.files + summary.symlinks > 0 ? `; the ${counted(summary.files + summary.symlinks, 'file')} put before it are kept` : '';
        throw new SnapplaneError('CANCELLED', `put interrupted; ${old ? `'${dst}' kept as it was` : `'${dst}' not created`}${done}`, { volume: volume.label, path: dst });
      }
      if (e instanceof SnapplaneError && e.code === 'ENOSPC') {
        // What this file needed against what there was when it started, rather than the count left when it stopped.
        const dataBlocks = Math.ceil(size / BLOCK_SIZE);
        const need = dataBlocks + indirectBlocksFor(dataBlocks) + 2;
        const kept = map ? Math.min(freeAtStart, map.reserve + 64) : 0;
        const waiting = freeAtStart - writable - kept;
        const less = `${blocks(kept)} kept for metadata${waiting > 0 ? ` and ${blocks(waiting)} for the files before it, not yet committed` : ''}`;
        // A file sparse on the host needs fewer: its whole blocks of zeros stay holes (how many is not known up front).
        const allocated = await fh.stat().then((x) => x.blocks * 512, () => size);
        const needs = allocated < size ? `up to ${blocks(need)} blocks (fewer: it is sparse on the host, ${formatBytes(allocated)} of its ${formatBytes(size)} allocated, and whole blocks of zeros stay holes)` : `${blocks(need)} blocks`;
        const full = `volume '${volume.label}' is full: '${dst}' needs ${needs}, the volume has room for ${blocks(writable)} (${blocks(freeAtStart)} blocks free, less ${less})`;
        if (!old) throw new SnapplaneError('ENOSPC', `${full}; '${dst}' was not created`, { volume: volume.label, path: dst, cause: e });
        // The new copy goes beside the old one until complete: say so when it would have fit in the old one's place.
        const both = size <= room + old.size ? `: its new copy is written beside it until complete, so both must fit at once (removing '${dst}' first makes room, unless a snapshot holds its blocks)` : '';
        throw new SnapplaneError('ENOSPC', `${full}; '${dst}' was kept as it was${both}`, { volume: volume.label, path: dst, cause: e });
      }
      throw e;
    } finally {
      livePuts.delete(live);
      await fh.close();
    }
  };
  let current = target;
  const copy = async (src: string, dst: string): Promise<void> => {
    current = dst;
    if (signal?.cancelled) throw new SnapplaneError('CANCELLED', `put interrupted before '${dst}'; the ${counted(summary.files + summary.symlinks, 'file')} put before it are kept`, { volume: volume.label, path: dst });
    const s = await lstat(src);
    const meta = { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, mtimeMs: s.mtimeMs };
    if (s.isSymbolicLink()) {
      await volume.remove(dst).catch(() => undefined);
      await volume.symlink(dst, await readlink(src), meta);
      summary.symlinks++;
    } else if (s.isFile()) {
      await putFile(src, dst, s.size, meta);
      summary.files++;
    } else if (s.isDirectory()) {
      if (dst !== '/') {
        try {
          await volume.mkdir(dst, meta);
        } catch (e) {
          if (!(e instanceof SnapplaneError && e.code === 'EXISTS')) throw e;
          if ((await volume.stat(dst)).type !== 'dir') throw e;
        }
      }
      summary.dirs++;
      for (const name of (await readdir(src)).sort()) await copy(join(src, name), dst === '/' ? `/${name}` : `${dst}/${name}`);
      await volume.setAttributes(dst, meta);
    } else {
      // Sockets, FIFOs and devices have no contents to copy: counted, and the first named, in the summary.
      summary.skipped = (summary.skipped ?? 0) + 1;
      summary.firstSkipped ??= src;
    }
  };
  const before = volume.fsinfo.generation;
  try {
    await copy(hostPath, target);
  } catch (e) {
    // Commits what completed (each file whole) rather than leave the volume at whichever CP the put last made.
    if (volume.fsinfo.generation !== before || summary.files + summary.symlinks + summary.dirs > 0) await volume.sync().catch(() => undefined);
    if (e instanceof SnapplaneError && e.code === 'ENOSPC' && st.isDirectory()) {
      // A folder put that ran out part-way: where it stopped and what of the folder it kept.
      const at = e.path === current ? '' : ` at '${current}'`;
      const put = summary.files + summary.symlinks;
      throw new SnapplaneError('ENOSPC', `${e.message}${at}; the put of '${hostPath}' stopped there: ${blocks(put)} of its ${blocks(totalFiles)} files were put and are kept, the rest were not`, {
        volume: volume.label,
        path: current,
        cause: e,
      });
    }
    throw e;
  }
  // Committed before it reports: a sparse image's host file system may fill only when the CP writes the blocks, and
  // a put that said it was done must not then fail.
  try {
    await volume.sync();
  } catch (e) {
    if (!(e instanceof SnapplaneError)) throw e;
    const kept = volume.fsinfo.generation !== before ? `the volume keeps what the put committed at its last consistency point (generation ${volume.fsinfo.generation}), not the rest` : `the volume stays as it was before the put`;
    throw new SnapplaneError(e.code, `${e.message}; the put was not committed: ${kept}`, { volume: volume.label, path: target, vbn: e.vbn, cause: e });
  }
  tick();
  return summary;
}

/**
 * Copies a file or folder out of the volume (into `hostPath` if it is a folder, else as `hostPath`). Each file is
 * written whole under a temporary name beside its target, then renamed over it; a copy that fails or is cancelled
 * removes the temporary, and the file it was to replace stays as it was.
 */
export async function copyToHost(volume: Volume, volPath: string, hostPath: string, onProgress?: Progress, intoFolder?: boolean, signal?: Signal): Promise<CopySummary> {
  const root = await volume.stat(volPath);
  // A caller that reads again after a failed try says what `hostPath` was before the first (it may have made it).
  const into = intoFolder ?? (await stat(hostPath).then((s) => s.isDirectory(), () => false));
  const target = into ? join(hostPath, root.path === '/' ? 'root' : root.name) : hostPath;
  const summary: CopySummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  const total = root.type === 'file' ? root.size : 0;
  // Files and folders whose blocks fail their checksums: the rest of the tree is still got (as rsync goes on past
  // unreadable files), and the get fails at the end naming them.
  const damaged: SnapplaneError[] = [];
  const copy = async (src: string, dst: string): Promise<void> => {
    try {
      await copyOne(src, dst);
    } catch (e) {
      if (!(e instanceof SnapplaneError && e.code === 'CHECKSUM') || src === root.path) throw e;
      damaged.push(e);
    }
  };
  const copyOne = async (src: string, dst: string): Promise<void> => {
    if (signal?.cancelled) throw new SnapplaneError('CANCELLED', `get interrupted before '${dst}'; the ${counted(summary.files + summary.symlinks, 'file')} got before it are kept`, { path: src });
    const s = await volume.stat(src);
    const mtime = new Date(s.mtime);
    try {
      if (s.type === 'symlink') {
        await unlink(dst).catch(() => undefined);
        await symlink(s.target ?? '', dst);
        await lutimes(dst, mtime, mtime).catch(() => undefined);
        await lchown(dst, s.uid, s.gid).catch(() => undefined);
        summary.symlinks++;
      } else if (s.type === 'file') {
        // Written whole under a temporary name, then renamed over the target (as rsync does): a copy that fails
        // (a full disk) leaves no partial file and the file it was to replace as it was; the rename replaces a
        // symlink at the target rather than writing through it. The name is short, so a target of the longest
        // name (255 bytes) still has one.
        const tmp = join(dirname(dst), `.snapplane-get-${process.pid}-${++temporaries}.tmp`);
        await unlink(tmp).catch(() => undefined);
        let landed = false;
        const kept = async (): Promise<string> => {
          const existed = await lstat(dst).then(() => true, () => false);
          const done = summary.files + summary.symlinks > 0 ? `; the ${counted(summary.files + summary.symlinks, 'file')} got before it are kept` : '';
          return `${existed ? `'${dst}' kept as it was` : `'${dst}' not created`}${done}`;
        };
        try {
          const fh = await open(tmp, 'wx', s.mode & 0o777).catch(async (e: unknown) => {
            throw hostCreateError(e, 'file', dst, await kept());
          });
          try {
            // Sparse where the file has blocks of zeros (holes in the volume, or written zeros), as `cp` keeps it.
            let at = 0;
            for await (const chunk of volume.readChunks(src, { reuse: true })) {
              if (signal?.cancelled) throw cancelled();
              await writeSparse(fh, chunk, at);
              at += chunk.length;
              summary.bytes += chunk.length;
              onProgress?.({ phase: 'get', done: summary.bytes, total: Math.max(total, summary.bytes), unit: 'bytes' });
            }
            // A file that ends in zeros: its length (the trailing hole is not written).
            await fh.truncate(at);
          } finally {
            await fh.close();
          }
          // Owner before mode: a chown clears the setuid and setgid bits the mode sets.
          await lchown(tmp, s.uid, s.gid).catch(() => undefined);
          await chmod(tmp, s.mode & 0o7777);
          await utimes(tmp, mtime, mtime);
          await rename(tmp, dst);
          landed = true;
        } catch (e) {
          if (e instanceof SnapplaneError && e.code === 'CANCELLED') throw new SnapplaneError('CANCELLED', `get interrupted; ${await kept()}`, { path: src });
          if (e instanceof SnapplaneError) throw e;
          const err = asIoError(e, `cannot write '${dst}'`, { path: src });
          throw new SnapplaneError(err.code, `${err.message}; ${await kept()}`, { path: src, cause: e });
        } finally {
          if (!landed) await unlink(tmp).catch(() => undefined);
        }
        summary.files++;
      } else {
        await makeFolders(dst);
        summary.dirs++;
        for (const e of await volume.readdir(src)) {
          validateName(e.name, e.path, volume.label);
          await copy(e.path, join(dst, e.name));
        }
        await lchown(dst, s.uid, s.gid).catch(() => undefined);
        await chmod(dst, s.mode & 0o7777);
        await utimes(dst, mtime, mtime);
      }
    } catch (e) {
      if (e instanceof SnapplaneError) throw e;
      throw asIoError(e, `cannot write '${dst}'`, { path: src });
    }
  };
  await copy(root.path, target);
  if (damaged.length > 0) {
    const named = damaged.slice(0, 3).map((e) => e.message).join('; ');
    throw new SnapplaneError('CHECKSUM', `${damaged.length === 1 ? '1 file or folder' : `${damaged.length} files or folders`} could not be read (${named}${damaged.length > 3 ? '; …' : ''}); ${counted(summary.files + summary.symlinks, 'other file')} were got into '${target}'`, { path: damaged[0].path, vbn: damaged[0].vbn, volume: volume.label });
  }
  return summary;
}
