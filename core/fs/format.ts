/**
 * The on-disk format in one place (documented in core/FORMAT.md). All integers are little-endian.
 * Changing anything here changes the format: bump FORMAT_VERSION and update FORMAT.md.
 */
import { BLOCK_SIZE } from '../common/units.js';
import { blockChecksum } from '../common/checksum.js';
import { SnapplaneError } from '../common/errors.js';

export const FORMAT_VERSION = 1;
export const FSINFO_MAGIC = Buffer.from('SNAPPLFS', 'ascii');
/** fsinfo is written at these two fixed VBNs; both are reserved (always set in every plane). */
export const FSINFO_VBNS = [0, 1] as const;
export const RESERVED_BLOCKS = 2;

export const POINTER_SIZE = 8;
export const POINTERS_PER_BLOCK = BLOCK_SIZE / POINTER_SIZE; // 512
export const POINTER_SHIFT = 9;
export const INODE_SIZE = 256;
export const INODES_PER_BLOCK = BLOCK_SIZE / INODE_SIZE; // 16
export const INODE_POINTERS = 24;
export const ROOT_INODE = 1;
export const FIRST_FREE_INODE = 2;
export const MAX_HEIGHT = 4;

/** Plane slots in the block map file: 0 active, 1..255 snapshots, 256 summary (OR of regular snapshot planes). */
export const ACTIVE_PLANE = 0;
export const MAX_SNAPSHOTS = 255;
export const SUMMARY_PLANE = 256;
export const PLANE_SLOTS = 264;

export const SNAPSHOT_ENTRY_SIZE = 1024;
export const SNAPSHOTS_PER_BLOCK = BLOCK_SIZE / SNAPSHOT_ENTRY_SIZE; // 4
export const MAX_SNAPSHOT_NAME = 128;
export const MAX_NAME = 255;

export enum InodeType {
  Free = 0,
  File = 1,
  Dir = 2,
  Symlink = 3,
}

export const SnapshotFlag = {
  shadow: 1,
  master: 2,
  hold: 4,
  /** A shadow snapshot some of whose blocks were reused: no longer consistent. */
  stale: 8,
  /** The snapshot at which the mark-on-allocate images were last swapped (their base). */
  markBase: 16,
} as const;

export interface BlockPointer {
  vbn: number;
  checksum: number;
}

export const HOLE: BlockPointer = Object.freeze({ vbn: 0, checksum: 0 });

/** Reads pointer `slot` of a block of pointers. */
export function readPointer(block: Buffer, slot: number): BlockPointer {
  const o = slot * POINTER_SIZE;
  return { vbn: block.readUInt32LE(o), checksum: block.readUInt32LE(o + 4) };
}

/** Writes pointer `slot` of a block of pointers. */
export function writePointer(block: Buffer, slot: number, p: BlockPointer): void {
  const o = slot * POINTER_SIZE;
  block.writeUInt32LE(p.vbn >>> 0, o);
  block.writeUInt32LE(p.checksum >>> 0, o + 4);
}

/** One inode record: 256 bytes in the inode file (layout in FORMAT.md). */
export interface Inode {
  type: InodeType;
  height: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  generation: number;
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  parent: number;
  pointers: BlockPointer[];
}

/** A fresh, empty inode of the given type. */
export function newInode(type: InodeType, generation = 1): Inode {
  const now = BigInt(Date.now()) * 1_000_000n;
  return {
    type,
    height: 0,
    mode: type === InodeType.Dir ? 0o755 : type === InodeType.Symlink ? 0o777 : 0o644,
    uid: 0,
    gid: 0,
    nlink: 1,
    generation,
    size: 0,
    mtimeNs: now,
    ctimeNs: now,
    parent: 0,
    pointers: Array.from({ length: INODE_POINTERS }, () => HOLE),
  };
}

/** A deep copy of an inode. */
export function cloneInode(i: Inode): Inode {
  return { ...i, pointers: i.pointers.map((p) => ({ ...p })) };
}

/** Encodes an inode into `buf` at `offset`. */
export function encodeInode(inode: Inode, buf: Buffer, offset: number): void {
  buf.fill(0, offset, offset + INODE_SIZE);
  buf.writeUInt16LE(inode.type, offset + 0);
  buf.writeUInt16LE(inode.height, offset + 2);
  buf.writeUInt32LE(inode.mode >>> 0, offset + 4);
  buf.writeUInt32LE(inode.uid >>> 0, offset + 8);
  buf.writeUInt32LE(inode.gid >>> 0, offset + 12);
  buf.writeUInt32LE(inode.nlink >>> 0, offset + 16);
  buf.writeUInt32LE(inode.generation >>> 0, offset + 20);
  buf.writeBigUInt64LE(BigInt(inode.size), offset + 24);
  buf.writeBigInt64LE(inode.mtimeNs, offset + 32);
  buf.writeBigInt64LE(inode.ctimeNs, offset + 40);
  buf.writeUInt32LE(inode.parent >>> 0, offset + 48);
  for (let i = 0; i < INODE_POINTERS; i++) {
    const p = inode.pointers[i];
    buf.writeUInt32LE(p.vbn >>> 0, offset + 64 + i * 8);
    buf.writeUInt32LE(p.checksum >>> 0, offset + 68 + i * 8);
  }
}

/** Decodes the inode stored in `buf` at `offset`. */
export function decodeInode(buf: Buffer, offset: number): Inode {
  const pointers: BlockPointer[] = [];
  for (let i = 0; i < INODE_POINTERS; i++) {
    pointers.push({ vbn: buf.readUInt32LE(offset + 64 + i * 8), checksum: buf.readUInt32LE(offset + 68 + i * 8) });
  }
  return {
    type: buf.readUInt16LE(offset) as InodeType,
    height: buf.readUInt16LE(offset + 2),
    mode: buf.readUInt32LE(offset + 4),
    uid: buf.readUInt32LE(offset + 8),
    gid: buf.readUInt32LE(offset + 12),
    nlink: buf.readUInt32LE(offset + 16),
    generation: buf.readUInt32LE(offset + 20),
    size: Number(buf.readBigUInt64LE(offset + 24)),
    mtimeNs: buf.readBigInt64LE(offset + 32),
    ctimeNs: buf.readBigInt64LE(offset + 40),
    parent: buf.readUInt32LE(offset + 48),
    pointers,
  };
}

/** The root of a consistency point (one 4 KiB block, stored twice). */
export interface Fsinfo {
  formatVersion: number;
  generation: number;
  blockCount: number;
  uuid: string;
  cpTimeMs: number;
  inodeCount: number;
  planeStride: number;
  snapshotCount: number;
  nextSnapshotId: number;
  inodeFile: Inode;
  blockMap: Inode;
  snapshotTable: Inode;
}

const FSINFO_CRC_OFFSET = BLOCK_SIZE - 4;

/** Encodes fsinfo into a fresh 4 KiB block, checksum included. */
export function encodeFsinfo(f: Fsinfo): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  FSINFO_MAGIC.copy(b, 0);
  b.writeUInt32LE(f.formatVersion, 8);
  b.writeUInt32LE(BLOCK_SIZE, 12);
  b.writeBigUInt64LE(BigInt(f.generation), 16);
  b.writeBigUInt64LE(BigInt(f.blockCount), 24);
  Buffer.from(f.uuid.replace(/-/g, ''), 'hex').copy(b, 32);
  b.writeBigUInt64LE(BigInt(f.cpTimeMs), 48);
  b.writeUInt32LE(f.inodeCount, 56);
  b.writeUInt32LE(PLANE_SLOTS, 60);
  b.writeUInt32LE(f.planeStride, 64);
  b.writeUInt32LE(f.snapshotCount, 68);
  b.writeUInt32LE(f.nextSnapshotId, 72);
  encodeInode(f.inodeFile, b, 256);
  encodeInode(f.blockMap, b, 512);
  encodeInode(f.snapshotTable, b, 768);
  b.writeUInt32LE(blockChecksum(b.subarray(0, FSINFO_CRC_OFFSET)), FSINFO_CRC_OFFSET);
  return b;
}

/** Decodes an fsinfo block; returns null when the magic or checksum is wrong (a torn or foreign block). */
export function decodeFsinfo(b: Buffer): Fsinfo | null {
  if (!b.subarray(0, 8).equals(FSINFO_MAGIC)) return null;
  if (b.readUInt32LE(FSINFO_CRC_OFFSET) !== blockChecksum(b.subarray(0, FSINFO_CRC_OFFSET))) return null;
  const formatVersion = b.readUInt32LE(8);
  if (formatVersion !== FORMAT_VERSION) {
    throw new SnapplaneError('BAD_FORMAT', `unsupported format version ${formatVersion} (this build reads version ${FORMAT_VERSION})`);
  }
  if (b.readUInt32LE(12) !== BLOCK_SIZE || b.readUInt32LE(60) !== PLANE_SLOTS) {
    throw new SnapplaneError('BAD_FORMAT', 'unsupported block size or plane count');
  }
  const hex = b.subarray(32, 48).toString('hex');
  return {
    formatVersion,
    generation: Number(b.readBigUInt64LE(16)),
    blockCount: Number(b.readBigUInt64LE(24)),
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    cpTimeMs: Number(b.readBigUInt64LE(48)),
    inodeCount: b.readUInt32LE(56),
    planeStride: b.readUInt32LE(64),
    snapshotCount: b.readUInt32LE(68),
    nextSnapshotId: b.readUInt32LE(72),
    inodeFile: decodeInode(b, 256),
    blockMap: decodeInode(b, 512),
    snapshotTable: decodeInode(b, 768),
  };
}

/** One snapshot table entry (1 KiB; 4 per block; slot = plane - 1). */
export interface SnapshotEntry {
  id: number;
  plane: number;
  flags: number;
  createdAtMs: number;
  generation: number;
  name: string;
  inodeCount: number;
  /** The snapshot's saved fsinfo roots: its inode file and its block map file. */
  inodeFile: Inode;
  blockMap: Inode;
}

/** Encodes a snapshot entry into `buf` at `offset`. */
export function encodeSnapshotEntry(e: SnapshotEntry, buf: Buffer, offset: number): void {
  buf.fill(0, offset, offset + SNAPSHOT_ENTRY_SIZE);
  buf.writeUInt32LE(e.id, offset);
  buf.writeUInt16LE(e.plane, offset + 4);
  buf.writeUInt16LE(e.flags, offset + 6);
  buf.writeBigUInt64LE(BigInt(e.createdAtMs), offset + 8);
  buf.writeBigUInt64LE(BigInt(e.generation), offset + 16);
  const name = Buffer.from(e.name, 'utf8');
  buf.writeUInt16LE(name.length, offset + 24);
  name.copy(buf, offset + 26);
  buf.writeUInt32LE(e.inodeCount, offset + 160);
  encodeInode(e.inodeFile, buf, offset + 256);
  encodeInode(e.blockMap, buf, offset + 512);
}

/** Decodes a snapshot entry; null for an empty slot (id 0). */
export function decodeSnapshotEntry(buf: Buffer, offset: number): SnapshotEntry | null {
  const id = buf.readUInt32LE(offset);
  if (id === 0) return null;
  const nameLength = Math.min(buf.readUInt16LE(offset + 24), MAX_SNAPSHOT_NAME);
  return {
    id,
    plane: buf.readUInt16LE(offset + 4),
    flags: buf.readUInt16LE(offset + 6),
    createdAtMs: Number(buf.readBigUInt64LE(offset + 8)),
    generation: Number(buf.readBigUInt64LE(offset + 16)),
    name: buf.toString('utf8', offset + 26, offset + 26 + nameLength),
    inodeCount: buf.readUInt32LE(offset + 160),
    inodeFile: decodeInode(buf, offset + 256),
    blockMap: decodeInode(buf, offset + 512),
  };
}

/** A directory entry as stored: u32 inode, u8 type, u8 name length, name bytes; inode 0 ends a block. */
export interface StoredDirEntry {
  name: string;
  inode: number;
  type: InodeType;
}

/** Serialises directory entries into whole blocks (an entry never spans blocks). */
export function encodeDirectory(entries: Iterable<StoredDirEntry>): Buffer[] {
  const blocks: Buffer[] = [];
  let cur = Buffer.alloc(BLOCK_SIZE);
  let at = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const len = 6 + name.length;
    if (at + len > BLOCK_SIZE) {
      blocks.push(cur);
      cur = Buffer.alloc(BLOCK_SIZE);
      at = 0;
    }
    cur.writeUInt32LE(e.inode, at);
    cur.writeUInt8(e.type, at + 4);
    cur.writeUInt8(name.length, at + 5);
    name.copy(cur, at + 6);
    at += len;
  }
  if (at > 0 || blocks.length === 0) blocks.push(cur);
  return blocks;
}

/** Parses directory blocks back into entries; throws on a malformed entry. */
export function decodeDirectoryBlock(block: Buffer, into: StoredDirEntry[]): void {
  let at = 0;
  while (at + 6 <= BLOCK_SIZE) {
    const inode = block.readUInt32LE(at);
    if (inode === 0) return;
    const type = block.readUInt8(at + 4) as InodeType;
    const len = block.readUInt8(at + 5);
    if (len === 0 || at + 6 + len > BLOCK_SIZE || type < InodeType.File || type > InodeType.Symlink) {
      throw new SnapplaneError('BAD_FORMAT', `malformed directory entry at byte ${at}`);
    }
    into.push({ inode, type, name: block.toString('utf8', at + 6, at + 6 + len) });
    at += 6 + len;
  }
}

/** Data blocks a tree of `height` can address. */
export function treeCapacity(height: number): number {
  return INODE_POINTERS * POINTERS_PER_BLOCK ** height;
}
