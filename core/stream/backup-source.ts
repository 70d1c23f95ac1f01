/** A backup as random-access stream bytes: a stream file, or a tape folder read back as one stream. */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { SnapplaneError } from '../common/errors.js';
import { alignedBufferSet } from '../common/aligned-buffers.js';
import { BLOCK_SIZE } from '../common/units.js';
import { TAPE_BLOCK, TAPE_HEADER_SIZE, TapeSet, isTapeFolder, tapeName } from './tape.js';
import { readsAroundPageCache } from './bulk-io.js';
import { isTapeDevice, isTapeImage, readTapeDevice, type NextTape } from './tape-device.js';

export interface BackupSource {
  readonly path: string;
  readonly size: number;
  /** Where stream bytes [offset, end) are on the backup's media (which tape, at which byte), or null for a plain file. */
  place?(offset: number, end?: number): string | null;
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
  /** As BackupSource.place (a spooled tape device says which cartridge held a stream byte). */
  place?(offset: number, end?: number): string | null;
  open(): Promise<{ size: number; read: (into: Buffer, offset: number) => Promise<number>; close?: () => Promise<void> }>;
}

/** Where a backup is: a host path (a stream file or a tape folder), or a file inside a volume. */
export type BackupLocation = string | ReadableBackup;

/** Where each tape's stream bytes start: the stream offset, and how to name the tape and the byte on it. */
interface TapeStart {
  start: number;
  name: string;
  /** Bytes on the tape before its stream bytes (a tape file's header, a cartridge's leader block). */
  lead: number;
}

/**
 * The tape holding stream byte `offset`, and the byte on it, from tape starts in stream order; with `end` (exclusive)
 * of a range that goes on past that tape, also the tape it ends on (a record may span two tapes).
 */
function placeOnTapes(tapes: readonly TapeStart[], offset: number, end?: number): string | null {
  const on = (o: number): TapeStart | undefined => tapes.filter((x) => x.start <= o).pop();
  const t = on(offset);
  if (!t) return null;
  const last = end !== undefined && end > offset + 1 ? on(end - 1) : t;
  const through = last && last !== t ? `, ending on ${last.name} at its byte ${last.lead + end! - 1 - last.start}` : '';
  return `on ${t.name} at its byte ${t.lead + offset - t.start}${through}`;
}

/** The tape starts of a tape folder's set. */
function folderTapes(dir: string, set: TapeSet): TapeStart[] {
  let start = 0;
  return set.tapeBytes.map((n, k) => {
    const t = { start, name: `${tapeName(k + 1)} (tape ${k + 1} of ${dir})`, lead: TAPE_HEADER_SIZE };
    start += n;
    return t;
  });
}

/** A backup's stream bytes, which can also say where a stream offset is on the backup's media (for messages). */
export interface PlacedBytes extends AsyncIterable<Buffer> {
  place(offset: number, end?: number): string | null;
}

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
    place: (o, e) => loc.place?.(o, e) ?? null,
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
    const tapes = folderTapes(path, set);
    return { path, size: set.size, read: (b, o) => set.read(b, o), close: () => set.close(), place: (o, e) => placeOnTapes(tapes, o, e) };
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

/**
 * A backup's stream bytes, start to end; `nextTape` loads each further cartridge of a tape device. Its `place` says
 * which tape (file of a tape folder, or cartridge) holds a stream byte read so far, so a bad record can be found.
 */
export function backupBytes(loc: BackupLocation, o: { nextTape?: NextTape } = {}): PlacedBytes {
  const tapes: TapeStart[] = [];
  return {
    [Symbol.asyncIterator]: () => streamBytes(loc, o, tapes)[Symbol.asyncIterator](),
    place: (offset, end) => (typeof loc === 'string' ? placeOnTapes(tapes, offset, end) : (loc.place?.(offset, end) ?? null)),
  };
}

/** backupBytes' bytes; `tapes` gets where each tape starts, as the tapes are opened. */
async function* streamBytes(loc: BackupLocation, o: { nextTape?: NextTape }, tapes: TapeStart[]): AsyncGenerator<Buffer> {
  if (await isSequentialBackup(loc)) {
    const path = loc as string;
    let at = 0;
    const onTape = (n: number): void => void tapes.push({ start: at, name: `cartridge ${n} (tape ${n} of ${path})`, lead: TAPE_BLOCK });
    for await (const b of readTapeDevice(path, { ...o, onTape })) {
      at += b.length;
      yield b;
    }
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
  tapes.push(...folderTapes(path, set));
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
