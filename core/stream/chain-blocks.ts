/**
 * The blocks of a backup chain that a restore writes over blocks an earlier backup's snapshot still holds. A
 * receive accepts such a block only when it brings the bytes already there (receive-checks.ts: a snapshot the
 * source still has holds the same bytes on both sides, e.g. after a revert on the source brought its blocks back),
 * so verifying a chain compares them too: a chain verify calls restorable is one restore accepts.
 */
import { xxh64 } from '@node-rs/xxhash';
import { SnapplaneError } from '../common/errors.js';
import { BLOCK_SIZE } from '../common/units.js';
import { WORDS_PER_CHUNK } from '../planes/bit-plane.js';
import { SparsePlane } from '../planes/sparse-plane.js';
import { backupBytes, backupLabel, type BackupLocation } from './backup-source.js';
import { StreamReader } from './reader.js';

/** Per backup of a chain, the VBNs of its image that snapshots of the backups before it hold. */
export class SharedChainBlocks {
  private readonly watched = new SparsePlane();
  private readonly seen = new Map<number, bigint>();

  private constructor(
    private readonly labels: string[],
    private readonly shared: SparsePlane[],
  ) {
    for (const s of shared) this.watched.addAll(s);
  }

  /** Reads the image and plane records of each backup (they lead each stream; no block is read). */
  static async plan(locations: BackupLocation[]): Promise<SharedChainBlocks> {
    const held = new SparsePlane();
    const shared: SparsePlane[] = [];
    for (const loc of locations) {
      const r = new StreamReader(backupBytes(loc));
      const image = new SparsePlane();
      const planes = new SparsePlane();
      try {
        await r.open();
        for (;;) {
          const item = await r.next();
          if (item.type === 'image') image.setChunk(item.chunk, item.words.slice());
          else if (item.type === 'plane') orChunk(planes, item.chunk, item.words);
          else if (item.type !== 'dealloc') break;
        }
      } catch (e) {
        throw new SnapplaneError('BAD_STREAM', `${backupLabel(loc)}: ${(e as Error).message}`, { path: backupLabel(loc) });
      } finally {
        await r.close();
      }
      shared.push(intersect(image, held));
      held.addAll(planes);
    }
    return new SharedChainBlocks(locations.map(backupLabel), shared);
  }

  /** True when no backup writes over a block an earlier one's snapshot holds (nothing to compare). */
  get empty(): boolean {
    return this.watched.count === 0;
  }

  /**
   * Takes the blocks record of backup `k` (in chain order, backups in order): throws when a block a snapshot
   * restored before holds comes with other bytes than the backup that put it there carried.
   */
  check(k: number, vbn: number, count: number, data: Buffer): void {
    for (let j = 0; j < count; j++) {
      const v = vbn + j;
      if (!this.watched.has(v)) continue;
      const h = xxh64(data.subarray(j * BLOCK_SIZE, (j + 1) * BLOCK_SIZE));
      if (this.shared[k].has(v) && this.seen.get(v) !== h) {
        throw new SnapplaneError(
          'INVALID',
          `${this.labels[k]} rewrites VBN ${v}, which a snapshot restored from an earlier backup of the chain holds, with other data (the source had deleted that snapshot and reused the block when it made this backup); restored in this order, the restore stops there and names the snapshot to delete first`,
          { path: this.labels[k], vbn: v },
        );
      }
      this.seen.set(v, h);
    }
  }
}

function orChunk(plane: SparsePlane, c: number, words: Uint32Array): void {
  const mine = plane.chunk(c);
  if (!mine) return plane.setChunk(c, words.slice());
  const w = mine.slice();
  for (let i = 0; i < WORDS_PER_CHUNK; i++) w[i] |= words[i];
  plane.setChunk(c, w);
}

function intersect(a: SparsePlane, b: SparsePlane): SparsePlane {
  const out = new SparsePlane();
  for (const c of a.chunkIndexes()) {
    const y = b.chunk(c);
    if (!y) continue;
    const x = a.chunk(c)!;
    const w = new Uint32Array(WORDS_PER_CHUNK);
    let any = 0;
    for (let i = 0; i < WORDS_PER_CHUNK; i++) any |= w[i] = x[i] & y[i];
    if (any !== 0) out.setChunk(c, w);
  }
  return out;
}
