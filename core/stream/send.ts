/**
 * The sender: turns a storage image of a volume into an image stream. Blocks are read as blocks, by VBN; the
 * snapshot entries and planes travel with them so the receiver can rebuild the snapshots. A walk of the carried
 * snapshots' changed metadata gives each block's expected checksum, checked as it is read (send-checks.ts).
 */
import { randomBytes } from 'node:crypto';
import { Xxh64 } from '@node-rs/xxhash';
import { deflateRawSync } from 'node:zlib';
import { compressSync } from 'lz4-napi';
import { SnapplaneError, isSnapplaneError } from '../common/errors.js';
import { alignedBufferSet } from '../common/aligned-buffers.js';
import { BLOCK_SIZE } from '../common/units.js';
import { WORDS_PER_CHUNK, popcount32, type BitPlane } from '../planes/bit-plane.js';
import { SparsePlane } from '../planes/sparse-plane.js';
import { INODE_SIZE, encodeInode, type SnapshotEntry } from '../fs/format.js';
import type { Volume } from '../fs/volume.js';
import { bindNames, evaluateBound, planeChunkReader, runsInChunk } from '../image/evaluate.js';
import { WRITES_IN_FLIGHT } from './block-landing.js';
import { readsAroundPageCache } from './bulk-io.js';
import { SendChecks } from './send-checks.js';
import { parseImageExpr, streamShape, formatImageExpr, quoteName } from '../image/expression.js';
import {
  MAX_RUN_BLOCKS,
  NO_STREAM_ID,
  PREAMBLE_SIZE,
  RECORD_HEADER_SIZE,
  RecordFlag,
  RecordType,
  digestHex,
  encodePreamble,
  encodeRecordHeader,
  streamIdBytes,
  type RecordTypeCode,
  type StreamCodec,
  type StreamHeader,
  type StreamOrder,
  type StreamSnapshot,
  type StreamTrailer,
} from './format.js';

export interface SendOptions {
  order?: StreamOrder;
  codec?: StreamCodec;
  /** Resume: keep this stream id and skip block records before `fromVbn`. */
  resume?: { streamId: string; fromVbn: number };
  /**
   * `marks`: an incremental `top - base` takes its blocks from the swapped-out mark-on-allocate image when that image
   * spans exactly base → top (Volume.snapshotForTransfer), instead of subtracting planes; otherwise it subtracts.
   * Snapshots between base and top may be carried too (`S1 + top - base`): their blocks beyond the base are added.
   */
  selection?: 'marks' | 'subtraction';
  now?: () => number;
}

/** Everything decided before a byte of data is read: the header, the planes to send and the block runs. */
export interface StreamPlan {
  header: StreamHeader;
  image: SparsePlane;
  /** Plane chunks per carried snapshot (same order as header.snapshots). */
  planes: Map<number, Uint32Array>[];
  dealloc: SparsePlane | null;
  runs: [number, number][];
  /** Plane slots of the carried snapshots and the base, with their CP generations (to pin and re-check them). */
  planeSlots: number[];
  generations: number[];
  /** Blocks the block records of this transmission carry (fewer than imageBlocks when resumed). */
  sendBlocks: number;
  /** How the image's blocks were chosen. */
  selection: 'marks' | 'subtraction' | 'full';
}

function entryToStream(e: SnapshotEntry): StreamSnapshot {
  const inode = (i: SnapshotEntry['inodeFile']): string => {
    const b = Buffer.alloc(INODE_SIZE);
    encodeInode(i, b, 0);
    return b.toString('base64');
  };
  return { id: e.id, name: e.name, flags: e.flags, createdAtMs: e.createdAtMs, generation: e.generation, inodeCount: e.inodeCount, inodeFile: inode(e.inodeFile), blockMap: inode(e.blockMap) };
}

/** Splits the image into block records: runs of consecutive VBNs, cut at MAX_RUN_BLOCKS (and at stripe edges for `raid`). */
function planRuns(image: SparsePlane, order: StreamOrder, members: number | null, fromVbn: number): [number, number][] {
  const out: [number, number][] = [];
  const unit = order === 'raid' && members ? Math.max(members, Math.floor(MAX_RUN_BLOCKS / members) * members) : MAX_RUN_BLOCKS;
  let open: [number, number] | null = null;
  const push = (first: number, count: number): void => {
    if (first + count <= fromVbn) return;
    if (first < fromVbn) {
      count -= fromVbn - first;
      first = fromVbn;
    }
    if (open && open[0] + open[1] === first) open[1] += count;
    else {
      if (open) out.push(open);
      open = [first, count];
    }
  };
  for (const c of image.chunkIndexes()) for (const [first, count] of runsInChunk(c, image.chunk(c)!)) push(first, count);
  const last = open as [number, number] | null;
  if (last) out.push(last);
  // Cut at aligned boundaries of `unit` so records of a RAID source cover whole stripes.
  const cut: [number, number][] = [];
  for (const [first, count] of out) {
    let v = first;
    const end = first + count;
    while (v < end) {
      const boundary = (Math.floor(v / unit) + 1) * unit;
      const n = Math.min(end, boundary) - v;
      cut.push([v, n]);
      v += n;
    }
  }
  return cut;
}

/** The swapped-out mark-on-allocate image as a stream image (a copy: the live one keeps changing). */
function marksImage(marks: BitPlane): { plane: SparsePlane; blocks: number } {
  const plane = new SparsePlane();
  for (let c = 0; c < marks.chunks; c++) if (marks.chunkPopulation[c] > 0) plane.setChunk(c, marks.chunkWords(c).slice());
  return { plane, blocks: plane.count };
}

/** Evaluates the expression and fixes the stream's header, planes and runs; refuses images that cannot be streamed. */
export async function planStream(volume: Volume, expression: string, opts: SendOptions = {}): Promise<StreamPlan> {
  return volume.exclusive(async () => {
    const expr = parseImageExpr(expression);
    const shape = streamShape(expr);
    if ('reason' in shape) throw new SnapplaneError('INVALID', `"${expression}" cannot be streamed: ${shape.reason}`, { volume: volume.label });
    const entries = volume.snapshots.list();
    const bound = bindNames(expr, expression, entries, volume.label);
    const tops = shape.tops.map((t) => {
      const b = bound.get(t.name)!;
      if (!b.entry) throw new SnapplaneError('INVALID', `a stream carries snapshots, not the changing active file system ('active' at column ${t.column}); take a snapshot and send that`, { volume: volume.label });
      return b.entry;
    });
    const carried = [...new Map(tops.map((e) => [e.plane, e])).values()].sort((a, b) => a.generation - b.generation);
    const baseEntry = shape.base ? bound.get(shape.base.name)!.entry : null;
    if (shape.base && !baseEntry) throw new SnapplaneError('INVALID', `the base of an incremental must be a snapshot, not 'active' (column ${shape.base.column})`, { volume: volume.label });
    if (baseEntry && carried.some((e) => e.plane === baseEntry.plane)) throw new SnapplaneError('INVALID', `snapshot '${baseEntry.name}' cannot be both sent and the base`, { volume: volume.label });
    const map = await volume.planeMap();
    const span = map.marksPrevious ? map.marksPreviousSpan : null;
    const top = carried[carried.length - 1];
    const useMarks = opts.selection === 'marks' && baseEntry !== null && span !== null && span.from === baseEntry.generation && span.to === top.generation && carried.every((e) => e.generation > baseEntry.generation);
    const chunkOf = planeChunkReader(map);
    const image = useMarks ? marksImage(map.marksPrevious!) : await evaluateBound(expr, bound, map, chunkOf);
    if (useMarks && carried.length > 1) {
      // Snapshots taken between base and top ride along. The marks forget a block freed again before the top (a
      // deleted file) that such a snapshot still holds, so their own blocks beyond the base are added.
      const earlier = parseImageExpr(`${carried.slice(0, -1).map((e) => quoteName(e.name)).join(' + ')} - ${quoteName(baseEntry.name)}`);
      const extra = await evaluateBound(earlier, bindNames(earlier, expression, entries, volume.label), map, chunkOf);
      image.plane.addAll(extra.plane);
      image.blocks = image.plane.count;
    }
    // fsinfo never travels as a block: the receiver writes its own, last, to commit (SPEC §2.6).
    const first = image.plane.chunk(0);
    if (first && (first[0] & 3) !== 0) {
      const w = first.slice();
      w[0] &= ~3;
      image.blocks -= popcount32(first[0] & 3);
      image.plane.setChunk(0, w);
    }
    const planes: Map<number, Uint32Array>[] = [];
    for (const e of carried) {
      const chunks = new Map<number, Uint32Array>();
      for (let c = 0; c < map.summary.chunks; c++) {
        const w = await chunkOf(e.plane, c);
        if (w) chunks.set(c, w.slice());
      }
      planes.push(chunks);
    }
    let dealloc: SparsePlane | null = null;
    if (baseEntry) {
      dealloc = new SparsePlane();
      for (let c = 0; c < map.summary.chunks; c++) {
        const b = await chunkOf(baseEntry.plane, c);
        if (!b) continue;
        const t = await chunkOf(top.plane, c);
        const w = new Uint32Array(WORDS_PER_CHUNK);
        let any = false;
        for (let i = 0; i < WORDS_PER_CHUNK; i++) {
          w[i] = b[i] & ~(t ? t[i] : 0);
          if (w[i] !== 0) any = true;
        }
        if (any) dealloc.setChunk(c, w);
      }
    }
    const order = opts.order ?? 'vbn';
    const health = volume.device.health();
    const raidMembers = health.kind === 'raid4' ? health.members.filter((m) => m.role === 'data').length : null;
    if (order === 'raid' && raidMembers === null) throw new SnapplaneError('INVALID', `order 'raid' needs a RAID-4 source; '${volume.label}' is a single image`, { volume: volume.label });
    const fromVbn = opts.resume?.fromVbn ?? 0;
    const runs = planRuns(image.plane, order, raidMembers, fromVbn);
    const now = opts.now ?? Date.now;
    const header: StreamHeader = {
      format: 'snapplane-image-stream',
      version: 1,
      streamId: opts.resume?.streamId ?? randomBytes(16).toString('hex'),
      sourceVolume: volume.fsinfo.uuid,
      sourceLabel: volume.label,
      blockSize: BLOCK_SIZE,
      blockCount: volume.fsinfo.blockCount,
      kind: baseEntry ? 'incremental' : 'full',
      expression: formatImageExpr(expr),
      base: baseEntry ? { id: baseEntry.id, name: baseEntry.name, generation: baseEntry.generation, createdAtMs: baseEntry.createdAtMs } : null,
      order,
      codec: opts.codec ?? 'none',
      createdAt: new Date(now()).toISOString(),
      snapshots: carried.map(entryToStream),
      imageBlocks: image.blocks,
      resumeFromVbn: opts.resume ? fromVbn : null,
      raidMembers,
    };
    const pinned = baseEntry ? [...carried, baseEntry] : carried;
    const selection = baseEntry ? (useMarks ? 'marks' : 'subtraction') : 'full';
    return { header, image: image.plane, planes, dealloc, runs, planeSlots: pinned.map((e) => e.plane), generations: pinned.map((e) => e.generation), sendBlocks: runs.reduce((s, r) => s + r[1], 0), selection };
  });
}

/** One record of the stream before framing. */
interface PendingRecord {
  type: RecordTypeCode;
  flags: number;
  vbn: number;
  count: number;
  payload: Buffer;
}

/**
 * zlib's defaults allocate and clear a 32 KiB window and 256 KiB of hash tables per call, about 1 ms each: 120 ms
 * for the 120 chunks of a 5 GiB volume's image, base and plane. A 4 KiB chunk needs neither; these settings compress
 * a chunk as well (within a few bytes) in a sixteenth of the time, and any inflater reads them (its window is larger).
 */
const BITMAP_DEFLATE = { memLevel: 1, windowBits: 12 } as const;

function bitmapRecord(type: RecordTypeCode, chunk: number, count: number, words: Uint32Array): PendingRecord {
  const raw = Buffer.from(words.buffer, words.byteOffset, WORDS_PER_CHUNK * 4);
  return { type, flags: RecordFlag.deflate, vbn: chunk, count, payload: deflateRawSync(raw, BITMAP_DEFLATE) };
}

/** Every record of the plan except block records and the end, in stream order. */
function metadataRecords(plan: StreamPlan): PendingRecord[] {
  const out: PendingRecord[] = [];
  for (const c of plan.image.chunkIndexes()) out.push(bitmapRecord(RecordType.image, c, 0, plan.image.chunk(c)!));
  if (plan.dealloc) for (const c of plan.dealloc.chunkIndexes()) out.push(bitmapRecord(RecordType.dealloc, c, 0, plan.dealloc.chunk(c)!));
  plan.planes.forEach((chunks, ordinal) => {
    for (const [c, w] of [...chunks.entries()].sort((a, b) => a[0] - b[0])) out.push(bitmapRecord(RecordType.plane, c, ordinal, w));
  });
  return out;
}

/** Exact size in bytes of the stream a plan produces without compression (no data is read). */
export function streamSize(plan: StreamPlan): { bytes: number; dataBytes: number; records: number } {
  const headerJson = Buffer.byteLength(JSON.stringify(plan.header));
  const meta = metadataRecords(plan);
  let bytes = PREAMBLE_SIZE + RECORD_HEADER_SIZE + headerJson;
  for (const r of meta) bytes += RECORD_HEADER_SIZE + r.payload.length;
  const dataBytes = plan.sendBlocks * BLOCK_SIZE;
  bytes += plan.runs.length * RECORD_HEADER_SIZE + dataBytes;
  if (plan.header.order === 'tape') bytes += RECORD_HEADER_SIZE + plan.runs.length * 20;
  const records = 2 + meta.length + plan.runs.length + (plan.header.order === 'tape' ? 1 : 0);
  const trailer: StreamTrailer = { records, blocks: plan.sendBlocks, dataBytes, digest: '0'.repeat(16) };
  bytes += RECORD_HEADER_SIZE + Buffer.byteLength(JSON.stringify(trailer));
  return { bytes, dataBytes, records };
}

export interface StreamProgress {
  blocks: number;
  totalBlocks: number;
  bytes: number;
}

/**
 * Produces the stream of a plan as buffers. Reads blocks in runs through the volume's device, a few runs ahead,
 * so member reads of a RAID source overlap and the consumer's writes overlap the next reads.
 *
 * With `reuse`, block payloads are read into a small ring of buffers: a yielded buffer is valid only until the
 * consumer asks for the next one after it (fresh 1 MiB buffers cost more in page faults than the disk read here).
 * `reuse` may be the ring itself (READ_RING_SLOTS buffers of READ_RING_BYTES), lent by a caller that knows when the
 * consumer is done with every buffer it was given. Then a bulk send (at least `bulkBlocks` blocks; default:
 * bulk-io.ts) reads around the page cache, into a page-aligned ring of its own.
 */
export async function* writeStream(volume: Volume, plan: StreamPlan, onProgress?: (p: StreamProgress) => void, signal?: { cancelled: boolean }, reuse: boolean | Buffer[] = false, bulkBlocks?: number): AsyncGenerator<Buffer> {
  const release = await volume.pinForSend(plan.planeSlots, plan.generations);
  // The walk's checks, once it has finished.
  const walked: { checks: SendChecks | null } = { checks: null };
  try {
    const entries = volume.snapshots.list();
    const live = new Map(entries.map((e) => [e.plane, e.generation]));
    plan.planeSlots.forEach((p, k) => {
      if (live.get(p) !== plan.generations[k]) throw new SnapplaneError('NOT_FOUND', 'a snapshot of this stream was deleted after the send was planned', { volume: volume.label });
    });
    // The carried snapshots come first among the pinned planes, in the header's order.
    const carried = plan.header.snapshots.map((_, k) => entries.find((e) => e.plane === plan.planeSlots[k] && e.generation === plan.generations[k])!);
    const concurrent = volume.device.concurrentReads === true;
    const device = volume.device;
    // A bulk send reads around the page cache into an aligned ring (bulk-io.ts).
    const direct = reuse !== false && device.readBlocksDirect && readsAroundPageCache(plan.sendBlocks, bulkBlocks) ? device.readBlocksDirect.bind(device) : null;
    // The walk runs while the first runs are read (both mostly wait on the disk); a run is checked once it is done.
    // Through the page cache, it reads the image between the metadata it needs: the send reads that next anyway.
    let walk: Promise<SendChecks> | null = null;
    const checks = (): Promise<SendChecks> => (walk ??= SendChecks.prepare(volume, carried, plan.image, signal, direct === null).then((c) => (walked.checks = c)));
    // Snapshot blocks never change while their planes are pinned, so a plain image is read without the volume lock.
    const raw: RunReader = (vbn, count, into) =>
      direct && into ? direct(vbn, count, into) : concurrent ? device.readBlocks(vbn, count, into) : volume.exclusive(() => device.readBlocks(vbn, count, into));
    // Every block with a known checksum is checked before it can go out (a corrupt block is an error, never data).
    const read: RunReader = async (vbn, count, into) => {
      const [data, expected] = await Promise.all([raw(vbn, count, into), checks()]);
      await expected.verify(vbn, count, data);
      return data;
    };
    yield* emitStream(plan, read, volume.label, { onProgress, signal, reuse, gapBlocks: READ_GAP_BLOCKS, alignedRing: direct !== null });
  } finally {
    // emitStream has let every read settle, and with it every check; a walk still running keeps its buffers.
    walked.checks?.releaseBuffers();
    await release();
  }
}

/**
 * Runs separated by at most this many blocks are read with one device read (the gap is read and skipped): an
 * aged volume's snapshot is many short runs, and a read per run costs more in system calls than the gap's bytes.
 */
const READ_GAP_BLOCKS = 8;

/** One device read: `count` blocks from `vbn`, covering runs up to `lastRun` (an index into the plan's runs). */
interface ReadGroup {
  vbn: number;
  count: number;
  firstRun: number;
  lastRun: number;
}

/** Groups consecutive runs (in stream order) that ascend with gaps of at most `gap` blocks, up to a record's size. */
function readGroups(runs: [number, number][], gap: number): ReadGroup[] {
  const out: ReadGroup[] = [];
  for (let i = 0; i < runs.length; i++) {
    const [vbn, count] = runs[i];
    const last = out[out.length - 1];
    const end = last ? last.vbn + last.count : 0;
    if (last && vbn >= end && vbn - end <= gap && vbn + count - last.vbn <= MAX_RUN_BLOCKS) {
      last.count = vbn + count - last.vbn;
      last.lastRun = i;
    } else out.push({ vbn, count, firstRun: i, lastRun: i });
  }
  return out;
}

/** Reads `count` blocks from `vbn` (into `into` when given). */
export type RunReader = (vbn: number, count: number, into?: Buffer) => Promise<Buffer>;

/** How emitStream reads and reports. */
export interface EmitOptions {
  onProgress?: (p: StreamProgress) => void;
  signal?: { cancelled: boolean };
  /** Read blocks into a small ring of reused buffers, or into these (see writeStream). */
  reuse?: boolean | Buffer[];
  /** Runs this many blocks apart or closer are read with one read. */
  gapBlocks?: number;
  /** The ring is page-aligned, for reads around the page cache. */
  alignedRing?: boolean;
}

/** Runs read ahead of the one being emitted. */
const READ_AHEAD = 8;
/** Buffers in a send's read ring: the read-ahead, the receiver's writes in flight, and the record being handed over. */
export const READ_RING_SLOTS = READ_AHEAD + WRITES_IN_FLIGHT + 2;
/** Bytes per buffer of the read ring: the largest run a record carries. */
export const READ_RING_BYTES = MAX_RUN_BLOCKS * BLOCK_SIZE;

/** The stream of a plan whose blocks come from `read` (a volume, or another block source such as a mirror's). */
export async function* emitStream(plan: StreamPlan, readRun: RunReader, label: string, opts: EmitOptions = {}): AsyncGenerator<Buffer> {
  const { onProgress, signal, reuse = false, gapBlocks = 0, alignedRing = false } = opts;
  const id = streamIdBytes(plan.header.streamId);
  const digest = new Xxh64(0n);
  let seq = 0;
  let bytes = 0;
  let records = 0;
  const emit = (r: PendingRecord, streamId: Buffer = id): Buffer[] => {
    const h = encodeRecordHeader(streamId, { type: r.type, flags: r.flags, payloadLength: r.payload.length, seq: seq++, vbn: r.vbn, count: r.count }, r.payload);
    digest.update(h);
    bytes += h.length + r.payload.length;
    records++;
    return [h, r.payload];
  };
  const pre = encodePreamble();
  digest.update(pre);
  bytes += pre.length;
  yield pre;
  for (const b of emit({ type: RecordType.header, flags: 0, vbn: 0, count: 0, payload: Buffer.from(JSON.stringify(plan.header)) }, NO_STREAM_ID)) yield b;
  for (const r of metadataRecords(plan)) for (const b of emit(r)) yield b;

  const positions: { vbn: number; count: number; offset: number }[] = [];
  let blocks = 0;
  const codec = plan.header.codec;
  const ahead = READ_AHEAD;
  const slots = READ_RING_SLOTS;
  // Page-aligned only for reads around the page cache (each aligned set is a WebAssembly memory of its own).
  const ring = reuse === false ? [] : alignedRing ? alignedBufferSet(slots, READ_RING_BYTES) : Array.isArray(reuse) ? reuse : Array.from({ length: slots }, () => Buffer.allocUnsafe(READ_RING_BYTES));
  if (ring.length > 0 && (ring.length !== slots || ring.some((b) => b.length !== READ_RING_BYTES))) throw new SnapplaneError('INVALID', `a send's read ring is ${slots} buffers of ${READ_RING_BYTES} bytes`, { volume: label });
  let slot = 0;
  const groups = readGroups(plan.runs, gapBlocks);
  const read = async (g: ReadGroup): Promise<Buffer> => {
    const into = reuse !== false ? ring[slot++ % ring.length].subarray(0, g.count * BLOCK_SIZE) : Buffer.allocUnsafe(g.count * BLOCK_SIZE);
    try {
      return await readRun(g.vbn, g.count, into);
    } catch (e) {
      // A corrupt block is corrupt however it is read.
      if (g.firstRun === g.lastRun || isSnapplaneError(e, 'CHECKSUM')) throw e;
      // An unreadable block may sit in a gap the stream does not need: read the group's runs one by one.
      for (let r = g.firstRun; r <= g.lastRun; r++) {
        const [vbn, count] = plan.runs[r];
        const at = (vbn - g.vbn) * BLOCK_SIZE;
        const got = await readRun(vbn, count, into.subarray(at, at + count * BLOCK_SIZE));
        if (got.byteOffset !== into.byteOffset + at || got.buffer !== into.buffer) got.copy(into, at);
      }
      return into;
    }
  };
  const queue: Promise<Buffer>[] = [];
  // A read that fails while the stream waits on its consumer is taken where it is awaited; meanwhile it must not
  // count as unhandled, which would end the process.
  const readAhead = (g: ReadGroup): Promise<Buffer> => {
    const p = read(g);
    p.catch(() => undefined);
    return p;
  };
  try {
    for (let i = 0; i < Math.min(ahead, groups.length); i++) queue.push(readAhead(groups[i]));
    let g = 0;
    let groupData: Buffer | null = null;
    for (let i = 0; i < plan.runs.length; i++) {
      if (signal?.cancelled) throw new SnapplaneError('CANCELLED', 'send cancelled', { volume: label });
      if (groupData === null || i === groups[g].lastRun + 1) {
        if (groupData !== null) g++;
        groupData = await queue.shift()!;
        if (g + ahead < groups.length) queue.push(readAhead(groups[g + ahead]));
      }
      const [vbn, count] = plan.runs[i];
      const at = (vbn - groups[g].vbn) * BLOCK_SIZE;
      const data = groupData.subarray(at, at + count * BLOCK_SIZE);
      let payload = data;
      let flags = 0;
      if (codec === 'lz4') {
        const packed = compressSync(data);
        if (packed.length < data.length) {
          payload = packed;
          flags = RecordFlag.codec;
        }
      }
      positions.push({ vbn, count, offset: bytes });
      for (const b of emit({ type: RecordType.blocks, flags, vbn, count, payload })) yield b;
      blocks += count;
      onProgress?.({ blocks, totalBlocks: plan.sendBlocks, bytes });
    }
  } finally {
    await Promise.allSettled(queue);
  }
  if (plan.header.order === 'tape') {
    const table = Buffer.alloc(positions.length * 20);
    positions.forEach((p, k) => {
      table.writeBigUInt64LE(BigInt(p.vbn), k * 20);
      table.writeUInt32LE(p.count, k * 20 + 8);
      table.writeBigUInt64LE(BigInt(p.offset), k * 20 + 12);
    });
    for (const b of emit({ type: RecordType.position, flags: 0, vbn: 0, count: positions.length, payload: table })) yield b;
  }
  const trailer: StreamTrailer = { records: records + 1, blocks, dataBytes: blocks * BLOCK_SIZE, digest: digestHex(digest) };
  for (const b of emit({ type: RecordType.end, flags: 0, vbn: 0, count: 0, payload: Buffer.from(JSON.stringify(trailer)) })) yield b;
}

