/**
 * The block records of a receive (receive.ts): each is checked, written (a few at once) and counted, with a resume
 * point every 10 s. Kept apart from the rest of the receive on purpose: this loop runs once per record, and V8
 * compiles a hot function whole. Inside the receive's one big function it cost ~250 ms of compiler CPU per
 * receive in a long-running `serve`, recompiled for every receive.
 */
import { SnapplaneError } from '../common/errors.js';
import { BLOCK_SIZE } from '../common/units.js';
import type { SnapshotEntry } from '../fs/format.js';
import type { LandedBlocks } from '../fs/landed-blocks.js';
import type { Volume } from '../fs/volume.js';
import type { SparsePlane } from '../planes/sparse-plane.js';
import { sharedBlockDiffers } from './receive-checks.js';
import type { StreamItem, StreamReader } from './reader.js';
import type { Remap } from './remap.js';
import type { Spool } from './spool.js';

/** Record writes kept in flight; a sender reusing buffers must keep more than this many beyond its read-ahead. */
export const WRITES_IN_FLIGHT = 4;
/**
 * How often a receive makes a resume point: every 10 s once 64 MiB landed since the last. SNAPPLANE_RESUME_POINT_MS
 * shortens it (tests and drills: 1 MiB is then enough), so a killed receiver's token can be checked.
 */
const POINT_MS = Number(process.env.SNAPPLANE_RESUME_POINT_MS ?? 10_000);
const POINT_BLOCKS = POINT_MS < 10_000 ? 256 : 16384;

/** What landing needs from the receive that set it up. */
export interface LandingPlan {
  volume: Volume;
  reader: StreamReader;
  /** The blocks the stream carries (source VBNs). */
  image: SparsePlane;
  /** Blocks our snapshots hold: they may only be written with the bytes they have. */
  shared: SparsePlane;
  entries: SnapshotEntry[];
  /** Destination VBNs whose blocks go to the spool instead, until the stream has verified. */
  held: Set<number>;
  spool: Spool;
  remap: Remap | null;
  /** Copies of the blocks that can be metadata, for reading the received tree back; null: none kept. */
  landedCopies: LandedBlocks | null;
  /** The first VBN this stream carries (past the resume point of an interrupted receive). */
  resumeFrom: number;
  /** Blocks the stream must still carry. */
  expected: number;
  write: (vbn: number, data: Buffer) => Promise<void>;
  /** Saves the resume token: the stream landed up to `nextVbn` (called after a flush made that durable). */
  saveToken: (nextVbn: number) => Promise<void>;
  bad: (message: string) => SnapplaneError;
  signal?: { cancelled: boolean };
  onProgress?: (p: { blocks: number; totalBlocks: number }) => void;
}

type BlocksItem = Extract<StreamItem, { type: 'blocks' }>;

/** Lands the block records of one receive. */
export class BlockLanding {
  /** Blocks landed (written or spooled). */
  landed = 0;
  /** The VBN after the last record taken. */
  nextVbn: number;
  /** The first VBN of the first record whose write failed (a full host disk): the resume point cannot pass it. */
  failedAt = Infinity;
  /** A block one of our snapshots holds came with other bytes. */
  refused = false;
  /** A background resume point failed. */
  pointError: unknown = null;
  private readonly inFlight: Promise<void>[] = [];
  private sinceFlush = 0;
  private lastToken = Date.now();
  // A resume point on a device that can flush while writes go on is made in the background: the transfer
  // does not stall while the page cache drains (about a second per 10 s of transfer here).
  private point: Promise<void> | null = null;

  constructor(private readonly plan: LandingPlan) {
    this.nextVbn = plan.resumeFrom;
  }

  /** Lands the block records from `item` on, with every write settled; returns the item after them. */
  async run(item: StreamItem): Promise<StreamItem> {
    while (item.type === 'blocks') {
      await this.land(item);
      item = await this.plan.reader.next();
    }
    while (this.inFlight.length) await this.inFlight.shift();
    await this.settlePoint();
    return item;
  }

  /** After a failure: waits until no write or resume point is in flight any more (their errors are not taken). */
  async quiesce(): Promise<void> {
    await Promise.allSettled([this.point]);
    await Promise.allSettled(this.inFlight);
  }

  private async land(item: BlocksItem): Promise<void> {
    const { volume, image, shared, held, remap, spool, resumeFrom, bad } = this.plan;
    if (this.plan.signal?.cancelled) throw new SnapplaneError('CANCELLED', 'receive cancelled', { volume: volume.label });
    if (item.vbn < resumeFrom) throw bad(`block record for VBN ${item.vbn} before the resume point ${resumeFrom}`);
    for (let v = item.vbn; v < item.vbn + item.count; v++) if (!image.has(v)) throw bad(`block record carries VBN ${v}, which is not in the image`);
    this.plan.landedCopies?.keep(item.vbn, item.data);
    // A block one of our snapshots holds may only be rewritten with the same bytes (refuseCollisions).
    for (let v = item.vbn; v < item.vbn + item.count; v++) {
      if (!shared.has(v)) continue;
      const k = v - item.vbn;
      if (!(await volume.device.readBlocks(v, 1)).equals(item.data.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE))) {
        this.refused = true;
        throw await sharedBlockDiffers(volume.blockMap!, this.plan.entries, volume.label, v);
      }
    }
    // Up to WRITES_IN_FLIGHT record writes overlap the next records' reads and checks.
    const first = item.vbn;
    const writing = writeAround(this.plan.write, item.vbn, item.count, item.data, held, remap, (v, data) => spool.add(v, data)).catch((e: unknown) => {
      this.failedAt = Math.min(this.failedAt, first);
      throw e;
    });
    // Its failure is taken where it is awaited; until then it must not count as unhandled, which would end the
    // process (a whole `serve`) while the next record is being read.
    writing.catch(() => undefined);
    this.inFlight.push(writing);
    if (this.inFlight.length >= WRITES_IN_FLIGHT) await this.inFlight.shift();
    this.landed += item.count;
    this.sinceFlush += item.count;
    this.nextVbn = item.vbn + item.count;
    // A resume point every 10 s: a flush, then the token (a broken connection saves one at once; only a killed
    // receiver loses up to 10 s of transfer, plus the one flushing then).
    if (this.sinceFlush >= POINT_BLOCKS && Date.now() - this.lastToken >= POINT_MS) await this.makePoint();
    if (this.pointError) await this.settlePoint();
    this.plan.onProgress?.({ blocks: this.landed, totalBlocks: this.plan.expected });
  }

  private async makePoint(): Promise<void> {
    await this.settlePoint();
    // Every write before the point has finished; the flush makes them durable, then the token names the point.
    while (this.inFlight.length) await this.inFlight.shift();
    const at = this.nextVbn;
    const device = this.plan.volume.device;
    const made = device.flush().then(() => this.plan.saveToken(at));
    if (device.flushWhileWriting) {
      this.point = made.catch((e: unknown) => {
        this.pointError = e;
      });
    } else await made;
    this.sinceFlush = 0;
    this.lastToken = Date.now();
  }

  private async settlePoint(): Promise<void> {
    const p = this.point;
    this.point = null;
    if (p) await p;
    if (this.pointError) throw this.pointError;
  }
}

/**
 * Writes a run of blocks at their destination VBNs (moved ones through `remap`), handing blocks in `held` to
 * `hold` instead; stretches of consecutive destination VBNs go out as one write.
 */
async function writeAround(write: (vbn: number, data: Buffer) => Promise<void>, vbn: number, count: number, data: Buffer, held: Set<number>, remap: Remap | null, hold: (vbn: number, data: Buffer) => Promise<void>): Promise<void> {
  const dest = (k: number): number => (remap ? (remap.get(vbn + k) ?? vbn + k) : vbn + k);
  let start = 0;
  for (let k = 0; k <= count; k++) {
    if (k < count && !held.has(dest(k)) && (k === start || dest(k) === dest(k - 1) + 1)) continue;
    if (k > start) await write(dest(start), data.subarray(start * BLOCK_SIZE, k * BLOCK_SIZE));
    if (k < count && held.has(dest(k))) {
      await hold(dest(k), data.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE));
      start = k + 1;
    } else start = k;
  }
}
