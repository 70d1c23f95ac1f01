/**
 * Tape backup: an image stream (in `tape` order) written across a folder of tape files of fixed capacity, each
 * with a tape header, the stream cut into fixed-size tape blocks. A callback runs before each further tape (the
 * CLI's --next-tape hook changes a cartridge or prompts there). Reading a tape set gives the stream back, sequentially or at any offset.
 */
import { crc32 } from 'node:zlib';
import { mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { SnapplaneError, asIoError, hostCreateError } from '../common/errors.js';
import { writeFully } from '../common/write-fully.js';
import { requireParentFolder } from '../common/parent-folder.js';
import { fixedChunks } from '../common/fixed-chunks.js';

export const TAPE_MAGIC = Buffer.from('SNAPTAPE', 'ascii');
export const TAPE_HEADER_SIZE = 4096;
/** Bytes per tape block: the unit written to tape (the last block of a tape is zero-padded). */
export const TAPE_BLOCK = 65536;

export interface TapeHeader {
  tape: number;
  streamId: string;
  capacity: number;
  dataBytes: number;
  last: boolean;
  label: string;
}

/** Tape header versions: 1 = a tape file of a folder (header rewritten at the end), 2 = a tape on a device (leader and trailer). */
export type TapeFormat = 1 | 2;
/** Which header a version-2 block is: the leader (first block of a tape) or the trailer (last block, before the filemark). */
export type TapeRole = 0 | 1 | 2;

/** Encodes a tape header (4096 bytes). */
export function encodeTapeHeader(h: TapeHeader, format: TapeFormat = 1, role: TapeRole = 0): Buffer {
  const b = Buffer.alloc(TAPE_HEADER_SIZE);
  TAPE_MAGIC.copy(b, 0);
  b.writeUInt32LE(format, 8);
  b.writeUInt8(role, 58);
  b.writeUInt32LE(h.tape, 12);
  Buffer.from(h.streamId, 'hex').copy(b, 16);
  b.writeUInt32LE(TAPE_BLOCK, 32);
  b.writeUInt32LE(h.last ? 1 : 0, 36);
  b.writeBigUInt64LE(BigInt(h.capacity), 40);
  b.writeBigUInt64LE(BigInt(h.dataBytes), 48);
  const label = Buffer.from(h.label.slice(0, 1000), 'utf8');
  b.writeUInt16LE(label.length, 56);
  label.copy(b, 64);
  b.writeUInt32LE(crc32(b.subarray(0, TAPE_HEADER_SIZE - 4)) >>> 0, TAPE_HEADER_SIZE - 4);
  return b;
}

/** Decodes and checks a tape header of the given format (and, for format 2, role). */
export function decodeTapeHeader(b: Buffer, path: string, format: TapeFormat = 1, role: TapeRole = 0): TapeHeader {
  if (b.length < TAPE_HEADER_SIZE || !b.subarray(0, 8).equals(TAPE_MAGIC)) throw new SnapplaneError('BAD_STREAM', `${path} is not a Snapplane tape (bad magic)`, { path });
  if (b.readUInt32LE(TAPE_HEADER_SIZE - 4) !== crc32(b.subarray(0, TAPE_HEADER_SIZE - 4)) >>> 0) throw new SnapplaneError('BAD_STREAM', `${path}: tape header checksum mismatch`, { path });
  const version = b.readUInt32LE(8);
  if (version !== format) {
    throw new SnapplaneError('BAD_STREAM', version === 1 || version === 2 ? `${path}: a tape ${version === 1 ? 'file of a tape folder' : 'written to a device'}, read here as ${format === 1 ? 'a tape folder' : 'a device'}` : `${path}: unsupported tape version ${version}`, { path });
  }
  if (b.readUInt32LE(32) !== TAPE_BLOCK) throw new SnapplaneError('BAD_STREAM', `${path}: unsupported tape blocking`, { path });
  if (b.readUInt8(58) !== role) throw new SnapplaneError('BAD_STREAM', `${path}: expected the tape's ${role === 1 ? 'leader' : 'trailer'} block`, { path });
  return {
    tape: b.readUInt32LE(12),
    streamId: b.subarray(16, 32).toString('hex'),
    last: b.readUInt32LE(36) === 1,
    capacity: Number(b.readBigUInt64LE(40)),
    dataBytes: Number(b.readBigUInt64LE(48)),
    label: b.subarray(64, 64 + b.readUInt16LE(56)).toString('utf8'),
  };
}

/** The file name of tape `n` (1-based) in a tape folder. */
export function tapeName(n: number): string {
  return `tape-${String(n).padStart(4, '0')}.tap`;
}

export interface TapeWriteOptions {
  /** Bytes per tape file, header included; rounded down to whole tape blocks. */
  tapeSize: number;
  /** Called before each tape after the first (to change a cartridge or prompt); throwing aborts the backup. */
  beforeTape?: (tape: number, path: string) => Promise<void>;
  label: string;
  streamId: string;
}

/**
 * A stream cut into tape blocks: one reused 64 KiB buffer per step (overwritten by the next) and how many of its
 * bytes are the stream's; the last block is zero-padded.
 */
export async function* tapeBlocks(stream: AsyncIterable<Buffer>): AsyncGenerator<{ block: Buffer; fill: number }> {
  // One block, reused: each is written before the next is asked for.
  const block = Buffer.alloc(TAPE_BLOCK);
  for await (const { buf, fill } of fixedChunks(stream, TAPE_BLOCK, async () => block)) {
    if (fill < TAPE_BLOCK) buf.fill(0, fill);
    yield { block: buf, fill };
  }
}

/** Writes a stream across tape files in `dir`; returns the tapes written. */
export async function writeTapes(dir: string, stream: AsyncIterable<Buffer>, o: TapeWriteOptions): Promise<{ tapes: number; bytes: number }> {
  const perTape = Math.floor((o.tapeSize - TAPE_HEADER_SIZE) / TAPE_BLOCK) * TAPE_BLOCK;
  if (perTape < TAPE_BLOCK) throw new SnapplaneError('INVALID', `--tape-size must be at least ${TAPE_HEADER_SIZE + TAPE_BLOCK} bytes`);
  await requireParentFolder(dir, 'tape folder');
  // Not recursive (the parent is there): Node's recursive mkdir spins for ever where the parent makes no entries (/proc).
  await mkdir(dir).catch(async (e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST' && (await stat(dir).then((st) => st.isDirectory(), () => false))) return;
    throw hostCreateError(e, 'tape folder', dir, 'nothing was written');
  });
  const existing = (await readdir(dir)).filter((f) => f.endsWith('.tap'));
  if (existing.length > 0) throw new SnapplaneError('EXISTS', `tape folder ${dir} already holds tapes (${existing[0]}, ...); use an empty folder`, { path: dir });
  let tape = 0;
  let fh: FileHandle | null = null;
  let inTape = 0;
  let total = 0;
  const header = (last: boolean): Buffer => encodeTapeHeader({ tape, streamId: o.streamId, capacity: TAPE_HEADER_SIZE + perTape, dataBytes: inTape, last, label: o.label });
  const finish = async (last: boolean): Promise<void> => {
    if (!fh) return;
    await writeFully(fh, header(last), 0, TAPE_HEADER_SIZE, 0);
    await fh.datasync();
    await fh.close();
    fh = null;
  };
  const startTape = async (): Promise<void> => {
    tape++;
    const path = join(dir, tapeName(tape));
    if (tape > 1 && o.beforeTape) await o.beforeTape(tape, path);
    fh = await open(path, 'w');
    inTape = 0;
    await writeFully(fh, header(false), 0, TAPE_HEADER_SIZE, 0);
  };
  try {
    for await (const { block, fill } of tapeBlocks(stream)) {
      if (!fh || inTape + TAPE_BLOCK > perTape) {
        await finish(false);
        await startTape();
      }
      await writeFully(fh!, block, 0, TAPE_BLOCK, TAPE_HEADER_SIZE + Math.ceil(inTape / TAPE_BLOCK) * TAPE_BLOCK);
      inTape += fill;
      total += fill;
    }
    await finish(true);
  } catch (e) {
    await (fh as FileHandle | null)?.close().catch(() => undefined);
    // The folder held no tapes before: an unfinished set would only make the next try refuse the folder.
    for (let t = 1; t <= tape; t++) await rm(join(dir, tapeName(t)), { force: true }).catch(() => undefined);
    if (e instanceof SnapplaneError) throw e;
    const err = asIoError(e, `cannot write ${tapeName(tape)} in tape folder '${dir}'`, { path: join(dir, tapeName(tape)) });
    throw new SnapplaneError(err.code, `${err.message}; the backup was not made${tape === 0 ? '' : tape === 1 ? ': the tape it wrote was removed' : `: the ${tape} tapes it wrote were removed`}`, { path: err.path, cause: e });
  }
  return { tapes: tape, bytes: total };
}

/** A tape set read back: the stream's bytes at any offset, checked tape by tape (same stream, in order, complete). */
export class TapeSet {
  private constructor(
    private readonly files: FileHandle[],
    private readonly sizes: number[],
    readonly streamId: string,
  ) {}

  /** Opens every tape of a folder, in order. */
  static async open(dir: string): Promise<TapeSet> {
    const names = (await readdir(dir)).filter((f) => /^tape-\d{4}\.tap$/.test(f)).sort();
    if (names.length === 0) throw new SnapplaneError('NOT_FOUND', `no tapes in ${dir}`, { path: dir });
    const files: FileHandle[] = [];
    const sizes: number[] = [];
    let id = '';
    try {
      for (let k = 0; k < names.length; k++) {
        const path = join(dir, names[k]);
        const fh = await open(path, 'r');
        files.push(fh);
        const b = Buffer.alloc(TAPE_HEADER_SIZE);
        await fh.read(b, 0, TAPE_HEADER_SIZE, 0);
        const h = decodeTapeHeader(b, path);
        if (h.tape !== k + 1) throw new SnapplaneError('BAD_STREAM', `${path} is tape ${h.tape}, expected tape ${k + 1} (a tape is missing or misplaced)`, { path });
        if (k === 0) id = h.streamId;
        else if (h.streamId !== id) throw new SnapplaneError('BAD_STREAM', `${path} belongs to another backup`, { path });
        if (h.last !== (k === names.length - 1)) throw new SnapplaneError('BAD_STREAM', h.last ? `${path} is the last tape, but more follow` : `${path} is not the last tape, and no tape ${k + 2} is in ${dir}`, { path });
        const { size } = await fh.stat();
        if (size < TAPE_HEADER_SIZE + Math.ceil(h.dataBytes / TAPE_BLOCK) * TAPE_BLOCK) throw new SnapplaneError('BAD_STREAM', `${path} is truncated`, { path });
        sizes.push(h.dataBytes);
      }
    } catch (e) {
      for (const f of files) await f.close();
      throw e;
    }
    return new TapeSet(files, sizes, id);
  }

  /** Stream bytes on each tape, in tape order (to say which tape holds a stream offset). */
  get tapeBytes(): readonly number[] {
    return this.sizes;
  }

  /** Stream bytes in the whole set. */
  get size(): number {
    return this.sizes.reduce((a, b) => a + b, 0);
  }

  /** Reads stream bytes [offset, offset + buf.length) into `buf`. */
  async read(buf: Buffer, offset: number): Promise<void> {
    let done = 0;
    let t = 0;
    let base = 0;
    while (done < buf.length) {
      while (t < this.sizes.length && offset + done >= base + this.sizes[t]) base += this.sizes[t++];
      if (t >= this.sizes.length) throw new SnapplaneError('BAD_STREAM', `read past the end of the tape set at stream byte ${offset + done}`);
      const within = offset + done - base;
      const n = Math.min(buf.length - done, this.sizes[t] - within);
      await this.files[t].read(buf, done, n, TAPE_HEADER_SIZE + within);
      done += n;
    }
  }

  /** The stream, start to end. */
  async *bytes(): AsyncGenerator<Buffer> {
    const step = 1 << 20;
    for (let o = 0; o < this.size; o += step) {
      const b = Buffer.alloc(Math.min(step, this.size - o));
      await this.read(b, o);
      yield b;
    }
  }

  async close(): Promise<void> {
    for (const f of this.files) await f.close();
  }
}

/** True when a backup path is a tape folder (a directory) rather than a stream file. */
export async function isTapeFolder(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
