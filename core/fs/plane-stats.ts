/** Per-plane block counts computed chunk by chunk over all planes (snapshot planes are never loaded whole). */
import { BITS_PER_CHUNK, WORDS_PER_CHUNK, popcount32 } from '../planes/bit-plane.js';
import { ACTIVE_PLANE, SUMMARY_PLANE } from './format.js';
import type { Volume } from './volume.js';

export interface PlaneStats {
  blocks: number;
  /** Set in this plane and in no other (active and every snapshot). */
  unique: number;
  /** Active plane only: blocks held only by snapshots, and free blocks. */
  snapshotOnly: number;
  free: number;
}

/**
 * Counts for the active plane and every snapshot plane. `planes` lists the snapshot planes to report;
 * uniqueness is always judged against all of them. With `capacityOnly`, only the active plane's capacity split.
 */
export async function planeStatistics(volume: Volume, planes: number[], capacityOnly = false): Promise<Map<number, PlaneStats>> {
  const map = await volume.planeMap();
  const all = capacityOnly ? [] : volume.snapshots.list().map((e) => e.plane);
  const stats = new Map<number, PlaneStats>();
  for (const p of [ACTIVE_PLANE, ...all]) stats.set(p, { blocks: 0, unique: 0, snapshotOnly: 0, free: 0 });
  const once = new Uint32Array(WORDS_PER_CHUNK);
  const twice = new Uint32Array(WORDS_PER_CHUNK);
  const chunks = map.active.chunks;
  const active = stats.get(ACTIVE_PLANE)!;
  for (let c = 0; c < chunks; c++) {
    const bitsHere = Math.min(BITS_PER_CHUNK, map.blockCount - c * BITS_PER_CHUNK);
    const a = map.active.chunkWords(c);
    const s = map.summary.chunkWords(c);
    // Capacity split.
    if (map.active.chunkPopulation[c] === 0 && map.summary.chunkPopulation[c] === 0) {
      active.free += bitsHere;
    } else {
      let used = 0;
      let snapOnly = 0;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) {
        const u = a[i] | s[i];
        if (u !== 0) {
          used += popcount32(u);
          snapOnly += popcount32(s[i] & ~a[i]);
        }
      }
      active.free += bitsHere - used;
      active.snapshotOnly += snapOnly;
    }
    active.blocks += map.active.chunkPopulation[c];
    if (capacityOnly) continue;
    // Uniqueness: a word-parallel "seen once / seen twice" count across every plane.
    const loaded: [number, Uint32Array][] = [[ACTIVE_PLANE, a]];
    for (const p of all) {
      const shadow = map.shadows.get(p);
      if (shadow) {
        if (shadow.chunkPopulation[c] !== 0) loaded.push([p, shadow.chunkWords(c)]);
        continue;
      }
      if (map.summary.chunkPopulation[c] === 0) continue; // a regular snapshot plane is a subset of the summary
      const bytes = await map.readChunk(p, c);
      if (bytes) loaded.push([p, new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 4096))]);
    }
    if (loaded.length === 1) {
      active.unique += map.active.chunkPopulation[c];
      continue;
    }
    once.fill(0);
    twice.fill(0);
    for (const [, w] of loaded) {
      for (let i = 0; i < WORDS_PER_CHUNK; i++) {
        twice[i] |= once[i] & w[i];
        once[i] |= w[i];
      }
    }
    for (const [p, w] of loaded) {
      const st = stats.get(p)!;
      let blocks = 0;
      let unique = 0;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) {
        const x = w[i];
        if (x === 0) continue;
        if (p !== ACTIVE_PLANE) blocks += popcount32(x);
        unique += popcount32(x & ~twice[i]);
      }
      st.blocks += blocks;
      st.unique += unique;
    }
  }
  void planes;
  void SUMMARY_PLANE;
  return stats;
}
