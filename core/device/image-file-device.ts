/** A BlockDevice over one sparse image file: positional reads and writes of block runs, fdatasync barriers. */
import { constants, writevSync } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BLOCK_SIZE } from '../common/units.js';
import { ALIGNED_BUFFER_BYTES, alignedBuffers, isPageAligned } from '../common/aligned-buffers.js';
import { SnapplaneError, asIoError } from '../common/errors.js';
import type { BlockDevice, DeviceHealth } from './block-device.js';
import { creatingName, removeAbandonedCreations, syncFolder } from '../common/half-made.js';
import { linkIntoPlace } from '../common/link-into-place.js';
import { requireParentFolder } from '../common/parent-folder.js';

/**
 * Writes of at most this many bytes are made on the calling thread (a synchronous pwritev into the page cache):
 * for a block or a few, the thread pool's round trip costs several times the write itself. 12,000 writes of 4 KiB
 * here: 280-410 ms of CPU and 170-250 ms through the pool, 65-79 ms both on the calling thread. Larger writes go
 * through the pool, so the event loop keeps turning while they copy.
 */
const SYNC_WRITE_BYTES = 64 * 1024;

/** What is left of `parts` after the first `written` bytes went out. */
function unwritten(parts: Buffer[], written: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = written;
  for (const b of parts) {
    if (skip >= b.length) skip -= b.length;
    else {
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return rest;
}

export class ImageFileDevice implements BlockDevice {
  readonly concurrentReads = true;
  private handle: FileHandle | undefined;
  /** The image opened again with O_DIRECT for bulk transfers; null where the file system refuses it (tmpfs). */
  private direct: Promise<FileHandle | null> | undefined;

  private constructor(
    handle: FileHandle,
    readonly label: string,
    readonly blockCount: number,
    readonly readOnly: boolean,
  ) {
    this.handle = handle;
  }

  /** Creates a new sparse image of `blockCount` blocks; refuses to overwrite an existing file. */
  static async create(path: string, blockCount: number): Promise<ImageFileDevice> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'wx+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new SnapplaneError('EXISTS', `volume '${path}' already exists`, { volume: path });
      }
      throw asIoError(e, `cannot create image '${path}'`, { volume: path });
    }
    try {
      await handle.truncate(blockCount * BLOCK_SIZE);
    } catch (e) {
      await handle.close();
      throw asIoError(e, `cannot size image '${path}'`, { volume: path });
    }
    return new ImageFileDevice(handle, path, blockCount, false);
  }

  /**
   * Creates an image of `blockCount` blocks under a temporary name, lets `fill` write it (through the device, which
   * it leaves open), flushes it and links it into place. A crash before the link leaves nothing at `path` (a
   * volume half-made there would stay unreadable, and a receive that made it could never finish); a second
   * creator that got there first wins (the link refuses to replace it).
   */
  static async createWhole(path: string, blockCount: number, fill: (device: ImageFileDevice) => Promise<void>): Promise<void> {
    if (await stat(path).then(() => true, () => false)) throw new SnapplaneError('EXISTS', `volume '${path}' already exists`, { volume: path });
    await requireParentFolder(path);
    await removeAbandonedCreations(path);
    const tmp = creatingName(path);
    await rm(tmp, { force: true });
    try {
      const device = await ImageFileDevice.create(tmp, blockCount);
      try {
        await fill(device);
        await device.flush();
      } finally {
        await device.close();
      }
      try {
        await linkIntoPlace(tmp, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new SnapplaneError('EXISTS', `volume '${path}' already exists`, { volume: path });
        throw asIoError(e, `cannot create image '${path}'`, { volume: path });
      }
      await syncFolder(dirname(path));
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Opens an existing image; its size fixes the block count. */
  static async open(path: string, options: { readOnly?: boolean } = {}): Promise<ImageFileDevice> {
    const readOnly = options.readOnly ?? false;
    let handle: FileHandle;
    try {
      handle = await open(path, readOnly ? 'r' : 'r+');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new SnapplaneError('NOT_FOUND', `volume '${path}' does not exist`, { volume: path });
      if (code === 'EISDIR') throw new SnapplaneError('BAD_FORMAT', `'${path}' is a folder, not a volume image`, { volume: path });
      throw asIoError(e, `cannot open volume '${path}'`, { volume: path });
    }
    const { size } = await handle.stat();
    if (size < 2 * BLOCK_SIZE || size % BLOCK_SIZE !== 0) {
      await handle.close();
      throw new SnapplaneError('BAD_FORMAT', `'${path}' is not a Snapplane volume (size ${size} is not a whole number of 4 KiB blocks)`, {
        volume: path,
      });
    }
    return new ImageFileDevice(handle, path, size / BLOCK_SIZE, readOnly);
  }

  private get file(): FileHandle {
    if (!this.handle) throw new SnapplaneError('CLOSED', `device '${this.label}' is closed`, { volume: this.label });
    return this.handle;
  }

  private checkRange(vbn: number, count: number): void {
    if (!Number.isInteger(vbn) || vbn < 0 || count < 0 || vbn + count > this.blockCount) {
      throw new SnapplaneError('IO', `block range ${vbn}+${count} is outside '${this.label}' (${this.blockCount} blocks)`, {
        volume: this.label,
        vbn,
      });
    }
  }

  async readBlocks(vbn: number, count: number, into?: Buffer): Promise<Buffer> {
    this.checkRange(vbn, count);
    const buf = into && into.length === count * BLOCK_SIZE ? into : Buffer.allocUnsafe(count * BLOCK_SIZE);
    let done = 0;
    try {
      while (done < buf.length) {
        const { bytesRead } = await this.file.read(buf, done, buf.length - done, vbn * BLOCK_SIZE + done);
        if (bytesRead === 0) throw this.endedEarly(vbn * BLOCK_SIZE + done);
        done += bytesRead;
      }
    } catch (e) {
      throw asIoError(e, `read of ${count} block(s) at VBN ${vbn} failed on '${this.label}'`, { volume: this.label, vbn });
    }
    return buf;
  }

  async writeBlocks(vbn: number, data: Buffer | Buffer[]): Promise<void> {
    if (this.readOnly) throw new SnapplaneError('READ_ONLY', `device '${this.label}' is read-only`, { volume: this.label });
    const parts = Array.isArray(data) ? data : [data];
    const bytes = parts.reduce((n, b) => n + b.length, 0);
    if (bytes % BLOCK_SIZE !== 0) throw new SnapplaneError('INVALID', `write of ${bytes} bytes is not whole blocks`, { vbn });
    this.checkRange(vbn, bytes / BLOCK_SIZE);
    try {
      let position = vbn * BLOCK_SIZE;
      let pending = parts;
      // writev may write less than asked; continue from where it stopped.
      while (pending.length > 0) {
        const written = bytes <= SYNC_WRITE_BYTES ? writevSync(this.file.fd, pending, position) : (await this.file.writev(pending, position)).bytesWritten;
        position += written;
        pending = unwritten(pending, written);
      }
    } catch (e) {
      throw asIoError(e, `write at VBN ${vbn} failed on '${this.label}'`, { volume: this.label, vbn });
    }
  }

  /**
   * The image ended before `offset`, inside the volume: it was sized whole when opened, so it shrank since
   * (truncated or replaced under us). Reading zeros there would send or serve wrong data with good checksums.
   */
  private endedEarly(offset: number): SnapplaneError {
    const vbn = Math.floor(offset / BLOCK_SIZE);
    return new SnapplaneError('IO', `image '${this.label}' ends before block ${vbn} of its ${this.blockCount}: it was truncated or replaced while open`, { volume: this.label, vbn });
  }

  private directHandle(): Promise<FileHandle | null> {
    this.direct ??= open(this.label, (this.readOnly ? constants.O_RDONLY : constants.O_RDWR) | constants.O_DIRECT).catch(() => null);
    return this.direct;
  }

  /**
   * Reads a bulk send's blocks around the page cache (O_DIRECT) into `into`, which must be page-aligned
   * (core/common/aligned-buffers.ts): a cold read that fills the cache costs several times the CPU of the read
   * itself here, and evicts what other work keeps there. The kernel writes back dirty cached blocks of the range
   * first, so the data is the same. Falls back to readBlocks where the file system (or the buffer) does not allow it.
   */
  async readBlocksDirect(vbn: number, count: number, into: Buffer): Promise<Buffer> {
    this.checkRange(vbn, count);
    const fh = into.length === count * BLOCK_SIZE ? await this.directHandle() : null;
    if (!fh) return this.readBlocks(vbn, count, into);
    let done = 0;
    try {
      while (done < into.length) {
        const { bytesRead } = await fh.read(into, done, into.length - done, vbn * BLOCK_SIZE + done);
        if (bytesRead === 0) throw this.endedEarly(vbn * BLOCK_SIZE + done);
        done += bytesRead;
        // A short read that ends off alignment: the rest through the page cache.
        if (done % BLOCK_SIZE !== 0) return this.readBlocks(vbn, count, into);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EINVAL') return this.readBlocks(vbn, count, into);
      throw asIoError(e, `read of ${count} block(s) at VBN ${vbn} failed on '${this.label}'`, { volume: this.label, vbn });
    }
    return into;
  }

  /**
   * Writes a received stream's blocks around the page cache (O_DIRECT through page-aligned buffers): nobody reads
   * them back soon, and filling the cache with them costs more than the copy itself (several writers of one file
   * also queue on its lock there). Same durability as writeBlocks: durable after the next flush. Falls back to
   * writeBlocks where the file system has no O_DIRECT.
   */
  async writeBlocksDirect(vbn: number, data: Buffer): Promise<void> {
    if (this.readOnly) throw new SnapplaneError('READ_ONLY', `device '${this.label}' is read-only`, { volume: this.label });
    if (data.length % BLOCK_SIZE !== 0) throw new SnapplaneError('INVALID', `write of ${data.length} bytes is not whole blocks`, { vbn });
    this.checkRange(vbn, data.length / BLOCK_SIZE);
    const fh = await this.directHandle();
    if (!fh) return this.writeBlocks(vbn, data);
    // Already page-aligned (a stream reader gathered it so): written as it is, one copy less.
    if (isPageAligned(data)) return this.writeAligned(fh, vbn, 0, data);
    const pool = alignedBuffers();
    for (let o = 0; o < data.length; o += ALIGNED_BUFFER_BYTES) {
      const part = data.subarray(o, o + ALIGNED_BUFFER_BYTES);
      const buf = await pool.take();
      try {
        part.copy(buf);
        await this.writeAligned(fh, vbn, o, buf.subarray(0, part.length));
      } finally {
        pool.give(buf);
      }
    }
  }

  /** One direct write of page-aligned `buf` at byte `offset` of the write at `vbn`. */
  private async writeAligned(fh: FileHandle, vbn: number, offset: number, buf: Buffer): Promise<void> {
    const position = vbn * BLOCK_SIZE + offset;
    try {
      let done = await fh.write(buf, 0, buf.length, position).then(
        (r) => r.bytesWritten,
        (e: unknown) => {
          if ((e as NodeJS.ErrnoException).code === 'EINVAL') return 0;
          throw e;
        },
      );
      // What a short direct write left (it may end off alignment) or a refused one (a file system may not take
      // the alignment it was given: EINVAL) goes through the page cache.
      while (done < buf.length) {
        const { bytesWritten } = await this.file.write(buf, done, buf.length - done, position + done);
        if (bytesWritten === 0) throw new SnapplaneError('IO', `write at VBN ${vbn} made no progress on '${this.label}'`, { volume: this.label, vbn });
        done += bytesWritten;
      }
    } catch (e) {
      throw asIoError(e, `write at VBN ${vbn} failed on '${this.label}'`, { volume: this.label, vbn });
    }
  }

  /** fdatasync covers the writes that finished before it; later ones may go on meanwhile. */
  readonly flushWhileWriting = true;

  async flush(): Promise<void> {
    if (this.readOnly) return;
    try {
      await this.file.datasync();
    } catch (e) {
      throw asIoError(e, `flush failed on '${this.label}'`, { volume: this.label });
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    const d = this.direct;
    this.handle = undefined;
    this.direct = undefined;
    if (h) await h.close();
    const dh = d ? await d : null;
    if (dh) await dh.close();
  }

  health(): DeviceHealth {
    return { kind: 'image', degraded: false, members: [{ index: 0, path: this.label, role: 'single', state: 'ok' }] };
  }
}
