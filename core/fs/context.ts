/** The read/allocate context shared by every block tree of a volume: verified reads, the allocator. */
import { BLOCK_SIZE } from '../common/units.js';
import { blockChecksum } from '../common/checksum.js';
import { SnapplaneError, asIoError } from '../common/errors.js';
import type { BlockDevice } from '../device/block-device.js';
import type { TreeContext } from './file-tree.js';
import type { BlockPointer } from './format.js';
import type { BlockMap } from './block-map.js';
import { BlockPool } from '../common/block-pool.js';
import type { LandedBlocks } from './landed-blocks.js';

const MAX_RUN = 1024;
/** Device reads a verified multi-block read keeps in flight. */
const READS_IN_FLIGHT = 8;

export class VolumeContext implements TreeContext {
  blockMap: BlockMap | null = null;
  /** Block buffers for the write path, reused after each CP. */
  readonly pool = new BlockPool(65536);

  constructor(
    readonly device: BlockDevice,
    readonly volume: string,
    readonly writable: boolean,
  ) {}

  /** Refuses (CHECKSUM: corrupted metadata) a pointer outside the volume before anything reads it. */
  checkPointer(p: BlockPointer, label: string): void {
    if (p.vbn < 2 || p.vbn >= this.device.blockCount) {
      throw new SnapplaneError('CHECKSUM', `'${label}' points at VBN ${p.vbn}, outside the volume (corrupted metadata)`, {
        volume: this.volume,
        path: label,
        vbn: p.vbn,
      });
    }
  }

  private mismatch(p: BlockPointer, label: string): SnapplaneError {
    return new SnapplaneError('CHECKSUM', `checksum mismatch in '${label}' at VBN ${p.vbn} on volume '${this.volume}'`, {
      volume: this.volume,
      path: label,
      vbn: p.vbn,
    });
  }

  /**
   * Blocks a receive just wrote, read from memory instead of the device while it builds the received state (they
   * equal the device's copy; checksums are still verified). A read without a buffer to fill may get the kept bytes
   * themselves: only that read-only walk reads while this is set. Null otherwise.
   */
  landed: LandedBlocks | null = null;

  /** A device read; failures of any kind come back as typed IO errors naming the file and VBN. */
  private async read(vbn: number, count: number, into: Buffer | undefined, label: string): Promise<Buffer> {
    const kept = this.landed?.read(vbn, count, into);
    if (kept) return kept;
    try {
      return await this.device.readBlocks(vbn, count, into);
    } catch (e) {
      throw asIoError(e, `read of '${label}' at VBN ${vbn} failed`, { volume: this.volume, path: label, vbn });
    }
  }

  /** Blocks [vbn, vbn+count) as the device has them, into `into` when it is their size: unverified (the caller checks the blocks it needs). */
  readUnverified(vbn: number, count: number, into: Buffer | undefined, label: string): Promise<Buffer> {
    return this.read(vbn, count, into, label);
  }

  /** Blocks whose member copy failed its checksum and were rebuilt from redundancy (and written back). */
  repaired = 0;
  /** The same blocks counted per member they live on (redundant devices that say which). */
  readonly repairedOn = new Map<number, number>();

  /**
   * A read-only view of a volume another process writes: says (as the error to report) that the writer committed
   * since the view was opened, or null. A block that fails its checksum then is most likely one the writer freed and
   * reused after this view's CP, not a corrupt one: the reader is told to read again instead of CHECKSUM.
   */
  staleness: (() => Promise<SnapplaneError | null>) | null = null;

  async readVerified(p: BlockPointer, label: string): Promise<Buffer> {
    this.checkPointer(p, label);
    const data = await this.read(p.vbn, 1, undefined, label);
    if (blockChecksum(data) !== p.checksum) return this.heal(p, label);
    return data;
  }

  /** A block failed its checksum: a redundant device may rebuild it; the rebuilt copy must verify too. */
  private async heal(p: BlockPointer, label: string): Promise<Buffer> {
    try {
      return await this.rebuild(p, label);
    } catch (e) {
      const stale = e instanceof SnapplaneError && e.code === 'CHECKSUM' ? await this.staleness?.().catch(() => null) : null;
      throw stale ?? e;
    }
  }

  private async rebuild(p: BlockPointer, label: string): Promise<Buffer> {
    if (!this.device.reconstructBlock) throw this.mismatch(p, label);
    let rebuilt: Buffer;
    try {
      rebuilt = await this.device.reconstructBlock(p.vbn);
    } catch {
      throw this.mismatch(p, label);
    }
    if (blockChecksum(rebuilt) !== p.checksum) throw this.mismatch(p, label);
    this.repaired++;
    const member = this.device.memberOf?.(p.vbn);
    if (member !== undefined) this.repairedOn.set(member, (this.repairedOn.get(member) ?? 0) + 1);
    if (this.writable && this.device.repairBlock) await this.device.repairBlock(p.vbn, rebuilt).catch(() => undefined);
    return rebuilt;
  }

  async readManyVerified(pointers: BlockPointer[], label: string): Promise<Buffer[]> {
    const out: Buffer[] = new Array(pointers.length);
    const runs: [number, number][] = [];
    for (let i = 0; i < pointers.length; ) {
      this.checkPointer(pointers[i], label);
      let j = i + 1;
      while (j < pointers.length && j - i < MAX_RUN && pointers[j].vbn === pointers[j - 1].vbn + 1) j++;
      runs.push([i, j]);
      i = j;
    }
    // Scattered runs are read several at a time: on a cold cache a disk answers 4-8 requests in flight about as fast
    // as one (measured here: 245 µs per random 4 KiB read one at a time, 49 µs with 4 in flight).
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (next < runs.length && !failed) {
        const [i, j] = runs[next++];
        try {
          const run = await this.read(pointers[i].vbn, j - i, undefined, label);
          for (let k = i; k < j; k++) {
            const block = run.subarray((k - i) * BLOCK_SIZE, (k - i + 1) * BLOCK_SIZE);
            out[k] = blockChecksum(block) === pointers[k].checksum ? block : await this.heal(pointers[k], label);
          }
        } catch (e) {
          failed = true;
          throw e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(READS_IN_FLIGHT, runs.length) }, worker));
    return out;
  }

  /** Reads a run of blocks with consecutive VBNs straight into `into` (run length × 4096 bytes), verified. */
  async readRunInto(pointers: BlockPointer[], into: Buffer, label: string): Promise<void> {
    this.checkPointer(pointers[0], label);
    this.checkPointer(pointers[pointers.length - 1], label);
    const got = await this.read(pointers[0].vbn, pointers.length, into, label);
    if (got !== into) got.copy(into);
    for (let k = 0; k < pointers.length; k++) {
      const block = into.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE);
      if (blockChecksum(block) !== pointers[k].checksum) (await this.heal(pointers[k], label)).copy(block);
    }
  }

  allocate(): number {
    if (!this.writable || !this.blockMap) throw new SnapplaneError('READ_ONLY', `volume '${this.volume}' is open read-only`, { volume: this.volume });
    return this.blockMap.allocate();
  }

  free(vbn: number): void {
    if (!this.writable || !this.blockMap) throw new SnapplaneError('READ_ONLY', `volume '${this.volume}' is open read-only`, { volume: this.volume });
    this.blockMap.release(vbn);
  }

  private stagingBuffer: Buffer | null = null;

  /** A reused 4 MiB buffer for gathering runs of blocks into one write. */
  staging(): Buffer {
    this.stagingBuffer ??= Buffer.allocUnsafeSlow(1024 * BLOCK_SIZE);
    return this.stagingBuffer;
  }

  recycle(data: Buffer): void {
    this.pool.give(data);
  }
}
