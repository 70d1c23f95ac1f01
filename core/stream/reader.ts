/**
 * The stream reader: frames records out of a byte stream and verifies each one as it arrives: checksum (which
 * covers the stream id, sequence number and VBN), sequence, record order, VBN order, and at the end the counts
 * and the XXH64 digest of everything before the end record. Nothing is trusted before it is verified.
 */
import { Xxh64 } from '@node-rs/xxhash';
import { inflateRawSync } from 'node:zlib';
import { uncompressSync } from 'lz4-napi';
import { z } from 'zod';
import { SnapplaneError } from '../common/errors.js';
import { alignedBufferSet } from '../common/aligned-buffers.js';
import { Spares } from '../common/spare-buffers.js';
import { isReused } from '../common/reused-memory.js';
import { BLOCK_SIZE } from '../common/units.js';
import { WORDS_PER_CHUNK } from '../planes/bit-plane.js';
import {
  MAX_PAYLOAD,
  MAX_RUN_BLOCKS,
  NO_STREAM_ID,
  PREAMBLE_SIZE,
  RECORD_HEADER_SIZE,
  RecordFlag,
  RecordType,
  checkPreamble,
  preambleFault,
  decodeRecordHeader,
  digestHex,
  recordChecksum,
  streamIdBytes,
  type RecordHeader,
  type StreamHeader,
  type StreamTrailer,
} from './format.js';

/** Gathered reads kept valid at once: more than the receiver's writes in flight plus the record in hand. */
const SPAN_RING = 8;
/** Gathered reads this long or longer are record payloads (a header is 32 bytes); they have a ring of their own. */
const PAYLOAD_SPAN = 4096;
/** An aligned ring's buffers: the largest payload, in whole 64 KiB pages. */
const ALIGNED_SPAN_BYTES = Math.ceil(MAX_PAYLOAD / 65536) * 65536;

/** Page-aligned payload rings kept between receives (spare-buffers.ts): each is 8 MiB of first touches when new. */
const spareAlignedRings = new Spares(() => alignedBufferSet(SPAN_RING, ALIGNED_SPAN_BYTES), 2);

/**
 * A ring of reused buffers that reads spanning input buffers are gathered into (fresh 1 MiB buffers cost more in
 * page faults than the data's disk read): what `take` returns stays valid for the next SPAN_RING - 1 takes.
 */
class ScratchRing {
  private buffers: Buffer[] = [];
  private next = 0;
  /** The page-aligned ring taken from the spares, as taken. */
  private aligned: Buffer[] | null = null;

  constructor(private readonly minBytes: number) {}

  /** `n` bytes of the next buffer of the ring. */
  take(n: number): Buffer {
    let b = this.buffers[this.next % SPAN_RING];
    if (!b || b.length < n) {
      b = Buffer.allocUnsafe(Math.max(n, this.minBytes));
      this.buffers[this.next % SPAN_RING] = b;
    }
    this.next++;
    return b.subarray(0, n);
  }

  /** From now on, a page-aligned ring (buffers handed out before stay with their holders). */
  align(): void {
    this.aligned = spareAlignedRings.take();
    // A copy: a slot replaced by a bigger buffer must not change the spare.
    this.buffers = [...this.aligned];
  }

  /** The aligned ring, if any, goes back to the spares; later takes use fresh memory. */
  giveBack(): void {
    if (this.aligned) spareAlignedRings.give(this.aligned);
    this.aligned = null;
    this.buffers = [];
  }
}

/** Pulls exact byte counts out of an async sequence of buffers. */
class ByteSource {
  private chunks: Buffer[] = [];
  /** Spanning reads: short ones (record headers), and payloads, each kind in a ring of its own. */
  private readonly shortSpans = new ScratchRing(PAYLOAD_SPAN);
  private readonly payloadSpans = new ScratchRing(1 << 20);
  private aligned = false;
  /** Set once input in reused memory arrives: from then on every read copies (see read). */
  private reused = false;
  private have = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer | Uint8Array | string>;
  /** Bytes consumed so far (the stream offset of the next byte). */
  offset = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** Exactly `n` bytes, or null at a clean end of input before the first of them. */
  async read(n: number, what: string): Promise<Buffer | null> {
    if (n === 0) return Buffer.alloc(0);
    let out: Buffer | null = null;
    let o = 0;
    for (;;) {
      if (this.reused) {
        // Input in reused memory (a connection's receive slabs) is valid only until the next is asked for: what is
        // here is copied out first, into a ring like spanning reads.
        while (o < n && this.chunks.length > 0) {
          out ??= this.ring(n).take(n);
          o += this.copyOut(out, o, n - o);
        }
        if (o === n) break;
      } else if (this.have >= n) {
        out = this.take(n);
        o = n;
        break;
      }
      const r = this.done ? null : await this.it.next();
      if (!r || r.done) {
        this.done = true;
        if (o + this.have === 0) return null;
        throw new SnapplaneError('BAD_STREAM', `stream truncated at byte ${this.offset + o + this.have}: ${what} needs ${n} bytes, ${o + this.have} left`);
      }
      const b = typeof r.value === 'string' ? Buffer.from(r.value) : Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      if (b.length > 0) {
        this.chunks.push(b);
        this.have += b.length;
        if (isReused(b)) this.reused = true;
      }
    }
    this.offset += n;
    return out;
  }

  /** The ring a read of `n` bytes is gathered into: short reads (record headers) and payloads each have their own. */
  private ring(n: number): ScratchRing {
    return n >= PAYLOAD_SPAN ? this.payloadSpans : this.shortSpans;
  }

  /** Copies up to `n` bytes from the front of the input into `out` at `at`, consuming them; returns how many. */
  private copyOut(out: Buffer, at: number, n: number): number {
    const c = this.chunks[0];
    const take = Math.min(c.length, n);
    c.copy(out, at, 0, take);
    if (take === c.length) this.chunks.shift();
    else this.chunks[0] = c.subarray(take);
    this.have -= take;
    return take;
  }

  /** `n` bytes from input that holds them: a slice of one buffer, or gathered into a ring when they span several. */
  private take(n: number): Buffer {
    if (this.chunks[0].length >= n) {
      const out = this.chunks[0].subarray(0, n);
      this.chunks[0] = this.chunks[0].subarray(n);
      if (this.chunks[0].length === 0) this.chunks.shift();
      this.have -= n;
      return out;
    }
    // Gathered into a ring: valid for the next SPAN_RING - 1 such reads of its kind (short ones, or payloads).
    const out = this.ring(n).take(n);
    for (let o = 0; o < n; ) o += this.copyOut(out, o, n - o);
    return out;
  }

  /**
   * Gathers payloads into page-aligned memory from now on: a receive writing around the page cache writes them as
   * they are, instead of copying each into an aligned buffer first.
   */
  alignPayloads(): void {
    if (this.aligned) return;
    this.payloadSpans.align();
    this.aligned = true;
  }

  /** See StreamReader.releaseBuffers. */
  releaseBuffers(): void {
    this.payloadSpans.giveBack();
  }

  /** Stops the input early (closes the file or tape behind it). */
  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }

  /** True when the input has no bytes left. */
  async atEnd(): Promise<boolean> {
    if (this.have > 0) return false;
    while (!this.done && this.have === 0) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else if (r.value.length > 0) {
        const b = typeof r.value === 'string' ? Buffer.from(r.value) : Buffer.from(r.value);
        this.chunks.push(b);
        this.have += b.length;
      }
    }
    return this.have === 0;
  }
}

const inodeB64 = z.string().refine((s) => Buffer.from(s, 'base64').length === 256, 'a 256-byte inode in base64');
const identity = z.object({ id: z.number().int().positive(), name: z.string().min(1), generation: z.number().int().nonnegative(), createdAtMs: z.number().int().nonnegative() });
const headerSchema = z.object({
  format: z.literal('snapplane-image-stream'),
  version: z.literal(1),
  streamId: z.string().regex(/^[0-9a-f]{32}$/),
  sourceVolume: z.string().min(1),
  sourceLabel: z.string(),
  blockSize: z.literal(BLOCK_SIZE),
  blockCount: z.number().int().positive(),
  kind: z.enum(['full', 'incremental']),
  expression: z.string(),
  base: identity.nullable(),
  order: z.enum(['vbn', 'raid', 'tape']),
  codec: z.enum(['none', 'lz4']),
  createdAt: z.string(),
  snapshots: z.array(identity.extend({ flags: z.number().int().nonnegative(), inodeCount: z.number().int().positive(), inodeFile: inodeB64, blockMap: inodeB64 })).min(1).max(255),
  imageBlocks: z.number().int().nonnegative(),
  resumeFromVbn: z.number().int().nonnegative().nullable(),
  raidMembers: z.number().int().positive().nullable(),
});
const trailerSchema = z.object({ records: z.number().int(), blocks: z.number().int(), dataBytes: z.number().int(), digest: z.string().regex(/^[0-9a-f]{16}$/) });

export type StreamItem =
  | { type: 'image' | 'dealloc'; chunk: number; words: Uint32Array }
  | { type: 'plane'; ordinal: number; chunk: number; words: Uint32Array }
  | { type: 'blocks'; vbn: number; count: number; data: Buffer }
  | { type: 'position'; table: Buffer }
  | { type: 'end'; trailer: StreamTrailer };

const PHASE: Record<number, number> = { [RecordType.image]: 1, [RecordType.dealloc]: 2, [RecordType.plane]: 3, [RecordType.blocks]: 4, [RecordType.position]: 5, [RecordType.end]: 6 };

/** Reads and verifies a stream: first its header, then its records one by one. */
export class StreamReader {
  private readonly src: ByteSource;
  private readonly digest = new Xxh64(0n);
  private id: Buffer = NO_STREAM_ID;
  private seq = 0;
  private phase = 0;
  private lastKey = -1;
  private lastOrdinal = -1;
  private blocks = 0;
  private finished = false;
  /** The record being read: its number and the stream byte it starts at (where a fault is reported). */
  private at = { seq: 0, start: PREAMBLE_SIZE };
  /** Where a stream byte is on the backup's media, when the source can say (a tape set: which tape). */
  private readonly place: ((offset: number, end?: number) => string | null) | undefined;
  header!: StreamHeader;

  /** `source` may also say where a stream byte is on its media (backupBytes' `place`): faults then name the tape. */
  constructor(source: AsyncIterable<Buffer | Uint8Array | string> & { place?: (offset: number, end?: number) => string | null }) {
    this.src = new ByteSource(source);
    this.place = source.place?.bind(source);
  }

  /**
   * From now on, gathers record payloads into page-aligned buffers, so a device writing around the page cache
   * takes them as they are (a block record's data stays valid while SPAN_RING - 1 later records are read).
   */
  alignPayloads(): void {
    this.src.alignPayloads();
  }

  /**
   * Gives the aligned payload ring back for later receives. Only once nothing holds a buffer this reader handed out
   * (the receive has ended and its writes have settled); the reader may go on, in fresh memory.
   */
  releaseBuffers(): void {
    this.src.releaseBuffers();
  }

  /** Releases the input (a file or tape set) when the stream is abandoned before its end. */
  close(): Promise<void> {
    return this.src.close();
  }

  /** Bytes read so far. */
  get offset(): number {
    return this.src.offset;
  }

  private fail(message: string): SnapplaneError {
    const where = this.place?.(this.at.start, this.src.offset);
    return new SnapplaneError('BAD_STREAM', `${message} (record ${this.at.seq}, which starts at stream byte ${this.at.start}${where ? `, ${where}` : ''})`);
  }

  private async record(): Promise<{ h: RecordHeader; payload: Buffer }> {
    this.at = { seq: this.seq, start: this.src.offset };
    const raw = await this.src.read(RECORD_HEADER_SIZE, 'a record header');
    if (!raw) throw new SnapplaneError('BAD_STREAM', `stream truncated at byte ${this.src.offset}: it ends before its end record`);
    const h = decodeRecordHeader(raw);
    if (h.payloadLength > MAX_PAYLOAD) throw this.fail(`record payload of ${h.payloadLength} bytes is larger than any valid record`);
    const payload = (await this.src.read(h.payloadLength, 'a record payload')) ?? Buffer.alloc(0);
    if (payload.length !== h.payloadLength) throw new SnapplaneError('BAD_STREAM', `stream truncated at byte ${this.src.offset}`);
    const id = h.type === RecordType.header ? NO_STREAM_ID : this.id;
    if (recordChecksum(id, raw, payload) !== h.checksum) {
      throw this.fail(`record checksum mismatch (corrupted, or spliced from another stream)`);
    }
    if (h.seq !== this.seq) throw this.fail(`record out of sequence: expected number ${this.seq}, found ${h.seq} (dropped, duplicated or reordered records)`);
    if (h.type !== RecordType.end) {
      this.digest.update(raw);
    }
    this.seq++;
    return { h, payload };
  }

  /** Reads the preamble and the header record. */
  async open(): Promise<StreamHeader> {
    const pre = await this.src.read(PREAMBLE_SIZE, 'the preamble');
    if (!pre) throw new SnapplaneError('BAD_STREAM', 'the stream is empty');
    if (!checkPreamble(pre)) {
      // Another version, or damage: the header record's checksum tells which, before any version is believed.
      const p = Buffer.from(pre);
      const raw = await this.src.read(RECORD_HEADER_SIZE, 'a record header').catch(() => null);
      const rawCopy = raw ? Buffer.from(raw) : null;
      const payload = rawCopy && rawCopy.readUInt32LE(4) <= MAX_PAYLOAD ? await this.src.read(rawCopy.readUInt32LE(4), 'a record payload').catch(() => null) : null;
      throw preambleFault(p, rawCopy, payload);
    }
    this.digest.update(pre);
    const { h, payload } = await this.record();
    if (h.type !== RecordType.header) throw this.fail('the first record is not a header');
    let doc: unknown;
    try {
      doc = JSON.parse(payload.toString('utf8'));
    } catch {
      throw this.fail('the header is not valid JSON');
    }
    const parsed = headerSchema.safeParse(doc);
    if (!parsed.success) throw this.fail(`bad stream header: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    this.header = parsed.data as StreamHeader;
    this.id = streamIdBytes(this.header.streamId);
    if ((this.header.kind === 'incremental') !== (this.header.base !== null)) throw this.fail('header kind and base disagree');
    return this.header;
  }

  private bitmap(h: RecordHeader, payload: Buffer): Uint32Array {
    if (h.flags !== RecordFlag.deflate) throw this.fail('bitmap record without the deflate flag');
    let raw: Buffer;
    try {
      raw = inflateRawSync(payload, { maxOutputLength: BLOCK_SIZE });
    } catch {
      throw this.fail('bitmap record does not inflate');
    }
    if (raw.length !== BLOCK_SIZE) throw this.fail(`bitmap record inflates to ${raw.length} bytes, not 4096`);
    if (h.vbn * WORDS_PER_CHUNK * 32 >= this.header.blockCount) throw this.fail(`bitmap chunk ${h.vbn} is past the source's ${this.header.blockCount} blocks`);
    const w = new Uint32Array(WORDS_PER_CHUNK);
    new Uint8Array(w.buffer).set(raw);
    return w;
  }

  /** The next verified record, or the end record (after which nothing may follow). */
  async next(): Promise<StreamItem> {
    if (this.finished) throw new SnapplaneError('BAD_STREAM', 'read past the end record');
    const { h, payload } = await this.record();
    const phase = PHASE[h.type];
    if (phase === undefined) throw this.fail('a second header record');
    if (phase < this.phase) throw this.fail(`record type ${h.type} after type-${Object.keys(PHASE).find((k) => PHASE[Number(k)] === this.phase)} records (records reordered)`);
    if (phase > this.phase) {
      this.phase = phase;
      this.lastKey = -1;
      this.lastOrdinal = -1;
    }
    switch (h.type) {
      case RecordType.image:
      case RecordType.dealloc: {
        if (h.vbn <= this.lastKey) throw this.fail('bitmap chunks out of order');
        this.lastKey = h.vbn;
        return { type: h.type === RecordType.image ? 'image' : 'dealloc', chunk: h.vbn, words: this.bitmap(h, payload) };
      }
      case RecordType.plane: {
        if (h.count >= this.header.snapshots.length) throw this.fail(`plane record for snapshot ordinal ${h.count}, but the header carries ${this.header.snapshots.length}`);
        if (h.count < this.lastOrdinal || (h.count === this.lastOrdinal && h.vbn <= this.lastKey)) throw this.fail('plane chunks out of order');
        this.lastOrdinal = h.count;
        this.lastKey = h.vbn;
        return { type: 'plane', ordinal: h.count, chunk: h.vbn, words: this.bitmap(h, payload) };
      }
      case RecordType.blocks: {
        if (h.count < 1 || h.count > MAX_RUN_BLOCKS) throw this.fail(`block record of ${h.count} blocks`);
        if (h.vbn < this.lastKey) throw this.fail(`block record for VBN ${h.vbn} after VBN ${this.lastKey - 1} (records reordered or duplicated)`);
        if (h.vbn + h.count > this.header.blockCount) throw this.fail(`block record for VBNs ${h.vbn}..${h.vbn + h.count - 1} past the source's ${this.header.blockCount} blocks`);
        this.lastKey = h.vbn + h.count;
        let data = payload;
        if (h.flags & RecordFlag.codec) {
          if (this.header.codec !== 'lz4') throw this.fail('compressed record in an uncompressed stream');
          try {
            data = uncompressSync(payload);
          } catch {
            throw this.fail(`block record at VBN ${h.vbn} does not decompress`);
          }
        } else if (h.flags !== 0) throw this.fail(`unknown record flags ${h.flags}`);
        if (data.length !== h.count * BLOCK_SIZE) throw this.fail(`block record at VBN ${h.vbn} holds ${data.length} bytes, not ${h.count} blocks`);
        this.blocks += h.count;
        return { type: 'blocks', vbn: h.vbn, count: h.count, data };
      }
      case RecordType.position:
        if (payload.length !== h.count * 20) throw this.fail('position table of the wrong size');
        return { type: 'position', table: payload };
      default: {
        let doc: unknown;
        try {
          doc = JSON.parse(payload.toString('utf8'));
        } catch {
          throw this.fail('end record is not valid JSON');
        }
        const t = trailerSchema.safeParse(doc);
        if (!t.success) throw this.fail('bad end record');
        const trailer = t.data;
        if (trailer.records !== this.seq) throw this.fail(`end record counts ${trailer.records} records, the stream had ${this.seq}`);
        if (trailer.blocks !== this.blocks) throw this.fail(`end record counts ${trailer.blocks} blocks, the stream had ${this.blocks}`);
        if (trailer.digest !== digestHex(this.digest)) throw this.fail('stream digest mismatch');
        if (!(await this.src.atEnd())) throw this.fail('bytes after the end record');
        this.finished = true;
        return { type: 'end', trailer };
      }
    }
  }
}
