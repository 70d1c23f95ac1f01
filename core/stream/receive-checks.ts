/**
 * The receiver's checks before anything is written: is this stream for this destination (its base, its
 * identity, its snapshot names, a resume it claims), and does its image land only where the destination may take
 * blocks.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SnapplaneError } from '../common/errors.js';
import { WORDS_PER_CHUNK } from '../planes/bit-plane.js';
import { SparsePlane } from '../planes/sparse-plane.js';
import { FIRST_FREE_INODE, SnapshotFlag, type Inode, type SnapshotEntry } from '../fs/format.js';
import type { BlockMap } from '../fs/block-map.js';
import type { Volume } from '../fs/volume.js';
import type { StreamHeader } from './format.js';

/** What an interrupted receive leaves behind, so the sender can continue where it stopped. */
export interface TokenFile {
  streamId: string;
  fingerprint: string;
  destGeneration: number;
  nextVbn: number;
  expression: string;
}

/** Fields a resumed stream must repeat exactly. */
function fingerprint(h: StreamHeader): string {
  const stable = { streamId: h.streamId, sourceVolume: h.sourceVolume, blockCount: h.blockCount, kind: h.kind, expression: h.expression, base: h.base, snapshots: h.snapshots, imageBlocks: h.imageBlocks };
  return createHash('sha256').update(JSON.stringify(stable)).digest('hex');
}

function sameIdentity(e: SnapshotEntry, s: { id: number; generation: number; createdAtMs: number }): boolean {
  return e.generation === s.generation && e.createdAtMs === s.createdAtMs;
}

/** Refuses a stream carrying a snapshot name the destination has: the same snapshot (received before) or another. */
function refuseKnownNames(header: StreamHeader, entries: SnapshotEntry[], label: string): void {
  const same = header.snapshots.filter((s) => entries.some((e) => e.name === s.name && sameIdentity(e, s)));
  for (const s of header.snapshots) {
    const clash = entries.find((e) => e.name === s.name);
    if (!clash) continue;
    if (!sameIdentity(clash, s)) throw new SnapplaneError('EXISTS', `'${label}' has a different snapshot called '${s.name}'; rename it first`, { volume: label, snapshot: s.name });
    const why = same.length === header.snapshots.length ? 'this stream was received before' : 'an earlier stream brought it';
    throw new SnapplaneError('EXISTS', `'${label}' already has snapshot '${s.name}' (${why})`, { volume: label, snapshot: s.name });
  }
}

function sameRoot(a: Inode, b: Inode): boolean {
  return a.height === b.height && a.size === b.size && a.pointers.every((p, i) => p.vbn === b.pointers[i].vbn && p.checksum === b.pointers[i].checksum);
}

/**
 * Refuses a stream that is not for this destination: a full one into a volume with content, an incremental whose
 * base it lacks, snapshot names it already has, a destination changed since the base (unless `force`), a resume it
 * cannot continue. Changes nothing: with `force`, `revert` says the receive must discard the changes since the base
 * (it does so in the CP that commits the stream). Returns the base, the destination's snapshots and the stream's
 * fingerprint.
 */
export async function checkStreamFits(volume: Volume, header: StreamHeader, tokenPath: string, force: boolean): Promise<{ baseEntry: SnapshotEntry | null; entries: SnapshotEntry[]; fp: string; revert: boolean }> {
  const label = volume.label;
  const bad = (message: string): SnapplaneError => new SnapplaneError('BAD_STREAM', message, { volume: label });
  const entries = volume.snapshots.list();
  let baseEntry: SnapshotEntry | null = null;
  let revert = false;
  if (header.kind === 'full') {
    if (entries.length > 0 || volume.fsinfo.inodeCount > FIRST_FREE_INODE) {
      if (volume.fsinfo.uuid === header.sourceVolume) refuseKnownNames(header, entries, label);
      throw new SnapplaneError('EXISTS', `a full stream needs a new, empty volume; '${label}' already has ${entries.length > 0 ? 'snapshots' : 'files'} (receive into a new volume path, or send an incremental)`, { volume: label });
    }
  } else if (volume.fsinfo.uuid !== header.sourceVolume) {
    // A volume's copies keep its uuid: another uuid is another volume (one made new, or a copy of another source).
    throw new SnapplaneError('INVALID', `the incremental stream is from volume ${header.sourceVolume} ('${header.sourceLabel}'), but '${label}' is a different volume (${volume.fsinfo.uuid}), not a copy of it: an incremental goes only into a copy of its source that has its base`, { volume: label });
  }
  // Before the base: a stream received before is said to be so, not that the volume moved past its base.
  refuseKnownNames(header, entries, label);
  if (header.kind === 'incremental') {
    const base = header.base!;
    baseEntry = entries.find((e) => e.name === base.name && sameIdentity(e, base)) ?? null;
    if (!baseEntry) {
      const named = entries.find((e) => e.name === base.name);
      const have = entries.map((e) => e.name).join(', ') || 'none';
      throw new SnapplaneError(
        'NOT_FOUND',
        named
          ? `'${label}' has a snapshot '${base.name}', but not the one this incremental is based on (taken at CP ${base.generation}); its snapshots: ${have}`
          : `'${label}' does not have the base snapshot '${base.name}' this incremental needs; its snapshots: ${have}`,
        { volume: label, snapshot: base.name },
      );
    }
    if (!sameRoot(volume.fsinfo.inodeFile, baseEntry.inodeFile)) {
      if (!force) {
        throw new SnapplaneError('INVALID', `'${label}' has changed since snapshot '${base.name}'; revert it to '${base.name}' first (or receive with --force, which discards those changes)`, { volume: label, snapshot: base.name });
      }
      revert = true;
    }
  }
  const gens = header.snapshots.map((s) => s.generation);
  if (gens.some((g, i) => i > 0 && g <= gens[i - 1])) throw bad('stream header lists its snapshots out of order');
  if (baseEntry && gens[gens.length - 1] <= baseEntry.generation) throw bad(`the newest snapshot of the stream is older than its base '${baseEntry.name}'`);
  if (entries.length + header.snapshots.length > 255) {
    throw new SnapplaneError('LIMIT', `'${label}' has ${entries.length} snapshots; ${header.snapshots.length} more would pass the limit of 255`, { volume: label });
  }
  const fp = fingerprint(header);
  if (header.resumeFromVbn !== null) {
    let token: TokenFile | null = null;
    try {
      token = JSON.parse(await readFile(tokenPath, 'utf8')) as TokenFile;
    } catch {
      // handled below
    }
    if (!token || token.streamId !== header.streamId) throw new SnapplaneError('INVALID', `'${label}' has no interrupted receive of stream ${header.streamId} to resume; send the stream from the start`, { volume: label });
    if (token.fingerprint !== fp) throw new SnapplaneError('INVALID', `the resumed stream does not match the interrupted one (the source's snapshots changed); send it from the start`, { volume: label });
    if (token.destGeneration !== volume.fsinfo.generation) throw new SnapplaneError('INVALID', `'${label}' changed after the interrupted receive (CP ${token.destGeneration} → ${volume.fsinfo.generation}); send the stream from the start`, { volume: label });
    if (header.resumeFromVbn > token.nextVbn) throw new SnapplaneError('INVALID', `the stream resumes at VBN ${header.resumeFromVbn} but only blocks before VBN ${token.nextVbn} landed`, { volume: label });
  }
  return { baseEntry, entries, fp, revert };
}

/**
 * Refuses an image that would land on blocks the destination still needs: shadow snapshots' blocks, or files
 * changed since the base. Its own metadata (`meta`) may be hit: that moves first; so may `overwritable` blocks (an
 * off-line update from a shadow master) and `discard` blocks (changes a forced receive discards; they are held until
 * the stream has verified). Blocks its snapshots hold may be hit only by the same data (copy-on-write: a block is
 * not rewritten while a snapshot holds it, so a snapshot the source still has holds the same bytes here and there):
 * returns them, for the receive to compare as they arrive (see sharedBlockDiffers).
 */
export function refuseCollisions(map: BlockMap, destImage: SparsePlane, meta: Set<number>, entries: SnapshotEntry[], label: string, overwritable: Uint32Array | null = null, discard: Uint32Array | null = null): SparsePlane {
  const shared = new SparsePlane();
  for (const c of destImage.chunkIndexes()) {
    const w = destImage.chunk(c)!;
    const base = c * WORDS_PER_CHUNK;
    let sharedWords: Uint32Array | null = null;
    for (let i = 0; i < WORDS_PER_CHUNK; i++) {
      if (w[i] === 0) continue;
      // An off-line update may overwrite what only its base holds (the base's copy of a reused shadow master).
      const free = overwritable ? overwritable[base + i] : 0;
      const pinned = w[i] & map.summary.words[base + i] & ~free;
      let used = w[i] & map.active.words[base + i] & ~free & ~pinned & ~(discard ? discard[base + i] : 0);
      if (pinned !== 0) {
        sharedWords ??= new Uint32Array(WORDS_PER_CHUNK);
        sharedWords[i] = pinned;
      }
      for (const [p, shadow] of map.shadows) {
        if ((w[i] & shadow.words[base + i]) !== 0) {
          const e = entries.find((x) => x.plane === p);
          // A stale shadow is no file system any more: it only gives up more blocks (see receive.ts).
          if (e && e.flags & SnapshotFlag.stale) continue;
          throw new SnapplaneError('INVALID', `shadow snapshot '${e?.name ?? p}' on '${label}' uses blocks the stream needs; delete it first`, { volume: label });
        }
      }
      while (used !== 0) {
        const t = used & -used;
        const v = (base + i) * 32 + 31 - Math.clz32(t);
        if (!meta.has(v)) throw new SnapplaneError('INVALID', `'${label}' has changed since its base (VBN ${v} is in use by its files); revert it first`, { volume: label, vbn: v });
        used ^= t;
      }
    }
    if (sharedWords) shared.setChunk(c, sharedWords);
  }
  return shared;
}

/**
 * The refusal for an incoming block that differs from the one a snapshot of the destination holds at its VBN: the
 * source rewrote that block, so it no longer has that snapshot (it deleted it and reused its blocks, or never had it).
 */
export async function sharedBlockDiffers(map: BlockMap, entries: SnapshotEntry[], label: string, v: number): Promise<SnapplaneError> {
  const holders: string[] = [];
  for (const e of entries) if (!(e.flags & SnapshotFlag.shadow) && (await map.loadPlane(e.plane)).has(v)) holders.push(`'${e.name}'`);
  const which = holders.length === 0 ? 'a snapshot' : holders.length === 1 ? `snapshot ${holders[0]}` : `snapshots ${holders.join(', ')}`;
  return new SnapplaneError(
    'INVALID',
    `'${label}' keeps ${which} the source no longer has, using VBN ${v}, which the stream needs; delete ${holders.length > 1 ? 'them' : 'it'} on '${label}' first (a master its own destinations still need stays until they replicate past it)`,
    { volume: label, vbn: v, snapshot: holders[0]?.slice(1, -1) },
  );
}
