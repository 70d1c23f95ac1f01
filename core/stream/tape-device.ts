/**
 * Tape backup to a tape device path (a character device such as /dev/nst0, or a FIFO): written strictly in order,
 * because a tape cannot go back to rewrite a header. Each cartridge holds a leader block, the stream in tape blocks,
 * and a trailer block that says how many stream bytes the cartridge holds and whether it is the last; closing the
 * device writes the filemark after it. Between cartridges a callback runs (the CLI's --next-tape hook or a prompt).
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { SnapplaneError } from '../common/errors.js';
import { TAPE_BLOCK, TAPE_HEADER_SIZE, TAPE_MAGIC, decodeTapeHeader, encodeTapeHeader, tapeBlocks, type TapeHeader, type TapeWriteOptions } from './tape.js';

/** Called before tape `tape` (2, 3, …) is written or read at `path`; throwing stops the transfer. */
export type NextTape = (tape: number, path: string) => Promise<void>;

/** True when `path` is a device or FIFO (written and read in sequence), not a folder or a regular file. */
export async function isTapeDevice(path: string): Promise<boolean> {
  try {
    const st = await stat(path);
    return st.isCharacterDevice() || st.isFIFO() || st.isBlockDevice();
  } catch {
    return false;
  }
}

/** True when a regular file starts like a device tape (a tape copied to a file, e.g. with `dd bs=64k`). */
export async function isTapeImage(path: string): Promise<boolean> {
  let fh: FileHandle | null = null;
  try {
    fh = await open(path, 'r');
    const b = Buffer.alloc(12);
    const { bytesRead } = await fh.read(b, 0, 12, 0);
    return bytesRead === 12 && b.subarray(0, 8).equals(TAPE_MAGIC) && b.readUInt32LE(8) === 2;
  } catch {
    return false;
  } finally {
    await fh?.close();
  }
}

function tapeError(path: string, tape: number, what: string): SnapplaneError {
  return new SnapplaneError('BAD_STREAM', `${path} (tape ${tape}): ${what}`, { path });
}

/** Writes a stream to a tape device, one cartridge after another; returns the tapes written and the stream bytes. */
export async function writeTapeDevice(path: string, stream: AsyncIterable<Buffer>, o: TapeWriteOptions & { beforeTape?: NextTape }): Promise<{ tapes: number; bytes: number }> {
  // The leader and the trailer take a tape block each.
  const perTape = Math.floor((o.tapeSize - 2 * TAPE_BLOCK) / TAPE_BLOCK) * TAPE_BLOCK;
  if (perTape < TAPE_BLOCK) throw new SnapplaneError('INVALID', `--tape-size must be at least ${3 * TAPE_BLOCK} bytes on a tape device`);
  let tape = 0;
  let fh: FileHandle | null = null;
  let inTape = 0;
  let total = 0;
  const header = (role: 1 | 2, last: boolean): Buffer => {
    const b = Buffer.alloc(TAPE_BLOCK);
    const h: TapeHeader = { tape, streamId: o.streamId, capacity: 2 * TAPE_BLOCK + perTape, dataBytes: role === 1 ? 0 : inTape, last, label: o.label };
    encodeTapeHeader(h, 2, role).copy(b);
    return b;
  };
  // One write per tape block: on a tape drive each write is one block on the medium.
  const put = async (buf: Buffer): Promise<void> => {
    let written = 0;
    try {
      written = (await fh!.write(buf, 0, TAPE_BLOCK)).bytesWritten;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EIO') {
        throw new SnapplaneError('IO', `the tape in ${path} (tape ${tape}) ended after ${inTape} bytes, before --tape-size; give a smaller --tape-size`, { path, cause: e });
      }
      throw new SnapplaneError('IO', `writing tape ${tape} to ${path}: ${(e as Error).message}`, { path, cause: e });
    }
    if (written !== TAPE_BLOCK) throw new SnapplaneError('IO', `the tape in ${path} (tape ${tape}) took ${written} of ${TAPE_BLOCK} bytes of a block: it is full or the device blocks differently`, { path });
  };
  const finish = async (last: boolean): Promise<void> => {
    await put(header(2, last));
    await fh!.close();
    fh = null;
  };
  const startTape = async (): Promise<void> => {
    tape++;
    if (tape > 1) {
      if (!o.beforeTape) throw new SnapplaneError('INVALID', `the backup needs tape ${tape} in ${path}: give --next-tape <command> to change cartridges (or run on a terminal to be prompted)`, { path });
      await o.beforeTape(tape, path);
    }
    try {
      fh = await open(path, 'w');
    } catch (e) {
      throw new SnapplaneError('IO', `cannot open tape device ${path} for tape ${tape}: ${(e as Error).message}`, { path, cause: e });
    }
    inTape = 0;
    await put(header(1, false));
  };
  try {
    for await (const { block, fill } of tapeBlocks(stream)) {
      if (!fh || inTape + TAPE_BLOCK > perTape) {
        if (fh) await finish(false);
        await startTape();
      }
      await put(block);
      inTape += fill;
      total += fill;
    }
    if (!fh) await startTape(); // an empty stream still gets a cartridge with its leader and trailer
    await finish(true);
  } finally {
    await (fh as FileHandle | null)?.close();
  }
  return { tapes: tape, bytes: total };
}

/** Reads exactly one tape block (looping over the short reads of a FIFO), or null at the end of the tape. */
async function readBlock(fh: FileHandle, path: string, tape: number): Promise<Buffer | null> {
  const b = Buffer.allocUnsafe(TAPE_BLOCK);
  let got = 0;
  while (got < TAPE_BLOCK) {
    const { bytesRead } = await fh.read(b, got, TAPE_BLOCK - got, null);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  if (got === 0) return null;
  if (got < TAPE_BLOCK) throw tapeError(path, tape, `ends inside a tape block (${got} of ${TAPE_BLOCK} bytes): truncated`);
  return b;
}

/**
 * The stream on a tape device (or a tape copied to a file), cartridge after cartridge: checks each leader and
 * trailer (tape number, stream id, byte count, the last flag) and yields only the stream's bytes. `onTape` hears of
 * each cartridge once its leader checks out, before any of its bytes.
 */
export async function* readTapeDevice(path: string, o: { nextTape?: NextTape; onTape?: (tape: number) => void } = {}): AsyncGenerator<Buffer> {
  let streamId = '';
  for (let tape = 1; ; tape++) {
    if (tape > 1) {
      if (!o.nextTape) throw new SnapplaneError('INVALID', `the backup continues on tape ${tape} in ${path}: give --next-tape <command> to load it (or run on a terminal to be prompted)`, { path });
      await o.nextTape(tape, path);
    }
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new SnapplaneError('NOT_FOUND', `cannot open tape device ${path} for tape ${tape}: ${(e as Error).message}`, { path, cause: e });
    }
    try {
      const leaderBlock = await readBlock(fh, path, tape);
      if (!leaderBlock) throw tapeError(path, tape, 'the tape is empty');
      const leader = decodeTapeHeader(leaderBlock.subarray(0, TAPE_HEADER_SIZE), `${path} (tape ${tape})`, 2, 1);
      if (leader.tape !== tape) throw tapeError(path, tape, `this is tape ${leader.tape} of its set; load tape ${tape}`);
      if (tape === 1) streamId = leader.streamId;
      else if (leader.streamId !== streamId) throw tapeError(path, tape, 'this tape belongs to another backup');
      o.onTape?.(tape);
      // The trailer is the last block before the filemark, so blocks are passed on two behind the reading.
      const held: Buffer[] = [];
      let yielded = 0;
      for (;;) {
        const b = await readBlock(fh, path, tape);
        if (!b) break;
        held.push(b);
        if (held.length > 2) {
          yield held.shift()!;
          yielded++;
        }
      }
      const trailerBlock = held.pop();
      let trailer: TapeHeader;
      try {
        if (!trailerBlock) throw new Error('no trailer');
        trailer = decodeTapeHeader(trailerBlock.subarray(0, TAPE_HEADER_SIZE), `${path} (tape ${tape})`, 2, 2);
      } catch {
        throw tapeError(path, tape, 'no trailer before the end of the tape: the tape is truncated or damaged');
      }
      if (trailer.tape !== tape || trailer.streamId !== streamId) throw tapeError(path, tape, "the trailer does not match the tape's leader");
      const blocks = yielded + held.length;
      if (Math.ceil(trailer.dataBytes / TAPE_BLOCK) !== blocks) throw tapeError(path, tape, `holds ${blocks} tape blocks, but its trailer counts ${trailer.dataBytes} stream bytes`);
      if (held.length > 0) yield held[0].subarray(0, trailer.dataBytes - yielded * TAPE_BLOCK);
      if (trailer.last) return;
    } finally {
      await fh.close();
    }
  }
}
