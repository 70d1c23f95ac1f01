/**
 * The image stream's bytes: the preamble, the 32-byte record header, record types and the header document.
 * `core/STREAM.md` describes the same layout in prose; this file is what is actually written.
 */
import { Xxh64, xxh64 } from '@node-rs/xxhash';
import { SnapplaneError } from '../common/errors.js';

export const STREAM_MAGIC = Buffer.from('SNAPSTRM', 'ascii');
export const STREAM_VERSION = 1;
export const PREAMBLE_SIZE = 16;
export const RECORD_HEADER_SIZE = 32;
/** Blocks per block record at most (1 MiB of data): small enough to verify and resume at, large enough to amortize. */
export const MAX_RUN_BLOCKS = 256;
/** The largest payload a reader accepts (a compressed run can exceed its raw size a little). */
export const MAX_PAYLOAD = MAX_RUN_BLOCKS * 4096 + 65536;

export const RecordType = {
  header: 1,
  image: 2,
  plane: 3,
  dealloc: 4,
  blocks: 5,
  position: 6,
  end: 7,
} as const;
export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];

export const RecordFlag = {
  /** The payload is compressed with the stream's codec (block records). */
  codec: 1,
  /** The payload is a raw DEFLATE (RFC 1951) of a 4096-byte bitmap (image, plane and dealloc records). */
  deflate: 2,
} as const;

export type StreamOrder = 'vbn' | 'raid' | 'tape';
export type StreamCodec = 'none' | 'lz4';

/** One snapshot as it travels in a stream: its table entry with the two saved roots as raw 256-byte inodes. */
export interface StreamSnapshot {
  id: number;
  name: string;
  flags: number;
  createdAtMs: number;
  generation: number;
  inodeCount: number;
  /** base64 of the 256-byte inode record of the snapshot's inode file. */
  inodeFile: string;
  /** base64 of the 256-byte inode record of the snapshot's block map file. */
  blockMap: string;
}

/** The identity of a snapshot both sides must agree on (ids and names alone could collide across volumes). */
export interface SnapshotIdentity {
  id: number;
  name: string;
  generation: number;
  createdAtMs: number;
}

/** The JSON document in the header record. */
export interface StreamHeader {
  format: 'snapplane-image-stream';
  version: number;
  /** 32 hex digits, random per stream (kept when a stream is resumed). */
  streamId: string;
  sourceVolume: string;
  sourceLabel: string;
  blockSize: number;
  blockCount: number;
  kind: 'full' | 'incremental';
  expression: string;
  base: SnapshotIdentity | null;
  order: StreamOrder;
  codec: StreamCodec;
  createdAt: string;
  /** Snapshots the stream carries (every name of the expression's sum), oldest first; the last becomes current. */
  snapshots: StreamSnapshot[];
  /** Blocks in the image (what the block records will carry in total). */
  imageBlocks: number;
  /** For a resumed stream: block records before this VBN are not sent again. */
  resumeFromVbn: number | null;
  /** RAID-4 sources: data members the `raid` order interleaves (records end at stripe boundaries). */
  raidMembers: number | null;
}

/** The end record's document. */
export interface StreamTrailer {
  records: number;
  blocks: number;
  dataBytes: number;
  /** XXH64 (seed 0; 16 hex digits) of the preamble and every record header before the end record (headers carry their payloads' checksums). */
  digest: string;
}

/** A decoded record header. */
export interface RecordHeader {
  type: RecordTypeCode;
  flags: number;
  payloadLength: number;
  seq: number;
  vbn: number;
  count: number;
  checksum: number;
}

/** The 16-byte preamble: magic, version, and 4 zero bytes. */
export function encodePreamble(): Buffer {
  const b = Buffer.alloc(PREAMBLE_SIZE);
  STREAM_MAGIC.copy(b, 0);
  b.writeUInt32LE(STREAM_VERSION, 8);
  return b;
}

/**
 * Checks the preamble's magic (refusing anything that is not an image stream); true when it is an intact version-1
 * preamble. False means the caller reads the header record and refuses the stream with preambleFault's reason.
 */
export function checkPreamble(b: Buffer): boolean {
  if (b.length < PREAMBLE_SIZE || !b.subarray(0, 8).equals(STREAM_MAGIC)) {
    throw new SnapplaneError('BAD_STREAM', 'not a Snapplane image stream (bad magic at byte 0)');
  }
  return b.readUInt32LE(8) === STREAM_VERSION && b.readUInt32LE(12) === 0;
}

/**
 * Why a preamble checkPreamble did not accept is refused. The preamble has no checksum of its own, but the header
 * record after it does (`raw` and `payload`, null where the stream ends first): only a header record that checks
 * out and names the preamble's version makes it a stream of another version; anything else is a damaged stream.
 */
export function preambleFault(pre: Buffer, raw: Buffer | null, payload: Buffer | null): SnapplaneError {
  const version = pre.readUInt32LE(8);
  let said: unknown;
  let intact = false;
  if (raw && raw.length === RECORD_HEADER_SIZE && payload && raw.readUInt8(0) === RecordType.header && payload.length === raw.readUInt32LE(4)) {
    intact = recordChecksum(NO_STREAM_ID, raw, payload) === raw.readUInt32LE(28);
    if (intact) {
      try {
        said = (JSON.parse(payload.toString('utf8')) as { version?: unknown }).version;
      } catch {
        intact = false;
      }
    }
  }
  if (intact && said === version && version !== STREAM_VERSION) {
    return new SnapplaneError('BAD_STREAM', `image stream version ${version} is not supported (this build reads version ${STREAM_VERSION})`);
  }
  if (intact) {
    const what = version !== STREAM_VERSION ? `says version ${version}` : `has ${pre.readUInt32LE(12)} in its zero field (bytes 12..15)`;
    return new SnapplaneError('BAD_STREAM', `the stream is damaged: its preamble (bytes 0..15) ${what}, but its header record, which passes its checksum, says version ${String(said)}`);
  }
  return new SnapplaneError('BAD_STREAM', `the stream is damaged at its start: its preamble says version ${version}${version === STREAM_VERSION ? ' with a non-zero zero field' : ''} and its header record fails its checksum (this build reads version ${STREAM_VERSION})`);
}

const CHECKSUM_SCRATCH = Buffer.alloc(64 * 1024);

/**
 * The record checksum: the low 32 bits of XXH64 (seed 0) over the stream id, header bytes 0..27 and the payload,
 * so a record spliced from another stream, moved, or given another VBN fails. XXH64 runs at about three times
 * CRC-32's speed here, and a copy hashes every byte twice (sender and receiver).
 */
export function recordChecksum(streamId: Buffer, header: Buffer, payload: Buffer): number {
  // Most records are a few blocks: one hash call over a scratch copy costs far less than a streaming hasher's
  // three native calls and object (a 4 KiB record: about 1 µs against 4 µs). Both hash the same bytes.
  const n = streamId.length + 28 + payload.length;
  if (n <= CHECKSUM_SCRATCH.length) {
    streamId.copy(CHECKSUM_SCRATCH, 0);
    header.copy(CHECKSUM_SCRATCH, streamId.length, 0, 28);
    payload.copy(CHECKSUM_SCRATCH, streamId.length + 28);
    return Number(xxh64(CHECKSUM_SCRATCH.subarray(0, n), 0n) & 0xffffffffn);
  }
  const h = new Xxh64(0n);
  h.update(streamId);
  h.update(header.subarray(0, 28));
  h.update(payload);
  return Number(h.digest() & 0xffffffffn);
}

/** Encodes a record header with its checksum. */
export function encodeRecordHeader(streamId: Buffer, h: Omit<RecordHeader, 'checksum'>, payload: Buffer): Buffer {
  const b = Buffer.alloc(RECORD_HEADER_SIZE);
  b.writeUInt8(h.type, 0);
  b.writeUInt8(h.flags, 1);
  b.writeUInt32LE(h.payloadLength, 4);
  b.writeBigUInt64LE(BigInt(h.seq), 8);
  b.writeBigUInt64LE(BigInt(h.vbn), 16);
  b.writeUInt32LE(h.count, 24);
  b.writeUInt32LE(recordChecksum(streamId, b, payload), 28);
  return b;
}

/** Decodes a record header (the checksum is verified once the payload is read). */
export function decodeRecordHeader(b: Buffer): RecordHeader {
  const type = b.readUInt8(0);
  if (type < RecordType.header || type > RecordType.end) throw new SnapplaneError('BAD_STREAM', `unknown record type ${type}`);
  if (b.readUInt16LE(2) !== 0) throw new SnapplaneError('BAD_STREAM', 'record header has non-zero reserved bytes');
  const seq = b.readBigUInt64LE(8);
  const vbn = b.readBigUInt64LE(16);
  if (seq > BigInt(Number.MAX_SAFE_INTEGER) || vbn > BigInt(Number.MAX_SAFE_INTEGER)) throw new SnapplaneError('BAD_STREAM', 'record sequence number or VBN out of range');
  return {
    type: type as RecordTypeCode,
    flags: b.readUInt8(1),
    payloadLength: b.readUInt32LE(4),
    seq: Number(seq),
    vbn: Number(vbn),
    count: b.readUInt32LE(24),
    checksum: b.readUInt32LE(28),
  };
}

/** The digest as it is written in the end record: 16 lowercase hex digits. */
export function digestHex(h: Xxh64): string {
  return h.digest().toString(16).padStart(16, '0');
}

/** Stream ids travel as 32 hex digits and enter checksums as their 16 bytes. */
export function streamIdBytes(id: string): Buffer {
  if (!/^[0-9a-f]{32}$/.test(id)) throw new SnapplaneError('BAD_STREAM', `bad stream id '${id}'`);
  return Buffer.from(id, 'hex');
}

/** The header record is checksummed with an all-zero stream id: the reader learns the id from it. */
export const NO_STREAM_ID = Buffer.alloc(16);
