/** A backup as random-access stream bytes: a stream file, or a tape folder read back as one stream. */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { SnapplaneError } from '../common/errors.js';
import { alignedBufferSet } from '../common/aligned-buffers.js';
import { BLOCK_SIZE } from '../common/units.js';
import { TapeSet, isTapeFolder } from './tape.js';
import { readsAroundPageCache } from './bulk-io.js';
import { isTapeDevice, isTapeImage, readTapeDevice, type NextTape } from './tape-device.js';

export interface BackupSource {
  readonly path: string;
  readonly size: number;
  /** Reads stream bytes [offset, offset + buf.length). */
  read(buf: Buffer, offset: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A backup the service opens itself and hands over as a size and a range reader: a file inside a volume (a file
 * backup "inside another volume"), or a tape device's stream spooled to a host file.
 */
export interface ReadableBackup {
  /** What to call it in messages: `<volume>:<path>`, or the tape device's path. */
  readonly label: string;
  open(): Promise<{ size: number; read: (into: Buffer, offset: number) => Promise<number>; close?: () => Promise<void> }>;
}

/** Where a backup is: a host path (a stream file or a tape folder), or a file inside a volume. */
export type BackupLocation = string | ReadableBackup;

/** The name of a backup in messages and reports. */
export function backupLabel(loc: BackupLocation): string {
  return typeof loc === 'string' ? loc : loc.label;
}

async function openReadable(loc: ReadableBackup): Promise<BackupSource> {
  const f = await loc.open();
  return {
    path: loc.label,
    size: f.size,
    read: async (b, o) => {
      const n = await f.read(b, o);
      if (n !== b.length) throw new SnapplaneError('BAD_STREAM', `${loc.label}: truncated at byte ${o + n}`, { path: loc.label });
    },
    close: async () => f.close?.(),
  };
}

/** Opens a backup (a file, a tape folder, or a file inside a volume) for random access. */
export async function openBackup(loc: BackupLocation): Promise<BackupSource> {
  if (typeof loc !== 'string') return openReadable(loc);
  const path = loc;
  if ((await isTapeDevice(path)) || (await isTapeImage(path))) {
    throw new SnapplaneError('INVALID', `${path} is a tape device (or a copy of one): it reads only in order, and this needs a stream file or a tape folder`, { path });
  }
  if (await isTapeFolder(path)) {
    const set = await TapeSet.open(path);
    return { path, size: set.size, read: (b, o) => set.read(b, o), close: () => set.close() };
  }
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    throw new SnapplaneError('NOT_FOUND', `backup '${path}' does not exist`, { path });
  }
  const { size } = await fh.stat();
  const handle = fh;
  return {
    path,
    size,
    read: async (b, o) => {
      const { bytesRead } = await handle.read(b, 0, b.length, o);
      if (bytesRead !== b.length) throw new SnapplaneError('BAD_STREAM', `${path}: truncated at byte ${o + bytesRead}`, { path });
    },
    close: () => handle.close(),
  };
}

/** True when a backup is read strictly in order (a tape device, or a tape copied from one to a file). */
export async function isSequentialBackup(loc: BackupLocation): Promise<boolean> {
  return typeof loc === 'string' && ((await isTapeDevice(loc)) || (await isTapeImage(loc)));
}

/** A backup's stream bytes, start to end; `nextTape` loads each further cartridge of a tape device. */
export async function* backupBytes(loc: BackupLocation, o: { nextTape?: NextTape } = {}): AsyncGenerator<Buffer> {
  if (await isSequentialBackup(loc)) {
    yield* readTapeDevice(loc as string, o);
    return;
  }
  if (typeof loc !== 'string') {
    const src = await openReadable(loc);
    try {
      for (let at = 0; at < src.size; at += 4 << 20) {
        const b = Buffer.allocUnsafe(Math.min(4 << 20, src.size - at));
        await src.read(b, at);
        yield b;
      }
    } finally {
      await src.close();
    }
    return;
  }
  const path = loc;
  if (!(await isTapeFolder(path))) {
    try {
      await (await open(path, 'r')).close();
    } catch {
      throw new SnapplaneError('NOT_FOUND', `backup '${path}' does not exist`, { path });
    }
    yield* fileBytes(path);
    return;
  }
  const set = await TapeSet.open(path);
  try {
    yield* set.bytes();
  } finally {
    await set.close();
  }
}

/** Ring size of fileBytes: a yielded buffer stays valid until this many more have been yielded, minus one. */
const FILE_RING = 6;

/**
 * A file's bytes in 4 MiB pieces read into a ring of reused buffers, one read ahead of the consumer. A bulk file
 * (at least `bulkBlocks` blocks; default: bulk-io.ts) is read around the page cache, into a page-aligned ring.
 */
export async function* fileBytes(path: string, bulkBlocks?: number): AsyncGenerator<Buffer> {
  const fh = await open(path, 'r');
  const direct = readsAroundPageCache(Math.floor((await fh.stat()).size / BLOCK_SIZE), bulkBlocks) ? await open(path, constants.O_RDONLY | constants.O_DIRECT).catch(() => null) : null;
  const ring = direct ? alignedBufferSet(FILE_RING, 4 << 20) : Array.from({ length: FILE_RING }, () => Buffer.allocUnsafe(4 << 20));
  let k = 0;
  let pos = 0;
  const next = (): Promise<Buffer> => {
    const buf = ring[k++ % FILE_RING];
    const at = pos;
    pos += buf.length;
    const cached = (): Promise<Buffer> => fh.read(buf, 0, buf.length, at).then((r) => buf.subarray(0, r.bytesRead));
    if (!direct) return cached();
    // A file system may refuse the alignment it was given (EINVAL): that piece comes through the cache.
    return direct.read(buf, 0, buf.length, at).then(
      (r) => buf.subarray(0, r.bytesRead),
      (e: unknown) => {
        if ((e as NodeJS.ErrnoException).code === 'EINVAL') return cached();
        throw e;
      },
    );
  };
  let pending: Promise<Buffer> | null = null;
  try {
    pending = next();
    for (;;) {
      const b: Buffer = await pending;
      if (b.length === 0) return;
      pending = next();
      yield b;
    }
  } finally {
    await pending?.catch(() => undefined);
    await fh.close();
    await direct?.close();
  }
}
