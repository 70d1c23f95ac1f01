/**
 * The spool of a receive: incoming blocks that land on blocks the destination still uses (its own metadata, changes
 * a forced receive discards) wait here, in a sidecar file, until the stream has verified (receive.ts). A record is
 * the VBN (u64 LE) and the block. A resume token names the blocks that landed, held ones included, so the spool it
 * was saved with must stay whole until the resumed receive's own token replaces it: a resumed receive keeps the file
 * and takes its earlier records from where they are, rather than writing them into a new file (a receive killed
 * between emptying the file and writing them again left a token whose held blocks were gone: every later resume then
 * failed "held blocks never arrived", for ever).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { BLOCK_SIZE } from '../common/units.js';
import { writeFully } from '../common/write-fully.js';

const RECORD = 8 + BLOCK_SIZE;

/** Held blocks by VBN, in a file. */
export class Spool {
  private readonly at = new Map<number, number>();

  private constructor(
    readonly file: FileHandle,
    private end: number,
  ) {}

  /**
   * Opens the spool at `path`: for a resumed receive (`keep`) the file as the interrupted one left it, with its
   * whole records (a torn last one is written over), none of them held yet; otherwise an empty one.
   */
  static async open(path: string, keep: boolean): Promise<{ spool: Spool; earlier: { vbn: number; offset: number }[] }> {
    const file = keep ? await open(path, 'r+').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? open(path, 'w+') : Promise.reject(e))) : await open(path, 'w+');
    const whole = keep ? Math.floor((await file.stat()).size / RECORD) : 0;
    const earlier: { vbn: number; offset: number }[] = [];
    const h = Buffer.alloc(8);
    for (let k = 0; k < whole; k++) {
      await file.read(h, 0, 8, k * RECORD);
      earlier.push({ vbn: Number(h.readBigUInt64LE(0)), offset: k * RECORD + 8 });
    }
    return { spool: new Spool(file, whole * RECORD), earlier };
  }

  /** Held blocks. */
  get size(): number {
    return this.at.size;
  }

  /** Appends a held block (a later copy of the same VBN replaces it). */
  async add(vbn: number, data: Uint8Array): Promise<void> {
    const h = Buffer.alloc(8);
    h.writeBigUInt64LE(BigInt(vbn));
    const offset = this.end;
    this.end += RECORD;
    await writeFully(this.file, Buffer.concat([h, data]), 0, RECORD, offset);
    this.at.set(vbn, offset + 8);
  }

  /** Holds the block an earlier receive spooled at `offset` (from `open`'s list) for `vbn`, where it is. */
  keep(vbn: number, offset: number): void {
    this.at.set(vbn, offset);
  }

  /** The held VBNs, in increasing order. */
  vbns(): number[] {
    return [...this.at.keys()].sort((a, b) => a - b);
  }

  /** The block held for `vbn`. */
  read(vbn: number): Promise<Buffer> {
    return this.readAt(this.at.get(vbn)!);
  }

  /** The block spooled at `offset`. */
  async readAt(offset: number): Promise<Buffer> {
    const b = Buffer.alloc(BLOCK_SIZE);
    await this.file.read(b, 0, BLOCK_SIZE, offset);
    return b;
  }
}
