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
