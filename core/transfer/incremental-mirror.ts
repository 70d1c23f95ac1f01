/**
 * The incremental mirror's fast half (the seed's "incremental mirror data structure"): a sparse file that holds, at
 * each block's VBN, only the blocks that differ from the base image on the slow medium. Each incremental stream
 * overwrites its blocks in place; its deallocation list drops blocks the source freed, so the structure stays about
 * as large as the real difference. The newest state is rebuilt as one full stream: blocks from here where present,
 * else from the base. Layout in core/STREAM.md §10.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFully } from '../common/write-fully.js';
import { makeFolders } from '../common/make-folders.js';
import { SnapplaneError, asIoError } from '../common/errors.js';
import { writeFileAtomic } from '../common/atomic-file.js';
import { VolumeLock } from '../fs/lock.js';
import { blockChecksum } from '../common/checksum.js';
import type { FileHandle } from 'node:fs/promises';
import { BLOCK_SIZE } from '../common/units.js';
import { BITS_PER_CHUNK, WORDS_PER_CHUNK, forEachSetBit } from '../planes/bit-plane.js';
import { SparsePlane } from '../planes/sparse-plane.js';
import { RESERVED_BLOCKS } from '../fs/format.js';
import { BackupChainDevice } from '../stream/backup-device.js';
import { checkChain } from '../stream/transfer.js';
import { emitStream, type StreamPlan } from '../stream/send.js';
import { quoteName } from '../image/expression.js';
import { MAX_RUN_BLOCKS, type StreamHeader, type StreamSnapshot } from '../stream/format.js';
import { StreamReader } from '../stream/reader.js';
import { backupBytes } from '../stream/backup-source.js';

const STATE = 'delta.json';
const BLOCKS = 'delta.blocks';
const SUMS = 'delta.sums';
/** The lock an update, a reconstruct and a verify take in turn. */
const LOCK = 'delta.lock';
/** Bytes of one VBN's entry in `delta.sums`: u32 set flag + u32 CRC-32 of the block. */
const SUM_BYTES = 8;
/** Blocks read at a time when verifying. */
const VERIFY_RUN = 64;

interface DeltaState {
  format: 'snapplane-incremental-mirror';
  /** 2 keeps a checksum of every block it stores (`delta.sums`); a version-1 structure's blocks have none. */
  version: 1 | 2;
  sourceVolume: string;
  sourceLabel: string;
  blockCount: number;
  /** The base image on the slow medium: a stream file or tape folder. */
  base: { path: string; streamId: string; snapshot: StreamSnapshot };
  /** The newest state the structure reconstructs. */
  current: StreamSnapshot;
  updates: number;
  /** Plane files of this commit (names change with every commit, so a commit is the rename of this file). */
  planes: { present: string; stored: string; current: string };
  presentBlocks: number;
  storedBlocks: number;
}

function samePoint(s: { name: string; generation: number; createdAtMs: number }, t: { name: string; generation: number; createdAtMs: number }): boolean {
  return s.name === t.name && s.generation === t.generation && s.createdAtMs === t.createdAtMs;
}

async function writePlane(path: string, plane: SparsePlane): Promise<void> {
  const idx = plane.chunkIndexes();
  const out = Buffer.alloc(idx.length * (4 + WORDS_PER_CHUNK * 4));
  idx.forEach((c, k) => {
    const o = k * (4 + WORDS_PER_CHUNK * 4);
    out.writeUInt32LE(c, o);
    const w = plane.chunk(c)!;
    Buffer.from(w.buffer, w.byteOffset, WORDS_PER_CHUNK * 4).copy(out, o + 4);
  });
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(out);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readPlane(path: string): Promise<SparsePlane> {
  const b = await readFile(path);
  const rec = 4 + WORDS_PER_CHUNK * 4;
  if (b.length % rec !== 0) throw new SnapplaneError('BAD_FORMAT', `plane file '${path}' is damaged (size ${b.length})`, { path });
  const plane = new SparsePlane();
  for (let o = 0; o < b.length; o += rec) {
    const words = new Uint32Array(WORDS_PER_CHUNK);
    Buffer.from(words.buffer).set(b.subarray(o + 4, o + rec));
    plane.setChunk(b.readUInt32LE(o), words);
  }
  return plane;
}

export class IncrementalMirror {
  private constructor(
    readonly dir: string,
    private state: DeltaState,
  ) {}

  /** The base snapshot and the newest state the mirror holds. */
  get base(): StreamSnapshot {
    return this.state.base.snapshot;
  }
  get current(): StreamSnapshot {
    return this.state.current;
  }
  get basePath(): string {
    return this.state.base.path;
  }
  get presentBlocks(): number {
    return this.state.presentBlocks;
  }
  /** The sparse file of blocks (named in errors about its damage). */
  get blockFile(): string {
    return join(this.dir, BLOCKS);
  }

  /** Whether the base backup at `basePath` is the one this mirror was built on (throws when it cannot be read). */
  async baseMatches(): Promise<boolean> {
    const [h] = await checkChain([this.state.base.path]);
    return h.streamId === this.state.base.streamId;
  }

  /** Starts an incremental mirror in `dir` over the base backup at `basePath` (a full stream, already written). */
  static async create(dir: string, basePath: string): Promise<IncrementalMirror> {
    const [h] = await checkChain([basePath]);
    if (h.kind !== 'full') throw new SnapplaneError('INVALID', `the base of an incremental mirror must be a full image; '${basePath}' is an incremental`, { path: basePath });
    await makeFolders(dir);
    try {
      await stat(join(dir, STATE));
      throw new SnapplaneError('EXISTS', `'${dir}' already holds an incremental mirror`, { path: dir });
    } catch (e) {
      if (e instanceof SnapplaneError) throw e;
    }
    const top = h.snapshots[h.snapshots.length - 1];
    const tag = randomBytes(4).toString('hex');
    const state: DeltaState = {
      format: 'snapplane-incremental-mirror',
      version: 2,
      sourceVolume: h.sourceVolume,
      sourceLabel: h.sourceLabel,
      blockCount: h.blockCount,
      base: { path: basePath, streamId: h.streamId, snapshot: top },
      current: top,
      updates: 0,
      planes: { present: `present.${tag}.plane`, stored: `stored.${tag}.plane`, current: `current.${tag}.plane` },
      presentBlocks: 0,
      storedBlocks: 0,
    };
    await (await open(join(dir, BLOCKS), 'w')).close();
    await (await open(join(dir, SUMS), 'w')).close();
    await writePlane(join(dir, state.planes.present), new SparsePlane());
    await writePlane(join(dir, state.planes.stored), new SparsePlane());
    await writePlane(join(dir, state.planes.current), await basePlane(basePath));
    await writeFileAtomic(join(dir, STATE), JSON.stringify(state, null, 2));
    return new IncrementalMirror(dir, state);
  }

  /**
   * Deletes the structure in `dir` (its state file first, so a crash leaves no state naming half-deleted files);
   * other files in the folder stay.
   */
  static async remove(dir: string): Promise<void> {
    await rm(join(dir, STATE), { force: true });
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) if (n === BLOCKS || n === SUMS || n === `${BLOCKS}.compact` || /^(present|stored|current)\.[0-9a-f]+\.plane$/.test(n)) await rm(join(dir, n), { force: true });
  }

  /**
   * Runs `fn` holding the structure's lock (`<dir>/delta.lock`), as `what` (said to whoever finds it taken). An
   * update writes new blocks over VBNs that only older states use, so a reconstruct or verify that began on an
   * older state would read blocks of a later one: readers and the writer take turns. LOCKED names the holder.
   */
  static async exclusive<T>(dir: string, what: string, fn: () => Promise<T>): Promise<T> {
    // No folder, no structure to share: `fn` makes it (a first update) or says it is gone.
    if (!(await stat(dir).then((st) => st.isDirectory(), () => false))) return fn();
    let lock: VolumeLock;
    try {
      lock = await VolumeLock.acquire(dir, join(dir, LOCK), { program: what });
    } catch (e) {
      // A folder this process cannot write (a read-only mount at a restore): no update can write there either.
      if (e instanceof SnapplaneError && e.code === 'IO') return fn();
      if (!(e instanceof SnapplaneError) || e.code !== 'LOCKED') throw e;
      const holder = e.message.replace(/^volume '[^']*' is open for writing by /, '');
      throw new SnapplaneError('LOCKED', `the incremental mirror in '${dir}' is in use by ${holder}; try again when that ends`, { path: dir });
    }
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  }

  /** Opens the incremental mirror in `dir`. */
  static async open(dir: string): Promise<IncrementalMirror> {
    let text: string;
    try {
      text = await readFile(join(dir, STATE), 'utf8');
    } catch {
      throw new SnapplaneError('NOT_FOUND', `'${dir}' holds no incremental mirror (no ${STATE})`, { path: dir });
    }
    const state = JSON.parse(text) as DeltaState;
    if (state.format !== 'snapplane-incremental-mirror' || (state.version !== 1 && state.version !== 2)) throw new SnapplaneError('BAD_FORMAT', `'${join(dir, STATE)}' is not an incremental mirror state of version 1 or 2`, { path: dir });
    return new IncrementalMirror(dir, state);
  }

  /**
   * Applies a verified incremental stream based on the current state. New blocks land only in slots the current
   * state does not use, and the state file's rename commits; a crash or bad stream leaves the previous state.
   */
  async apply(reader: StreamReader, onProgress?: (blocks: number, total: number) => void): Promise<{ blocks: number }> {
    try {
      return await this.applyStream(reader, onProgress);
    } catch (e) {
      // A host error (its file system full, say) names the folder; the previous state stands either way.
      throw asIoError(e, `cannot update the incremental mirror in '${this.dir}'`, { path: this.dir });
    }
  }

  private async applyStream(reader: StreamReader, onProgress?: (blocks: number, total: number) => void): Promise<{ blocks: number }> {
    const h = reader.header;
    const bad = (m: string): SnapplaneError => new SnapplaneError('BAD_STREAM', m, { path: this.dir });
    if (h.sourceVolume !== this.state.sourceVolume) throw new SnapplaneError('INVALID', `stream is from volume ${h.sourceVolume}, but the incremental mirror in '${this.dir}' mirrors ${this.state.sourceVolume}`, { path: this.dir });
    if (h.kind !== 'incremental' || !h.base || !samePoint(h.base, this.state.current)) {
      throw new SnapplaneError('INVALID', `the incremental mirror in '${this.dir}' is at '${this.state.current.name}'; the stream ${h.base ? `is based on '${h.base.name}'` : 'is a full image'}`, { path: this.dir });
    }
    if (h.snapshots.length !== 1) throw bad('an incremental mirror takes streams that carry one snapshot');
    const present = await readPlane(join(this.dir, this.state.planes.present));
    const stored = await readPlane(join(this.dir, this.state.planes.stored));
    const image = new SparsePlane();
    const dealloc = new SparsePlane();
    const top = new SparsePlane();
    let item = await reader.next();
    while (item.type === 'image') {
      image.setChunk(item.chunk, item.words);
      item = await reader.next();
    }
    while (item.type === 'dealloc') {
      dealloc.setChunk(item.chunk, item.words);
      item = await reader.next();
    }
    while (item.type === 'plane') {
      top.setChunk(item.chunk, item.words);
      item = await reader.next();
    }
    // A new block must not land on one the current state reads (it never does for a stream based on it).
    for (const c of image.chunkIndexes()) {
      const p = present.chunk(c);
      if (!p) continue;
      const w = image.chunk(c)!;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) if ((w[i] & p[i]) !== 0) throw bad(`the stream rewrites VBN ${c * BITS_PER_CHUNK + i * 32 + 31 - Math.clz32(w[i] & p[i])}, which the current state holds`);
    }
    const fh = await open(join(this.dir, BLOCKS), 'r+');
    // A version-1 structure has no sums file yet: its blocks stay unchecked, the ones written from now on are not.
    const sums = await open(join(this.dir, SUMS), 'a+').then((f) => f.close()).then(() => open(join(this.dir, SUMS), 'r+'));
    let landed = 0;
    try {
      while (item.type === 'blocks') {
        for (let v = item.vbn; v < item.vbn + item.count; v++) if (!image.has(v)) throw bad(`block record carries VBN ${v}, which is not in the image`);
        await writeFully(fh, item.data, 0, item.count * BLOCK_SIZE, item.vbn * BLOCK_SIZE);
        // Written in place like the blocks: these VBNs are not in `present`, so nothing reads their entries yet.
        const entry = Buffer.alloc(item.count * SUM_BYTES);
        for (let k = 0; k < item.count; k++) {
          entry.writeUInt32LE(1, k * SUM_BYTES);
          entry.writeUInt32LE(blockChecksum(item.data.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE)), k * SUM_BYTES + 4);
        }
        await writeFully(sums, entry, 0, entry.length, item.vbn * SUM_BYTES);
        landed += item.count;
        onProgress?.(landed, image.count);
        item = await reader.next();
      }
      if (item.type === 'position') item = await reader.next();
      if (item.type !== 'end') throw bad(`unexpected ${item.type} record after the blocks`);
      if (landed !== image.count) throw bad(`the stream carried ${landed} blocks of the ${image.count} its image needs`);
      await fh.sync();
      await sums.sync();
    } finally {
      await fh.close();
      await sums.close();
    }
    // present' = (present - dealloc) | image; stored' = stored | image.
    const chunks = new Set([...present.chunkIndexes(), ...image.chunkIndexes()]);
    const nextPresent = new SparsePlane();
    for (const c of chunks) {
      const p = present.chunk(c);
      const d = dealloc.chunk(c);
      const im = image.chunk(c);
      const w = new Uint32Array(WORDS_PER_CHUNK);
      let any = 0;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) {
        w[i] = ((p ? p[i] : 0) & ~(d ? d[i] : 0)) | (im ? im[i] : 0);
        any |= w[i];
      }
      if (any) nextPresent.setChunk(c, w);
    }
    for (const c of image.chunkIndexes()) {
      const s = stored.chunk(c);
      const w = new Uint32Array(WORDS_PER_CHUNK);
      const im = image.chunk(c)!;
      for (let i = 0; i < WORDS_PER_CHUNK; i++) w[i] = (s ? s[i] : 0) | im[i];
      stored.setChunk(c, w);
    }
    await this.commit(nextPresent, stored, top, { ...this.state, version: 2, current: h.snapshots[0], updates: this.state.updates + 1 });
    // Freed blocks still take room in the file; once they outweigh a quarter of what it holds, copy it compact.
    if (this.state.storedBlocks - this.state.presentBlocks > Math.max(256, this.state.presentBlocks / 4)) await this.compact();
    return { blocks: landed };
  }

  private async commit(present: SparsePlane, stored: SparsePlane, current: SparsePlane, next: DeltaState): Promise<void> {
    const tag = randomBytes(4).toString('hex');
    const planes = { present: `present.${tag}.plane`, stored: `stored.${tag}.plane`, current: `current.${tag}.plane` };
    await writePlane(join(this.dir, planes.present), present);
    await writePlane(join(this.dir, planes.stored), stored);
    await writePlane(join(this.dir, planes.current), current);
    const old = this.state.planes;
    const state: DeltaState = { ...next, planes, presentBlocks: present.count, storedBlocks: stored.count };
    await writeFileAtomic(join(this.dir, STATE), JSON.stringify(state, null, 2));
    this.state = state;
    for (const f of Object.values(old)) await rm(join(this.dir, f), { force: true });
  }

  /** Rewrites the block file with only the blocks the current state uses. */
  async compact(): Promise<void> {
    const present = await readPlane(join(this.dir, this.state.planes.present));
    const current = await readPlane(join(this.dir, this.state.planes.current));
    const tmp = join(this.dir, `${BLOCKS}.compact`);
    const src = await open(join(this.dir, BLOCKS), 'r');
    const dst = await open(tmp, 'w');
    try {
      const buf = Buffer.alloc(BLOCK_SIZE);
      for (const c of present.chunkIndexes()) {
        for (const v of setBits(c, present.chunk(c)!)) {
          await src.read(buf, 0, BLOCK_SIZE, v * BLOCK_SIZE);
          await writeFully(dst, buf, 0, BLOCK_SIZE, v * BLOCK_SIZE);
        }
      }
      await dst.sync();
    } finally {
      await src.close();
      await dst.close();
    }
    // The block file is replaced before the state names it as compact; either order leaves `present` readable.
    await rename(tmp, join(this.dir, BLOCKS));
    await this.commit(present, present, current, this.state);
  }

  /**
   * Checks every block the structure holds against the checksum stored with it, and refuses (CHECKSUM, naming the
   * block file and the VBNs) if one does not match. Blocks a version-1 structure stored have none: counted unchecked.
   */
  async verify(): Promise<{ blocks: number; unchecked: number }> {
    const present = await readPlane(join(this.dir, this.state.planes.present));
    const fh = await open(join(this.dir, BLOCKS), 'r');
    const sums = await openSums(this.dir);
    const bad: number[] = [];
    let unchecked = 0;
    try {
      const buf = Buffer.alloc(VERIFY_RUN * BLOCK_SIZE);
      for (const [vbn, count] of runsOf(present, VERIFY_RUN)) {
        await fh.read(buf, 0, count * BLOCK_SIZE, vbn * BLOCK_SIZE);
        const entries = await readSums(sums, vbn, count);
        for (let k = 0; k < count; k++) {
          const ok = sumMatches(entries, k, buf.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE));
          if (ok === null) unchecked++;
          else if (!ok) bad.push(vbn + k);
        }
      }
    } finally {
      await fh.close();
      await sums?.close();
    }
    if (bad.length > 0) throw this.damaged(bad);
    return { blocks: present.count, unchecked };
  }

  private damaged(vbns: number[]): SnapplaneError {
    const list = vbns.slice(0, 8).join(', ') + (vbns.length > 8 ? ', …' : '');
    return new SnapplaneError(
      'CHECKSUM',
      `the incremental mirror's block file '${join(this.dir, BLOCKS)}' is damaged: ${vbns.length === 1 ? `the block of VBN ${list} does` : `${vbns.length} blocks (VBNs ${list}) do`} not match the checksum stored with ${vbns.length === 1 ? 'it' : 'them'}`,
      { path: join(this.dir, BLOCKS), vbn: vbns[0] },
    );
  }

  /** Bytes the block file takes on disk (allocated, not its apparent size). */
  async diskBytes(): Promise<number> {
    const s = await stat(join(this.dir, BLOCKS));
    return s.blocks * 512;
  }

  /**
   * The newest state as one full image stream: blocks from the sparse file where present, else from the base
   * backup. Receiving it into a new volume reconstructs the source as of the last update.
   */
  async *reconstruct(onProgress?: (blocks: number, total: number) => void): AsyncGenerator<Buffer> {
    // Before the first byte goes out: a damaged block found half-way would leave the receiver a half-made volume.
    await this.verify();
    const present = await readPlane(join(this.dir, this.state.planes.present));
    const current = await readPlane(join(this.dir, this.state.planes.current));
    const headers = await checkChain([this.state.base.path]);
    if (headers[0].streamId !== this.state.base.streamId) throw new SnapplaneError('INVALID', `'${this.state.base.path}' is not the base this incremental mirror was built on`, { path: this.state.base.path });
    const base = await BackupChainDevice.open([this.state.base.path], headers);
    const fh = await open(join(this.dir, BLOCKS), 'r');
    const sums = await openSums(this.dir);
    try {
      const image = new SparsePlane();
      for (const c of current.chunkIndexes()) {
        const w = current.chunk(c)!.slice();
        if (c === 0) for (let v = 0; v < RESERVED_BLOCKS; v++) w[v >>> 5] &= ~(1 << (v & 31));
        image.setChunk(c, w);
      }
      const runs: [number, number][] = [];
      for (const c of image.chunkIndexes()) {
        for (const v of setBits(c, image.chunk(c)!)) {
          const last = runs[runs.length - 1];
          if (last && last[0] + last[1] === v && last[1] < MAX_RUN_BLOCKS) last[1]++;
          else runs.push([v, 1]);
        }
      }
      const baseHeader = headers[0];
      const header: StreamHeader = {
        ...baseHeader,
        streamId: randomBytes(16).toString('hex'),
        kind: 'full',
        expression: quoteName(this.state.current.name),
        base: null,
        order: 'vbn',
        codec: 'none',
        createdAt: new Date().toISOString(),
        snapshots: [this.state.current],
        imageBlocks: image.count,
        resumeFromVbn: null,
      };
      const plan: StreamPlan = {
        header,
        image,
        planes: [new Map(current.chunkIndexes().map((c) => [c, current.chunk(c)!]))],
        dealloc: null,
        runs,
        planeSlots: [],
        generations: [],
        sendBlocks: image.count,
        selection: 'full',
      };
      const read = async (vbn: number, count: number, into?: Buffer): Promise<Buffer> => {
        const out = into && into.length === count * BLOCK_SIZE ? into : Buffer.alloc(count * BLOCK_SIZE);
        const entries = await readSums(sums, vbn, count);
        for (let k = 0; k < count; k++) {
          const v = vbn + k;
          const at = out.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE);
          if (present.has(v)) {
            await fh.read(at, 0, BLOCK_SIZE, v * BLOCK_SIZE);
            // Checked again as it goes out: the file may have changed since `verify`.
            if (sumMatches(entries, k, at) === false) throw this.damaged([v]);
          } else if (base.holds(v)) await base.readBlocks(v, 1, at);
          else throw new SnapplaneError('BAD_FORMAT', `the incremental mirror in '${this.dir}' has no copy of VBN ${v}: neither the sparse file nor the base holds it`, { path: this.dir, vbn: v });
        }
        return out;
      };
      yield* emitStream(plan, read, this.dir, { onProgress: (p) => onProgress?.(p.blocks, image.count), reuse: true });
    } finally {
      await fh.close();
      await sums?.close();
      await base.close();
    }
  }
}

/** The checksum file of the structure in `dir`, or null for a version-1 structure that has none. */
async function openSums(dir: string): Promise<FileHandle | null> {
  return open(join(dir, SUMS), 'r').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
}

/** The checksum entries of VBNs [vbn, vbn + count); holes and the end of the file read as "none stored". */
async function readSums(fh: FileHandle | null, vbn: number, count: number): Promise<Buffer> {
  const out = Buffer.alloc(count * SUM_BYTES);
  if (fh) await fh.read(out, 0, out.length, vbn * SUM_BYTES);
  return out;
}

/** Whether block `k` of a run matches its entry; null when none was stored for it. */
function sumMatches(entries: Buffer, k: number, block: Buffer): boolean | null {
  if (entries.readUInt32LE(k * SUM_BYTES) !== 1) return null;
  return entries.readUInt32LE(k * SUM_BYTES + 4) === blockChecksum(block);
}

/** Runs [vbn, count] of consecutive VBNs set in `plane`, at most `max` long, ascending. */
function runsOf(plane: SparsePlane, max: number): [number, number][] {
  const runs: [number, number][] = [];
  for (const c of plane.chunkIndexes()) {
    for (const v of setBits(c, plane.chunk(c)!)) {
      const last = runs[runs.length - 1];
      if (last && last[0] + last[1] === v && last[1] < max) last[1]++;
      else runs.push([v, 1]);
    }
  }
  return runs;
}

/** VBNs set in chunk `c`, ascending. */
function setBits(c: number, words: Uint32Array): number[] {
  const out: number[] = [];
  forEachSetBit(words, c * BITS_PER_CHUNK, (v) => out.push(v));
  return out;
}

/** The plane of the base backup's newest snapshot (its plane records). */
async function basePlane(path: string): Promise<SparsePlane> {
  const reader = new StreamReader(backupBytes(path));
  try {
    const h = await reader.open();
    const last = h.snapshots.length - 1;
    const plane = new SparsePlane();
    for (;;) {
      const item = await reader.next();
      if (item.type === 'plane' && item.ordinal === last) plane.setChunk(item.chunk, item.words);
      else if (item.type === 'blocks' || item.type === 'end') break;
    }
    return plane;
  } finally {
    await reader.close();
  }
}
