/**
 * The member label: disk block 0 of every member image of a RAID-4 group (layout in core/FORMAT.md).
 * It lets a group assemble itself from its files in any order and refuse a foreign or stale member.
 */
import { BLOCK_SIZE } from '../common/units.js';
import { blockChecksum } from '../common/checksum.js';

export const RAID_MAGIC = Buffer.from('SNAPRAID', 'ascii');
export const RAID_VERSION = 1;
/** Disk blocks at the start of every member before the first data block: the label, then the intent log. */
export const LABEL_BLOCK = 0;
export const INTENT_LOG_BLOCKS = 8;
export const MEMBER_DATA_START = 1 + INTENT_LOG_BLOCKS;
/** Stripes covered by one bit of the intent log. */
export const INTENT_REGION_STRIPES = 4096;

export type MemberRole = 'data' | 'parity';

export interface MemberLabel {
  groupId: string;
  /** 0..dataMembers-1 for data members; dataMembers for the parity member. */
  index: number;
  role: MemberRole;
  dataMembers: number;
  /** Stripes in the group (= data blocks per member). */
  stripes: number;
  /** Bumped on every membership change; a member with an older generation is stale. */
  generation: number;
  /** Members the group considers failed at this generation (bit i = member i). */
  failedMask: number;
  /** Why each failed member was failed (member index → a short text), so another process or a later open can say. */
  reasons?: Record<number, string>;
}

/** The failure reasons: one slot per member index after the fixed fields, each a length byte and UTF-8 text. */
const REASONS_AT = 64;
const REASON_SLOT = 96;
const REASON_SLOTS = 32;

/** `text` as at most `max` bytes of UTF-8, cut at a character boundary. */
function utf8Prefix(text: string, max: number): Buffer {
  let out = Buffer.alloc(0);
  for (const ch of text) {
    const next = Buffer.concat([out, Buffer.from(ch, 'utf8')]);
    if (next.length > max) break;
    out = next;
  }
  return out;
}

/** Encodes a label block. */
export function encodeLabel(l: MemberLabel): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  RAID_MAGIC.copy(b, 0);
  b.writeUInt32LE(RAID_VERSION, 8);
  Buffer.from(l.groupId.replace(/-/g, ''), 'hex').copy(b, 12);
  b.writeUInt32LE(l.index, 28);
  b.writeUInt32LE(l.role === 'parity' ? 1 : 0, 32);
  b.writeUInt32LE(l.dataMembers, 36);
  b.writeBigUInt64LE(BigInt(l.stripes), 40);
  b.writeBigUInt64LE(BigInt(l.generation), 48);
  b.writeUInt32LE(l.failedMask >>> 0, 56);
  for (const [index, reason] of Object.entries(l.reasons ?? {})) {
    const i = Number(index);
    if (i < 0 || i >= REASON_SLOTS || !(l.failedMask & (1 << i))) continue;
    const text = utf8Prefix(reason, REASON_SLOT - 1);
    b[REASONS_AT + i * REASON_SLOT] = text.length;
    text.copy(b, REASONS_AT + i * REASON_SLOT + 1);
  }
  b.writeUInt32LE(blockChecksum(b.subarray(0, BLOCK_SIZE - 4)), BLOCK_SIZE - 4);
  return b;
}

/** Decodes a label block; null if it is not a valid Snapplane member label. */
export function decodeLabel(b: Buffer): MemberLabel | null {
  if (!b.subarray(0, 8).equals(RAID_MAGIC)) return null;
  if (b.readUInt32LE(BLOCK_SIZE - 4) !== blockChecksum(b.subarray(0, BLOCK_SIZE - 4))) return null;
  if (b.readUInt32LE(8) !== RAID_VERSION) return null;
  const hex = b.subarray(12, 28).toString('hex');
  return {
    groupId: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    index: b.readUInt32LE(28),
    role: b.readUInt32LE(32) === 1 ? 'parity' : 'data',
    dataMembers: b.readUInt32LE(36),
    stripes: Number(b.readBigUInt64LE(40)),
    generation: Number(b.readBigUInt64LE(48)),
    failedMask: b.readUInt32LE(56),
    reasons: decodeReasons(b, b.readUInt32LE(56)),
  };
}

function decodeReasons(b: Buffer, failedMask: number): Record<number, string> {
  const reasons: Record<number, string> = {};
  for (let i = 0; i < REASON_SLOTS; i++) {
    const at = REASONS_AT + i * REASON_SLOT;
    const n = Math.min(b[at], REASON_SLOT - 1);
    if (n > 0 && failedMask & (1 << i)) reasons[i] = b.subarray(at + 1, at + 1 + n).toString('utf8');
  }
  return reasons;
}
