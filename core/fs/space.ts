/**
 * Exact space accounting from the planes, in one word-parallel pass: what deleting a set of snapshots would
 * free, what each snapshot holds alone, and what was written between adjacent snapshots.
 */
import { WORDS_PER_CHUNK, popcount32 } from '../planes/bit-plane.js';
import { BLOCK_SIZE } from '../common/units.js';
import { SnapshotFlag } from './format.js';
import type { Volume } from './volume.js';
import type { SpaceReport } from '../api/types.js';

export type { SpaceReport } from '../api/types.js';

/** Computes the space report for deleting `names` (every name must exist). */
export async function spaceReport(volume: Volume, names: string[]): Promise<SpaceReport> {
  const map = await volume.planeMap();
  const entries = volume.snapshots.list();
  const set = new Set(names.map((n) => volume.snapshots.byName(n, volume.label).plane));
  // Shadow snapshots pin nothing, so deleting them frees nothing and they never keep others' blocks.
  const regular = entries.filter((e) => !(e.flags & SnapshotFlag.shadow));
  const inSet = regular.filter((e) => set.has(e.plane));
  const rest = regular.filter((e) => !set.has(e.plane));
  const unique = new Map<number, number>(entries.map((e) => [e.plane, 0]));
  const between = new Map<number, number>();
  let freed = 0;
  const union = new Uint32Array(WORDS_PER_CHUNK);
  const others = new Uint32Array(WORDS_PER_CHUNK);
  const once = new Uint32Array(WORDS_PER_CHUNK);
  const twice = new Uint32Array(WORDS_PER_CHUNK);
  const zero = new Uint32Array(WORDS_PER_CHUNK);
  for (let c = 0; c < map.summary.chunks; c++) {
    if (map.summary.chunkPopulation[c] === 0 && [...map.shadows.values()].every((s) => s.chunkPopulation[c] === 0)) continue;
    const chunkOf = async (plane: number): Promise<Uint32Array> => {
      const shadow = map.shadows.get(plane);
      if (shadow) return shadow.chunkWords(c);
      const b = await map.readChunk(plane, c);
      return b ? new Uint32Array(b.buffer, b.byteOffset, WORDS_PER_CHUNK) : zero;
    };
    const planes = new Map<number, Uint32Array>();
    for (const e of entries) planes.set(e.plane, (await chunkOf(e.plane)).slice());
    const active = map.active.chunkWords(c);
    union.fill(0);
    others.set(active);
    for (const e of inSet) {
      const w = planes.get(e.plane)!;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) union[i] |= w[i];
    }
    for (const e of rest) {
      const w = planes.get(e.plane)!;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) others[i] |= w[i];
    }
    once.set(active);
    twice.fill(0);
    for (const e of entries) {
      const w = planes.get(e.plane)!;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) {
        twice[i] |= once[i] & w[i];
        once[i] |= w[i];
      }
    }
    for (let i = 0; i < WORDS_PER_CHUNK; i++) {
      const f = union[i] & ~others[i];
      if (f !== 0) freed += popcount32(f);
    }
    for (const e of entries) {
      const w = planes.get(e.plane)!;
      let n = 0;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) if (w[i] !== 0) n += popcount32(w[i] & ~twice[i]);
      unique.set(e.plane, unique.get(e.plane)! + n);
    }
    for (let k = 1; k < entries.length; k++) {
      const older = planes.get(entries[k - 1].plane)!;
      const newer = planes.get(entries[k].plane)!;
      let n = 0;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) if (newer[i] !== 0) n += popcount32(newer[i] & ~older[i]);
      between.set(k, (between.get(k) ?? 0) + n);
    }
  }
  return {
    deleting: names,
    freedBlocks: freed,
    freedBytes: freed * BLOCK_SIZE,
    perSnapshot: entries.map((e) => ({ name: e.name, uniqueBlocks: unique.get(e.plane)!, uniqueBytes: unique.get(e.plane)! * BLOCK_SIZE })),
    writtenBetween: entries.slice(1).map((e, k) => ({
      older: entries[k].name,
      newer: e.name,
      blocks: between.get(k + 1) ?? 0,
      bytes: (between.get(k + 1) ?? 0) * BLOCK_SIZE,
    })),
  };
}
