/**
 * Writes to host files that do not stop short: a write(2) on a file system about to fill writes what fits and
 * reports fewer bytes than asked, without an error. A caller that ignores the count reports a truncated file as
 * written; looping makes the next write fail with ENOSPC instead.
 */
import type { FileHandle } from 'node:fs/promises';

/**
 * Writes `length` bytes of `buf` from `offset` at file position `position` (null: the file's current position,
 * which each write advances), looping over short writes; a write that makes no progress fails as ENOSPC would.
 */
export async function writeFully(fh: FileHandle, buf: Uint8Array, offset = 0, length = buf.length - offset, position: number | null = null): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await fh.write(buf, offset + done, length - done, position === null ? null : position + done);
    // Only a full file system (or quota) stops a regular file's write without an error.
    if (bytesWritten === 0) throw Object.assign(new Error('no space left on device, write made no progress'), { code: 'ENOSPC' });
    done += bytesWritten;
  }
}

const ZEROS = Buffer.alloc(4096);

/**
 * Writes `buf` at `position` of a file that reads as zeros there (new, or truncated over that range) and leaves
 * every whole 4 KiB block of zeros unwritten: the host file system keeps it a hole, as `cp --sparse=auto` does.
 * The caller sets the file's final size (a trailing hole is never written).
 */
export async function writeSparse(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let start = -1;
  const flush = async (to: number): Promise<void> => {
    if (start >= 0) await writeFully(fh, buf, start, to - start, position + start);
    start = -1;
  };
  for (let o = 0; o < buf.length; o += 4096) {
    const end = Math.min(o + 4096, buf.length);
    if (end - o === 4096 && buf.subarray(o, end).equals(ZEROS)) await flush(o);
    else if (start < 0) start = o;
  }
  await flush(buf.length);
}
