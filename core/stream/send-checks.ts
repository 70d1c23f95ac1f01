/**
 * What the sender expects of the blocks it sends. The sender reads blocks by VBN, not through files, so it learns
 * each block's CRC-32 from the pointer to it: a walk of the carried snapshots' trees that enters only pointers into
 * the stream's image. In a copy-on-write volume a block outside the image is unchanged since the base, and so is
 * everything under it, so an incremental's walk reads only the changed metadata (core/STREAM.md §2.10).
 */
import { SnapplaneError, isSnapplaneError } from '../common/errors.js';
import { BLOCK_SIZE } from '../common/units.js';
import { blockChecksum } from '../common/checksum.js';
import { spareBuffers, type Spares } from '../common/spare-buffers.js';
import { BITS_PER_CHUNK, WORDS_PER_CHUNK, popcount32 } from '../planes/bit-plane.js';
import { SparsePlane } from '../planes/sparse-plane.js';
import { INODES_PER_BLOCK, INODE_POINTERS, INODE_SIZE, InodeType, POINTERS_PER_BLOCK, POINTER_SIZE, ROOT_INODE, SnapshotFlag, cloneInode, type BlockPointer, type Inode, type SnapshotEntry } from '../fs/format.js';
import { InodeTable } from '../fs/inode-table.js';
import { Namespace } from '../fs/namespace.js';
import type { Volume } from '../fs/volume.js';

/** Trees that are no file's: the inode file and the block map file of a snapshot. */
const INODE_FILE = -1;
const BLOCK_MAP = -2;

/** Where a block sits: a carried snapshot (its index), the tree (an inode number, INODE_FILE or BLOCK_MAP), the level. */
interface Owner {
  snap: number;
  ino: number;
  level: number;
}

/** An indirect block (or an inode block of the inode file) still to read. */
interface Pending {
  vbn: number;
  checksum: number;
  level: number;
  index: number;
  snap: number;
  ino: number;
}

/** Pointers read per verified multi-block read of the walk (4 MiB of blocks). */
const WALK_BATCH = 1024;

/**
 * A spanning read of the walk (see SendChecks.readSpanning) covers at most this many blocks (1 MiB) and crosses at
 * most SPAN_GAP blocks outside the image between two pointers; SPANS_IN_FLIGHT of them are read at once.
 */
const SPAN_BLOCKS = 256;
const SPAN_GAP = 8;
const SPANS_IN_FLIGHT = 4;
/** Walk slabs and spanning reads' buffers kept between sends (spare-buffers.ts): enough for two at once. */
const spareSlabs = spareBuffers(WALK_BATCH * BLOCK_SIZE, 2);
const spareSpans = spareBuffers(SPAN_BLOCKS * BLOCK_SIZE, 2 * SPANS_IN_FLIGHT);

/** A chunk's checksums, stored by rank among the image's VBNs of the chunk (memory: 4 bytes per image block). */
interface ChunkSums {
  image: Uint32Array;
  /** Image bits set in the chunk's words before word `i`. */
  before: Uint16Array;
  sums: Uint32Array;
}

/** VBN → expected CRC-32 for the image blocks the walk reached. */
export class ExpectedChecksums {
  /** The VBNs with a known checksum. */
  readonly known = new SparsePlane();
  private readonly chunks = new Map<number, ChunkSums>();

  constructor(private readonly image: SparsePlane) {}

  private chunkSums(c: number): ChunkSums {
    let e = this.chunks.get(c);
    if (!e) {
      const image = this.image.chunk(c)!;
      const before = new Uint16Array(WORDS_PER_CHUNK);
      let n = 0;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) {
        before[i] = n;
        n += popcount32(image[i]);
      }
      e = { image, before, sums: new Uint32Array(n) };
      this.chunks.set(c, e);
    }
    return e;
  }

  private static rank(e: ChunkSums, o: number): number {
    return e.before[o >>> 5] + popcount32(e.image[o >>> 5] & ((1 << (o & 31)) - 1));
  }

  /** Keeps the first checksum seen for `vbn` (a VBN of the image); false when it was known already. */
  record(vbn: number, checksum: number): boolean {
    if (!this.known.set(vbn)) return false;
    const e = this.chunkSums(Math.floor(vbn / BITS_PER_CHUNK));
    e.sums[ExpectedChecksums.rank(e, vbn % BITS_PER_CHUNK)] = checksum;
    return true;
  }

  /** Blocks with a known checksum. */
  get count(): number {
    return this.known.count;
  }

  /**
   * Checks blocks [vbn, vbn+count) held in `data`; calls `bad` for each block whose CRC-32 differs from its pointer's
   * (blocks without a known checksum, such as the gaps of a grouped read, are not checked).
   */
  async check(vbn: number, count: number, data: Buffer, bad: (vbn: number, checksum: number, block: Buffer) => Promise<void>): Promise<void> {
    let v = vbn;
    const end = vbn + count;
    while (v < end) {
      const c = Math.floor(v / BITS_PER_CHUNK);
      const stop = Math.min(end, (c + 1) * BITS_PER_CHUNK);
      const words = this.known.chunk(c);
      const e = this.chunks.get(c);
      if (words && e) {
        for (let x = v; x < stop; x++) {
          const o = x % BITS_PER_CHUNK;
          if ((words[o >>> 5] & (1 << (o & 31))) === 0) continue;
          const block = data.subarray((x - vbn) * BLOCK_SIZE, (x - vbn + 1) * BLOCK_SIZE);
          const want = e.sums[ExpectedChecksums.rank(e, o)];
          if (blockChecksum(block) !== want) await bad(x, want, block);
        }
      }
      v = stop;
    }
  }
}

/** An indirect block as 32-bit words: pointers are little-endian, as is every CPU the engine runs on (Volume.open checks). */
function pointerWords(block: Buffer): Uint32Array {
  if (block.byteOffset % 4 === 0) return new Uint32Array(block.buffer, block.byteOffset, BLOCK_SIZE / 4);
  const copy = new Uint8Array(BLOCK_SIZE);
  copy.set(block);
  return new Uint32Array(copy.buffer);
}

/** Reads blocks through the volume's verified path (under the volume lock for devices that read one at a time). */
type ReadMany = (pointers: BlockPointer[], label: string) => Promise<Buffer[]>;

/**
 * Walks the trees of `snapshots` (in order), entering only pointers into `image`, and records each image block's
 * expected checksum. A block already reached from an earlier snapshot is not entered again (its subtree was walked).
 * With `target`, returns where that VBN sits (for an error message); otherwise null.
 */
async function walkImage(snapshots: SnapshotEntry[], image: SparsePlane, readMany: ReadMany, out: ExpectedChecksums, fail: (vbn: number, where: Owner) => Promise<never>, target = -1, signal?: { cancelled: boolean }, volume = ''): Promise<Owner | null> {
  let found: Owner | null = null;
  // The image's chunks by index: the hot test of the indirect-block loop indexes an array, not a Map.
  const imageWords: (Uint32Array | undefined)[] = [];
  for (const c of image.chunkIndexes()) imageWords[c] = image.chunk(c)!;
  for (let k = 0; k < snapshots.length; k++) {
    const e = snapshots[k];
    // A stale shadow's trees point at blocks that were reused: they say nothing about what the blocks hold.
    if (e.flags & SnapshotFlag.stale) continue;
    let prior: SparsePlane | null = null;
    if (k > 0) {
      prior = new SparsePlane();
      prior.addAll(out.known);
    }
    let queue: Pending[] = [];
    const take = (vbn: number, checksum: number, level: number, index: number, ino: number, inodeBlocks: boolean): void => {
      if (vbn === 0 || !image.has(vbn) || prior?.has(vbn)) return;
      if (vbn === target && !found) found = { snap: k, ino, level };
      if (!out.record(vbn, checksum)) return;
      if (level > 0 || inodeBlocks) queue.push({ vbn, checksum, level, index, snap: k, ino });
    };
    const top = (inode: Inode, ino: number, inodeBlocks: boolean): void => {
      for (let j = 0; j < inode.pointers.length; j++) take(inode.pointers[j].vbn, inode.pointers[j].checksum, inode.height, j, ino, inodeBlocks);
    };
    top(e.inodeFile, INODE_FILE, true);
    top(e.blockMap, BLOCK_MAP, false);
    while (queue.length > 0) {
      // Level by level across all trees at once, in VBN order: consecutive blocks are read as runs, several in flight.
      const round = queue.sort((a, b) => a.vbn - b.vbn);
      queue = [];
      for (let b = 0; b < round.length; b += WALK_BATCH) {
        if (signal?.cancelled) throw new SnapplaneError('CANCELLED', 'send cancelled', { volume });
        const batch = round.slice(b, b + WALK_BATCH);
        let data: Buffer[];
        try {
          data = await readMany(batch, `snapshot ${e.name}`);
        } catch (err) {
          const at = isSnapplaneError(err, 'CHECKSUM') ? batch.find((p) => p.vbn === err.vbn) : undefined;
          if (!at) throw err;
          return fail(at.vbn, { snap: k, ino: at.ino, level: at.level });
        }
        batch.forEach((p, i) => {
          const block = data[i];
          if (p.level > 0) {
            // Most pointers of a changed indirect block lead to unchanged blocks: they are skipped on the image's
            // words alone (an indirect block has 512 pointers; a Map lookup each made this loop most of the walk).
            const words = pointerWords(block);
            const step = POINTER_SIZE / 4;
            for (let s = 0; s < POINTERS_PER_BLOCK; s++) {
              const vbn = words[s * step];
              if (vbn === 0) continue;
              const w = imageWords[Math.floor(vbn / BITS_PER_CHUNK)];
              const o = vbn % BITS_PER_CHUNK;
              if (w === undefined || (w[o >>> 5] & (1 << (o & 31))) === 0) continue;
              take(vbn, words[s * step + 1], p.level - 1, p.index * POINTERS_PER_BLOCK + s, p.ino, p.ino === INODE_FILE);
            }
            return;
          }
          // An inode block of the inode file: the trees of its inodes.
          for (let r = 0; r < INODES_PER_BLOCK; r++) {
            const ino = p.index * INODES_PER_BLOCK + r;
            if (ino === 0 || ino >= e.inodeCount) continue;
            const o = r * INODE_SIZE;
            if (block.readUInt16LE(o) === InodeType.Free) continue;
            const height = block.readUInt16LE(o + 2);
            for (let j = 0; j < INODE_POINTERS; j++) take(block.readUInt32LE(o + 64 + j * 8), block.readUInt32LE(o + 68 + j * 8), height, j, ino, false);
          }
        });
      }
    }
  }
  return found;
}

/** The path of inode `ino` in snapshot `e`, by its parent pointers and its parents' entries (null when that fails). */
async function pathOf(volume: Volume, e: SnapshotEntry, ino: number): Promise<string | null> {
  try {
    const inodes = new InodeTable(cloneInode(e.inodeFile), e.inodeCount, volume.ctx, `inode file of snapshot ${e.name}`);
    const ns = new Namespace(inodes, volume.label);
    const parts: string[] = [];
    for (let cur = ino, depth = 0; cur !== ROOT_INODE; depth++) {
      if (depth > 4096) return null;
      const parent = (await inodes.get(cur)).parent;
      const entry = [...(await ns.entries(parent)).values()].find((x) => x.inode === cur);
      if (!entry) return null;
      parts.unshift(entry.name);
      cur = parent;
    }
    return '/' + parts.join('/');
  } catch {
    return null;
  }
}

/**
 * Checks every block of a send it can against the CRC-32 in its pointer. `prepare` walks the carried snapshots' trees
 * (before the first block is read); `verify` checks a read run and replaces a bad block with a copy rebuilt from
 * redundancy where the device has one (the volume's verified read path), else fails the send with CHECKSUM.
 */
export class SendChecks {
  readonly expected: ExpectedChecksums;

  private constructor(
    private readonly volume: Volume,
    private readonly snapshots: SnapshotEntry[],
    private readonly image: SparsePlane,
    private readonly locked: <T>(fn: () => Promise<T>) => Promise<T>,
    private readonly span: boolean,
  ) {
    this.expected = new ExpectedChecksums(image);
  }

  /**
   * Walks the carried snapshots (`snapshots`, as the stream's header lists them) for the image's expected checksums.
   * `span`: the send reads its blocks through the page cache, so the walk may read the image blocks between the ones
   * it needs (readSpanning).
   */
  static async prepare(volume: Volume, snapshots: SnapshotEntry[], image: SparsePlane, signal?: { cancelled: boolean }, span = false): Promise<SendChecks> {
    const locked = volume.device.concurrentReads === true ? <T>(fn: () => Promise<T>): Promise<T> => fn() : <T>(fn: () => Promise<T>): Promise<T> => volume.exclusive(fn);
    const checks = new SendChecks(volume, snapshots, image, locked, span);
    await walkImage(snapshots, image, checks.readMany, checks.expected, (vbn, where) => checks.corrupt(vbn, where), -1, signal, volume.label);
    return checks;
  }

  private readonly readMany: ReadMany = (pointers, label) => (this.span ? this.readSpanning(pointers, label) : this.locked(() => this.volume.ctx.readManyVerified(pointers, label)));

  /** The walk batch's blocks (a reused slab: valid until the next batch is read) and the spanning reads' buffers. */
  private slab: Buffer | null = null;
  private scratch: Buffer[] = [];
  /** Set once the buffers went back to the spares: a later walk (none is expected) uses fresh memory. */
  private released = false;

  /** Gives the walk's buffers back for later sends; only once nothing of this send can read through it any more. */
  releaseBuffers(): void {
    this.released = true;
    if (this.slab) spareSlabs.give(this.slab);
    for (const b of this.scratch) spareSpans.give(b);
    this.slab = null;
    this.scratch = [];
  }

  private buffer(spares: Spares<Buffer>, bytes: number): Buffer {
    return this.released ? Buffer.allocUnsafeSlow(bytes) : spares.take();
  }

  /** True when a read may run on from `a` to `b` (ascending VBNs): few blocks between them are outside the image. */
  private spannable(a: number, b: number): boolean {
    let outside = 0;
    for (let v = a + 1; v < b; v++) if (!this.image.has(v) && ++outside > SPAN_GAP) return false;
    return true;
  }

  /**
   * A walk batch (pointers in ascending VBN order) read in spans: the metadata a change rewrote sits among the data
   * blocks it wrote, all of them image blocks, so one read takes a run of them where reading only the metadata is a
   * read per block (1,662 reads for a 1% change of 4 GiB, 80-120 µs each here). The data read along is what the
   * send reads next, from the page cache. Each block is checked against its pointer (a bad one is read again
   * through the verified path, which may rebuild it, or fails the walk with CHECKSUM).
   */
  private async readSpanning(pointers: BlockPointer[], label: string): Promise<Buffer[]> {
    const slab = (this.slab ??= this.buffer(spareSlabs, WALK_BATCH * BLOCK_SIZE));
    for (const p of pointers) this.volume.ctx.checkPointer(p, label);
    const groups: [number, number][] = [];
    for (let i = 0; i < pointers.length; ) {
      let j = i + 1;
      while (j < pointers.length && pointers[j].vbn - pointers[i].vbn < SPAN_BLOCKS && pointers[j].vbn > pointers[j - 1].vbn && this.spannable(pointers[j - 1].vbn, pointers[j].vbn)) j++;
      groups.push([i, j]);
      i = j;
    }
    const out: Buffer[] = new Array(pointers.length);
    let next = 0;
    let failed = false;
    const worker = async (w: number): Promise<void> => {
      const scratch = (this.scratch[w] ??= this.buffer(spareSpans, SPAN_BLOCKS * BLOCK_SIZE));
      while (next < groups.length && !failed) {
        const [i, j] = groups[next++];
        const first = pointers[i].vbn;
        const count = pointers[j - 1].vbn - first + 1;
        try {
          const run = await this.locked(() => this.volume.ctx.readUnverified(first, count, scratch.subarray(0, count * BLOCK_SIZE), label));
          for (let k = i; k < j; k++) {
            const block = slab.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE);
            const at = (pointers[k].vbn - first) * BLOCK_SIZE;
            run.copy(block, 0, at, at + BLOCK_SIZE);
            if (blockChecksum(block) !== pointers[k].checksum) (await this.locked(() => this.volume.ctx.readVerified(pointers[k], label))).copy(block);
            out[k] = block;
          }
        } catch (e) {
          failed = true;
          throw e;
        }
      }
    };
    // Every worker settles before a failure is thrown: none may still be copying into the slab when it is read again.
    const settled = await Promise.allSettled(Array.from({ length: Math.min(SPANS_IN_FLIGHT, groups.length) }, (_, w) => worker(w)));
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    return out;
  }

  /** Checks blocks [vbn, vbn+count) read into `data`; a bad block is rebuilt in place or the send fails. */
  async verify(vbn: number, count: number, data: Buffer): Promise<void> {
    await this.expected.check(vbn, count, data, async (v, checksum, block) => {
      let good: Buffer;
      try {
        // Read again through the file system's verified path: a redundant device rebuilds the block from parity.
        good = await this.locked(() => this.volume.ctx.readVerified({ vbn: v, checksum }, `VBN ${v}`));
      } catch (e) {
        if (!isSnapplaneError(e, 'CHECKSUM')) throw e;
        return this.corrupt(v, null);
      }
      good.copy(block);
    });
  }

  /** The CHECKSUM error for a bad block of the stream, naming its snapshot and file where a second walk finds them. */
  private async corrupt(vbn: number, known: Owner | null): Promise<never> {
    const where = known ?? (await this.locate(vbn));
    const volume = this.volume.label;
    let what = 'a block';
    let path: string | undefined;
    let snapshot: string | undefined;
    if (where) {
      const e = this.snapshots[where.snap];
      snapshot = e.name;
      const kind = where.level > 0 ? 'an indirect block of' : where.ino === INODE_FILE ? 'an inode block of' : 'a block of';
      if (where.ino === INODE_FILE) what = `${kind} the inode file of snapshot '${e.name}'`;
      else if (where.ino === BLOCK_MAP) what = `${kind} the block map of snapshot '${e.name}'`;
      else {
        path = (await this.locked(() => pathOf(this.volume, e, where.ino))) ?? undefined;
        what = `${kind} '${path ?? `inode ${where.ino}`}' in snapshot '${e.name}'`;
      }
    }
    throw new SnapplaneError('CHECKSUM', `checksum mismatch in ${what} at VBN ${vbn} on volume '${volume}': the block is corrupt, so the send stopped before it went out (a receiver commits nothing of a stream cut short)`, { volume, vbn, path, snapshot });
  }

  /** Where `vbn` sits, by a second walk (only on the error path). */
  private async locate(vbn: number): Promise<Owner | null> {
    const noFail = async (): Promise<never> => {
      throw new SnapplaneError('CHECKSUM', `checksum mismatch at VBN ${vbn}`, { volume: this.volume.label, vbn });
    };
    try {
      return await walkImage(this.snapshots, this.image, this.readMany, new ExpectedChecksums(this.image), noFail, vbn);
    } catch {
      return null;
    }
  }
}
