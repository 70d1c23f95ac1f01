/** A backup as random-access stream bytes: a stream file, or a tape folder read back as one stream. */
import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { SnapplaneError } from '../common/errors.js';
import { TapeSet, isTapeFolder } from './tape.js';

export interface BackupSource {
  readonly path: string;
  readonly size: number;
  /** Reads stream bytes [offset, offset + buf.length). */
  read(buf: Buffer, offset: number): Promise<void>;
  close(): Promise<void>;
}

/** Opens a backup file or tape folder for random access. */
export async function openBackup(path: string): Promise<BackupSource> {
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

/** A backup's stream bytes, start to end (1 MiB pieces). */
export async function* backupBytes(path: string): AsyncGenerator<Buffer> {
  if (!(await isTapeFolder(path))) {
    try {
      await (await open(path, 'r')).close();
    } catch {
      throw new SnapplaneError('NOT_FOUND', `backup '${path}' does not exist`, { path });
    }
    yield* createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>;
    return;
  }
  const set = await TapeSet.open(path);
  try {
    yield* set.bytes();
  } finally {
    await set.close();
  }
}
