/**
 * The receiver: applies a verified image stream to a volume atomically (SPEC §2.6). Incoming blocks land only in
 * blocks the destination's committed state does not use (fenced off from its allocator, its own metadata moved
 * out of the way first); the new snapshots, planes and current state are committed by one consistency point
 * after the end record has verified. A crash or a bad stream before that leaves the destination at its base.
 */
import { access, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { sidecarPath } from '../fs/sidecar.js';
import { SnapplaneError } from '../common/errors.js';
import { BLOCK_SIZE } from '../common/units.js';
import { BITS_PER_CHUNK, BitPlane, WORDS_PER_CHUNK, forEachSetBit, popcountWords } from '../planes/bit-plane.js';
import { SparsePlane } from '../planes/sparse-plane.js';
import { keepAlive } from '../planes/plane-arena.js';
import { RESERVED_BLOCKS, ROOT_INODE, SnapshotFlag, decodeInode, type Inode, type SnapshotEntry } from '../fs/format.js';
import type { FileTree } from '../fs/file-tree.js';
import type { Volume } from '../fs/volume.js';
import type { BlockMap } from '../fs/block-map.js';
import { LandedBlocks } from '../fs/landed-blocks.js';
import { planeChunkReader } from '../image/evaluate.js';
import { collectState, setActiveToSnapshot } from '../fs/restore.js';
import { openView } from '../fs/snapshot-view.js';
import { PointerFixer, planRemap, remapPlane, type Remap } from './remap.js';
import { checkStreamFits, refuseCollisions, type TokenFile } from './receive-checks.js';
import { writesAroundPageCache } from './bulk-io.js';
import { receivedState } from './received-state.js';
import { Spool } from './spool.js';
import { BlockLanding } from './block-landing.js';
import type { StreamReader, StreamItem } from './reader.js';
import type { StreamSnapshot } from './format.js';
import type { ReceiveReport } from '../api/types.js';

export interface ReceiveOptions {
  onProgress?: (p: { blocks: number; totalBlocks: number }) => void;
  signal?: { cancelled: boolean };
  /** Incremental into a destination changed since its base: revert it to the base first (changes are lost). */
  force?: boolean;
  /**
   * The base is a copy of a shadow master whose blocks the source reused (the seed's off-line update): incoming
   * blocks may land on blocks only the base uses, in place. Not atomic: the caller keeps the destination off-line
   * until a receive of this update has committed. The base stays, flagged shadow and stale, without those blocks.
   */
  overwriteBase?: boolean;
  /** Receives of at least this many blocks (in long runs) write around the page cache (default: bulk-io.ts). */
  bulkBlocks?: number;
}

export type { ReceiveReport } from '../api/types.js';


/** The receive-token file of a volume (beside an image; inside a RAID group's folder). */
export function tokenPathFor(volumePath: string): Promise<string> {
  return sidecarPath(volumePath, 'receive-token.json');
}

/** Removes the receive token (and spool) an interrupted receive of stream `streamId` left beside `volumePath`. */
export async function discardResumeToken(volumePath: string, streamId: string): Promise<void> {
  const tokenPath = await tokenPathFor(volumePath);
  try {
    if ((JSON.parse(await readFile(tokenPath, 'utf8')) as TokenFile).streamId !== streamId) return;
  } catch {
    return;
  }
  await rm(spoolPathFor(tokenPath), { force: true });
  await rm(tokenPath, { force: true });
}

function spoolPathFor(tokenPath: string): string {
  return `${tokenPath.replace(/\.json$/, '')}.spool`;
}

/** The resume token of an interrupted receive into `volumePath`, or null. */
export async function readResumeToken(volumePath: string): Promise<string | null> {
  return (await readResumeState(volumePath))?.token ?? null;
}

/** The resume token of an interrupted receive and the expression of its stream (a sender resumes only the same image). */
export async function readResumeState(volumePath: string): Promise<{ token: string; expression: string } | null> {
  try {
    const t = JSON.parse(await readFile(await tokenPathFor(volumePath), 'utf8')) as TokenFile;
    return { token: encodeResumeToken(t.streamId, t.nextVbn), expression: t.expression };
  } catch {
    return null;
  }
}

/** The text a user passes to `send --resume`. */
export function encodeResumeToken(streamId: string, fromVbn: number): string {
  return `${streamId}-${fromVbn.toString(16)}`;
}

/** Parses a resume token. */
export function decodeResumeToken(token: string): { streamId: string; fromVbn: number } {
  const m = /^([0-9a-f]{32})-([0-9a-f]{1,14})$/.exec(token.trim());
  if (!m) throw new SnapplaneError('INVALID', `bad resume token '${token}' (expected the text printed by the interrupted receive)`);
  return { streamId: m[1], fromVbn: parseInt(m[2], 16) };
}




function inodeOf(b64: string): Inode {
  return decodeInode(Buffer.from(b64, 'base64'), 0);
}

/** Applies the rest of an opened stream to `volume`. */
export async function receiveStream(volume: Volume, reader: StreamReader, opts: ReceiveOptions = {}): Promise<ReceiveReport> {
  const header = reader.header;
  const label = volume.label;
  const tokenPath = await tokenPathFor(label);
  return volume.run(true, async () => {
    if (volume.isDirty) await volume.consistencyPoint();
    const map = volume.blockMap!;
    // Our own metadata goes to the top of the volume, out of the way of the blocks the source allocates next.
    map.placement = 'top';
    const bad = (message: string): SnapplaneError => new SnapplaneError('BAD_STREAM', message, { volume: label });

    // ---- is this stream for this destination? -------------------------------------------------------------
    const { baseEntry, entries, fp, revert } = await checkStreamFits(volume, header, tokenPath, opts.force === true);

    // ---- the image: which blocks will come ------------------------------------------------------------------
    let item: StreamItem = await reader.next();
    const image = new SparsePlane();
    while (item.type === 'image') {
      image.setChunk(item.chunk, item.words);
      item = await reader.next();
    }
    if (image.count !== header.imageBlocks) throw bad(`the image records hold ${image.count} blocks, the header says ${header.imageBlocks}`);
    const first = image.chunk(0);
    if (first && (first[0] & 3) !== 0) throw bad('the image includes the fsinfo blocks (VBN 0 and 1)');
    let needRemap = false;
    const lastChunk = image.chunkIndexes().at(-1) ?? -1;
    if (lastChunk >= 0) {
      const words = image.chunk(lastChunk)!;
      let top = -1;
      for (let i = WORDS_PER_CHUNK - 1; i >= 0 && top < 0; i--) if (words[i] !== 0) top = lastChunk * BITS_PER_CHUNK + i * 32 + 31 - Math.clz32(words[i]);
      if (top >= volume.fsinfo.blockCount) {
        // A full copy to a smaller volume moves the blocks past its end (and fixes every pointer to them).
        if (header.kind !== 'full') {
          throw new SnapplaneError('LIMIT', `the stream needs blocks up to VBN ${top}, but '${label}' has only ${volume.fsinfo.blockCount} blocks; an incremental needs the same VBNs as its base`, { volume: label, vbn: top });
        }
        needRemap = true;
      }
    }

    // ---- fence the image off, moving our own metadata out of it first --------------------------------------
    const metaTrees: [FileTree, string][] = [
      [map.tree, 'block map'],
      [volume.snapshots.tree, 'snapshot table'],
    ];
    const meta = new Set<number>();
    const walked: [FileTree, { vbn: number; level: number; index: number }[]][] = [];
    for (const [tree] of metaTrees) {
      const blocks = await tree.committedBlocks();
      for (const b of blocks) meta.add(b.vbn);
      walked.push([tree, blocks]);
    }
    // An empty destination's only state is its inode file (its root folder has no blocks): rewritten elsewhere too.
    const rootBlocks = header.kind === 'full' ? await volume.inodes.tree.committedBlocks() : [];
    for (const b of rootBlocks) meta.add(b.vbn);
    let remap: Remap | null = null;
    let destImage = image;
    if (needRemap) {
      remap = planRemap(image, volume.fsinfo.blockCount, (v) => meta.has(v), 64 + 8 * header.snapshots.length, label);
      destImage = remapPlane(image, remap);
    }
    const fence = new Uint32Array(map.active.words.length);
    for (const c of destImage.chunkIndexes()) fence.set(destImage.chunk(c)!, c * WORDS_PER_CHUNK);
    const inFence = (v: number): boolean => (fence[v >>> 5] & (1 << (v & 31))) !== 0;
    const toRewrite: [FileTree, number[]][] = [];
    for (const [tree, blocks] of walked) {
      const ranges = blocks.filter((b) => inFence(b.vbn)).map((b) => [b.index * 512 ** b.level, (b.index + 1) * 512 ** b.level]);
      if (ranges.length > 0) toRewrite.push([tree, blocks.filter((b) => b.level === 0 && ranges.some(([lo, hi]) => b.index >= lo && b.index < hi)).map((b) => b.index)]);
    }
    const touchRoot = rootBlocks.some((b) => inFence(b.vbn));
    // An incremental's new state keeps the base's file blocks that its snapshot plane still holds: remember which
    // blocks the base's files use (the active plane without our own metadata) before that metadata moves.
    let baseFiles: BitPlane | null = null;
    // A forced receive into a destination changed since its base discards those changes, but only in the CP that
    // commits the stream: until then they stay, and incoming blocks that land on them are held like our metadata.
    let discard: Uint32Array | null = null;
    if (baseEntry) {
      baseFiles = new BitPlane(map.blockCount);
      if (revert) await collectState(volume, openView(volume, baseEntry.name), baseFiles);
      else baseFiles.copyFrom(map.active);
      for (const v of meta) baseFiles.clear(v);
      for (let v = 0; v < RESERVED_BLOCKS; v++) baseFiles.clear(v);
      if (revert) {
        discard = new Uint32Array(map.active.words);
        for (let i = 0; i < discard.length; i++) discard[i] &= ~baseFiles.words[i];
        for (const v of meta) discard[v >>> 5] &= ~(1 << (v & 31));
        discard[0] &= ~((1 << RESERVED_BLOCKS) - 1);
      }
    }
    // Off-line update from a shadow master: the blocks only the base holds may be overwritten in place.
    const overwritable = opts.overwriteBase && baseEntry ? await onlyIn(map, baseEntry, entries) : null;
    const shared = refuseCollisions(map, destImage, meta, entries, label, overwritable, discard);
    // Incoming blocks that land on our own current metadata (or on changes a forced receive discards) wait in a spool
    // (a sidecar file, so a resumed receive still has them) until the stream has verified; only then is the
    // metadata moved (and are the changes discarded) and are they written.
    const held = new Set<number>();
    for (const v of meta) if (inFence(v)) held.add(v);
    let discardHeld = 0;
    if (discard) {
      for (const c of destImage.chunkIndexes()) {
        const w = destImage.chunk(c)!;
        const s = shared.chunk(c);
        for (let i = 0; i < WORDS_PER_CHUNK; i++) {
          // A block a snapshot holds gets the same bytes (they are compared as they arrive): written in place.
          const hit = w[i] & discard[c * WORDS_PER_CHUNK + i] & ~(s ? s[i] : 0);
          if (hit === 0) continue;
          forEachSetBit(Uint32Array.of(hit), (c * WORDS_PER_CHUNK + i) * 32, (v) => {
            if (!held.has(v)) discardHeld++;
            held.add(v);
          });
        }
      }
    }
    const spoolPath = spoolPathFor(tokenPath);
    const resumeFrom = header.resumeFromVbn ?? 0;
    // A fresh stream: an older interrupted receive's token goes before anything of this one lands (its blocks may
    // be written over, and its spool is emptied now).
    if (resumeFrom === 0) await rm(tokenPath, { force: true });
    const { spool, earlier } = await Spool.open(spoolPath, resumeFrom > 0);
    const spoolFile = spool.file;
    for (const { vbn: v, offset } of earlier) {
      if (v >= resumeFrom || !image.has(v)) continue;
      if (held.has(v)) spool.keep(v, offset);
      // Held by the interrupted receive, which then moved what was there and stopped before writing it: the VBN is
      // free now (it is in the image and not held), so it goes in place.
      else if (!map.summary.has(v)) await volume.device.writeBlocks(v, await spool.readAt(offset));
    }
    map.setFence(fence);
    try {
      const saveToken = async (nextVbn: number): Promise<void> => {
        if (remap) return; // a copy to another size starts over: its block placement is not kept
        await spoolFile.datasync();
        const t: TokenFile = { streamId: header.streamId, fingerprint: fp, destGeneration: volume.fsinfo.generation, nextVbn, expression: header.expression };
        await writeFile(`${tokenPath}.tmp`, JSON.stringify(t));
        await rename(`${tokenPath}.tmp`, tokenPath);
      };

      const baseChunk = planeChunkReader(map);
      // ---- deallocation list and planes --------------------------------------------------------------------
      while (item.type === 'dealloc') {
        if (!baseEntry) throw bad('a deallocation list in a full stream');
        const b = await baseChunk(baseEntry.plane, item.chunk);
        if (firstOutside(item.words, b, null, 0) >= 0) throw bad(`the deallocation list frees blocks its base '${baseEntry.name}' does not have`);
        item = await reader.next();
      }
      const planes: Map<number, Uint32Array>[] = header.snapshots.map(() => new Map());
      while (item.type === 'plane') {
        const have = baseEntry ? await baseChunk(baseEntry.plane, item.chunk) : null;
        const img = image.chunk(item.chunk);
        const outside = firstOutside(item.words, img, have, item.chunk === 0 ? 3 : 0);
        if (outside >= 0) {
          const v = item.chunk * BITS_PER_CHUNK + outside;
          throw bad(`the plane of '${header.snapshots[item.ordinal].name}' holds VBN ${v}, which neither the stream nor its base carries`);
        }
        planes[item.ordinal].set(item.chunk, item.words);
        item = await reader.next();
      }
      if (planes.some((p) => p.size === 0)) throw bad('a carried snapshot has no plane records');

      // ---- the blocks -----------------------------------------------------------------------------------------
      let expected = 0;
      for (const c of image.chunkIndexes()) {
        const w = image.chunk(c)!;
        if ((c + 1) * BITS_PER_CHUNK <= resumeFrom) continue;
        if (c * BITS_PER_CHUNK >= resumeFrom) expected += popcountWords(w);
        else for (let v = resumeFrom; v < (c + 1) * BITS_PER_CHUNK; v++) if (image.has(v)) expected++;
      }
      const device = volume.device;
      const direct = device.writeBlocksDirect?.bind(device);
      // Copies of the blocks that can be metadata, for reading the received tree back (landed-blocks.ts); blocks
      // moved to other VBNs (a copy to another size) are not where the stream says: none kept.
      const landedCopies = remap ? null : new LandedBlocks(volume.fsinfo.blockCount);
      const write = direct && writesAroundPageCache(expected, image.runCount(), landedCopies !== null, opts.bulkBlocks) ? direct : device.writeBlocks.bind(device);
      // Written around the page cache: records gathered into aligned memory go to the device as they are.
      if (write === direct) reader.alignPayloads();
      const landing = new BlockLanding({ volume, reader, image, shared, entries, held, spool, remap, landedCopies, resumeFrom, expected, write, saveToken, bad, signal: opts.signal, onProgress: opts.onProgress });
      try {
        item = await landing.run(item);
      } catch (e) {
        await landing.quiesce();
        // Blocks that landed were each verified by their record's checksum: keep them for a resumed send, up to the
        // first record whose write failed (a write that failed may already have left the in-flight list, and those
        // after it may have landed: none of them counts).
        const upTo = Math.min(landing.nextVbn, landing.failedAt);
        if (upTo > resumeFrom && !landing.pointError && !landing.refused) {
          // The disk that failed a write may fail the token's too: then the last resume point stands.
          await volume.device
            .flush()
            .then(() => saveToken(upTo))
            .catch(() => undefined);
        }
        throw e;
      }
      const { landed, nextVbn } = landing;
      if (item.type === 'position') item = await reader.next();
      if (item.type !== 'end') throw bad(`unexpected ${item.type} record after the blocks`);
      await volume.device.flush();
      await saveToken(nextVbn);
      if (landed !== expected) throw bad(`the stream carried ${landed} blocks of the ${expected} its image needs`);
      if (spool.size !== held.size) throw bad(`internal: ${held.size - spool.size} held blocks never arrived`);

      // ---- the stream is good: move our metadata out of the image, then write the held blocks in its place -------
      if (held.size > 0) {
        // Incoming blocks land on changes a forced receive discards: the discarding is committed with the move, now
        // that the whole stream has verified (a crash before the final CP leaves the volume at its base).
        if (discardHeld > 0 && baseEntry && baseFiles) await setActiveToSnapshot(volume, baseEntry, baseFiles);
        if (touchRoot) {
          await volume.inodes.get(ROOT_INODE);
          volume.inodes.touch(ROOT_INODE);
        }
        for (const [tree, leaves] of toRewrite) {
          for (const i of leaves) {
            const data = await tree.readBlock(i);
            if (data) await tree.writeBlock(i, Buffer.from(data));
          }
        }
        await volume.consistencyPoint();
        const moved: [FileTree, string][] = header.kind === 'full' ? [...metaTrees, [volume.inodes.tree, 'inode file']] : metaTrees;
        for (const [tree, name] of moved) {
          for (const b of await tree.committedBlocks()) {
            if (inFence(b.vbn)) throw new SnapplaneError('IO', `internal: ${name} block at VBN ${b.vbn} did not move out of the incoming image`, { volume: label, vbn: b.vbn });
          }
        }
        await saveToken(nextVbn);
        for (const v of spool.vbns()) await volume.device.writeBlocks(v, await spool.read(v));
        await volume.device.flush();
      }

      // ---- commit: the new snapshots, planes and current state in one CP -------------------------------------
      // ---- another size: fix every pointer to a moved block, and the planes -----------------------------------
      const roots = header.snapshots.map((x) => ({ inodeFile: inodeOf(x.inodeFile), blockMap: inodeOf(x.blockMap) }));
      if (remap) {
        const fixer = new PointerFixer(volume.device, remap, label);
        for (const r of roots) {
          r.inodeFile = await fixer.inode(r.inodeFile, 'inodes');
          r.blockMap = await fixer.inode(r.blockMap, 'file');
        }
        await volume.device.flush();
        for (let k = 0; k < planes.length; k++) {
          const moved = remapPlane(planes[k], remap);
          planes[k] = new Map(moved.chunkIndexes().map((c) => [c, moved.chunk(c)!]));
        }
      }
      const top = header.snapshots[header.snapshots.length - 1];
      const topInodeFile = roots[roots.length - 1].inodeFile;
      let state: BitPlane;
      // Until release() below, reads of the landed blocks get the kept bytes lent: only this walk, which only reads,
      // reaches the received tree before the commit.
      volume.ctx.landed = landedCopies;
      try {
        state = await receivedState(volume, top, topInodeFile, planes[planes.length - 1], baseFiles, image);
      } catch (e) {
        throw bad(`the received state of '${top.name}' does not read back: ${(e as Error).message}`);
      } finally {
        volume.ctx.landed = null;
        landedCopies?.release();
      }
      try {
        for (const [tree] of metaTrees) for (const b of await tree.committedBlocks()) state.set(b.vbn);
        map.setActive(state);
        volume.replaceRoot(topInodeFile, top.inodeCount);
        let nextId = volume.fsinfo.nextSnapshotId;
        const usedIds = new Set(entries.map((e) => e.id));
        for (const [k, s] of header.snapshots.entries() as IterableIterator<[number, StreamSnapshot]>) {
          const plane = volume.snapshots.freePlane(label);
          const id = usedIds.has(s.id) ? nextId++ : s.id;
          usedIds.add(id);
          nextId = Math.max(nextId, id + 1);
          volume.snapshots.put({ id, plane, flags: s.flags & SnapshotFlag.master, createdAtMs: s.createdAtMs, generation: s.generation, name: s.name, inodeCount: s.inodeCount, inodeFile: roots[k].inodeFile, blockMap: roots[k].blockMap });
          for (const [c, w] of planes[k]) {
            // The tree keeps the block by reference until the CP: the view must keep `w`'s memory alive.
            await map.tree.writeBlock(map.fileBlock(plane, c), keepAlive(Buffer.from(w.buffer, w.byteOffset, BLOCK_SIZE), w));
            orWords(map.summary.chunkWords(c), w);
            map.summary.recount(c, true);
          }
        }
        // The base's copy lost the blocks an off-line update overwrote, as the source's shadow master did.
        if (overwritable && baseEntry) await volume.demoteToStaleShadow(baseEntry, destImage);
        // Stale shadow planes give up the blocks that now hold the stream's data (as the allocator's reuse does).
        for (const plane of map.shadows.values()) plane.clearBitsOf(destImage);
        // A copy at the same VBNs takes the source's identity (incrementals follow); a moved copy is a volume of its own.
        volume.fsinfo = { ...volume.fsinfo, nextSnapshotId: nextId, uuid: remap ? volume.fsinfo.uuid : header.sourceVolume };
        map.setFence(null);
        await volume.consistencyPoint();
        map.recountFree();
      } catch (e) {
        const err = e instanceof SnapplaneError ? e : new SnapplaneError('IO', `receive failed while committing: ${(e as Error).message}`, { volume: label });
        volume.markFailed(err);
        throw err;
      }
      await rm(tokenPath, { force: true });
      await rm(spoolPath, { force: true });
      return {
        volume: label,
        streamId: header.streamId,
        kind: header.kind,
        expression: header.expression,
        base: baseEntry?.name ?? null,
        snapshots: header.snapshots.map((s) => s.name),
        current: top.name,
        blocks: landed,
        bytes: landed * BLOCK_SIZE,
        resumedFromVbn: header.resumeFromVbn,
        generation: volume.fsinfo.generation,
      };
    } finally {
      map.setFence(null);
      await spoolFile.close();
      // Without a token nothing resumes from the spool.
      if (!(await access(tokenPath).then(() => true, () => false))) await rm(spoolPath, { force: true });
    }
  });
}

/** The blocks of snapshot `base` that no other regular snapshot of the volume holds (full-size plane words). */
async function onlyIn(map: BlockMap, base: SnapshotEntry, entries: SnapshotEntry[]): Promise<Uint32Array> {
  const only = new Uint32Array((await map.loadPlane(base.plane)).words);
  for (const e of entries) {
    // Shadows pin nothing (a consistent one that is hit is refused on its own, see refuseCollisions).
    if (e.plane === base.plane || e.flags & SnapshotFlag.shadow) continue;
    const other = await map.loadPlane(e.plane);
    for (let i = 0; i < only.length; i++) only[i] &= ~other.words[i];
  }
  return only;
}

// The word loops below run once per plane record; in the receive's own function they made V8 compile all of it.

/**
 * The offset in its chunk of a bit of `words` that neither `a` nor `b` (either may be missing) nor the first word's
 * `firstWordMask` has (the highest such bit of the first word that has one), or -1.
 */
function firstOutside(words: Uint32Array, a: Uint32Array | null, b: Uint32Array | null, firstWordMask: number): number {
  for (let i = 0; i < WORDS_PER_CHUNK; i++) {
    const outside = words[i] & ~((a ? a[i] : 0) | (b ? b[i] : 0) | (i === 0 ? firstWordMask : 0));
    if (outside !== 0) return i * 32 + 31 - Math.clz32(outside);
  }
  return -1;
}

/** into |= words, over a chunk. */
function orWords(into: Uint32Array, words: Uint32Array): void {
  for (let i = 0; i < WORDS_PER_CHUNK; i++) into[i] |= words[i];
}
