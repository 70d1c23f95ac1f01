/**
 * Transfers built from the sender and the receiver: streams to and from files, checking a backup chain before
 * restoring it, and verifying backups without a destination.
 */
import { backupBytes, backupLabel, type BackupLocation } from './backup-source.js';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { SnapplaneError, asIoError, hostCreateError } from '../common/errors.js';
import { pathExists } from '../common/path-exists.js';
import { writeFully } from '../common/write-fully.js';
import { requireFilePath } from '../common/parent-folder.js';
import { BLOCK_SIZE } from '../common/units.js';
import { SparsePlane } from '../planes/sparse-plane.js';
import type { Volume } from '../fs/volume.js';
import { StreamReader } from './reader.js';
import { writeStream, type StreamPlan, type StreamProgress } from './send.js';
import type { StreamHeader } from './format.js';
import type { BackupCheck } from '../api/types.js';

/** Writes a planned stream to a file (through a temporary name, so a half-written backup never looks complete). */
export async function sendToFile(volume: Volume, plan: StreamPlan, path: string, onProgress?: (p: StreamProgress) => void, signal?: { cancelled: boolean }): Promise<number> {
  const tmp = `${path}.partial`;
  await requireFilePath(path, 'backup');
  const existed = await pathExists(path);
  const kept = existed ? `'${path}' is kept as it was` : `'${path}' was not created`;
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'w');
  } catch (e) {
    throw hostCreateError(e, 'backup file', path, 'nothing was written');
  }
  let bytes = 0;
  try {
    // Copied into one staging buffer: the stream reuses its buffers, and 4 MiB writes are what the disk likes.
    const staging = Buffer.allocUnsafe(4 << 20);
    let size = 0;
    const flush = async (): Promise<void> => {
      if (size === 0) return;
      await writeFully(fh, staging, 0, size);
      size = 0;
    };
    for await (const b of writeStream(volume, plan, onProgress, signal, true)) {
      let o = 0;
      while (o < b.length) {
        const n = Math.min(b.length - o, staging.length - size);
        b.copy(staging, size, o, o + n);
        size += n;
        o += n;
        bytes += n;
        if (size === staging.length) await flush();
      }
    }
    await flush();
    await fh.datasync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    if (e instanceof SnapplaneError) throw e;
    const err = asIoError(e, `cannot write '${path}'`, { path });
    throw new SnapplaneError(err.code, `${err.message}; the backup was not made: its partial file was removed, and ${kept}`, { path, cause: e });
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw asIoError(e, `cannot put the backup in place as '${path}'`, { path });
  }
  return bytes;
}

export type { BackupCheck } from '../api/types.js';

/** Reads a whole stream, verifying every record, the counts and the digest (`onBlocks` sees each blocks record); no destination is touched. */
export async function verifyStream(source: AsyncIterable<Buffer>, label: string, onBlocks?: (vbn: number, count: number, data: Buffer) => void): Promise<BackupCheck> {
  const reader = new StreamReader(source);
  let header: StreamHeader | null = null;
  let blocks = 0;
  try {
    header = await reader.open();
    const image = new SparsePlane();
    for (;;) {
      const item = await reader.next();
      if (item.type === 'image') image.setChunk(item.chunk, item.words);
      else if (item.type === 'blocks') {
        for (let v = item.vbn; v < item.vbn + item.count; v++) {
          if (!image.has(v)) throw new SnapplaneError('BAD_STREAM', `${label}: block record carries VBN ${v}, which is not in the image`);
        }
        onBlocks?.(item.vbn, item.count, item.data);
        blocks += item.count;
      } else if (item.type === 'end') break;
    }
    const imageBlocks = image.count;
    if (imageBlocks !== header.imageBlocks) throw new SnapplaneError('BAD_STREAM', `${label}: image records hold ${imageBlocks} blocks, the header says ${header.imageBlocks}`);
    if (header.resumeFromVbn === null && blocks !== header.imageBlocks) throw new SnapplaneError('BAD_STREAM', `${label}: carries ${blocks} of its ${header.imageBlocks} blocks`);
    return summary(label, header, blocks, true);
  } catch (e) {
    await reader.close();
    const message = e instanceof Error ? e.message : String(e);
    if (!header) return { file: label, kind: 'full', expression: '', base: null, snapshots: [], sourceVolume: '', blocks, bytes: blocks * BLOCK_SIZE, ok: false, error: message };
    return { ...summary(label, header, blocks, false), error: message };
  }
}

function summary(file: string, h: StreamHeader, blocks: number, ok: boolean): BackupCheck {
  return { file, kind: h.kind, expression: h.expression, base: h.base?.name ?? null, snapshots: h.snapshots.map((s) => s.name), sourceVolume: h.sourceVolume, blocks, bytes: blocks * BLOCK_SIZE, ok };
}

/**
 * Writes a planned stream into a file inside another volume (a file backup inside a volume): under a temporary
 * name, renamed when complete, then committed with a CP, so a half-written backup never looks complete there either.
 */
export async function sendToVolumeFile(volume: Volume, plan: StreamPlan, target: Volume, path: string, onProgress?: (p: StreamProgress) => void, signal?: { cancelled: boolean }): Promise<number> {
  const tmp = `${path}.partial`;
  let bytes = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    // Fresh buffers (no reuse): the target's writer may hold a chunk while it asks for the next.
    for await (const b of writeStream(volume, plan, onProgress, signal, false)) {
      bytes += b.length;
      yield b;
    }
  }
  try {
    await target.writeFile(tmp, counted());
    await target.rename(tmp, path);
    await target.sync();
  } catch (e) {
    await target.remove(tmp).catch(() => undefined);
    throw e;
  }
  return bytes;
}

/** Reads only the headers of a backup chain and checks it restores in order: a full first, each next based on a snapshot before it. */
export async function checkChain(locations: BackupLocation[]): Promise<StreamHeader[]> {
  const headers = await readChainHeaders(locations);
  checkChainOrder(headers, locations.map(backupLabel));
  return headers;
}

/** The header of each backup of a chain (a bad one is refused, naming its file). */
export async function readChainHeaders(locations: BackupLocation[]): Promise<StreamHeader[]> {
  if (locations.length === 0) throw new SnapplaneError('INVALID', 'name at least one backup');
  const headers: StreamHeader[] = [];
  for (const loc of locations) {
    const f = backupLabel(loc);
    const r = new StreamReader(backupBytes(loc));
    try {
      headers.push(await r.open());
    } catch (e) {
      throw new SnapplaneError(e instanceof SnapplaneError && e.code === 'NOT_FOUND' ? 'NOT_FOUND' : 'BAD_STREAM', `${f}: ${(e as Error).message}`, { path: f });
    } finally {
      await r.close();
    }
  }
  return headers;
}

/** A snapshot as streams and volumes identify it across volumes (STREAM.md §2.3). */
export interface ChainSnapshot {
  name: string;
  generation: number;
  createdAtMs: number;
}

/**
 * Checks that backups with `headers` (named `files`) restore in this order: a full first, each next based on a
 * snapshot before it. `have`: the snapshots of the volume the chain goes on (a restore that continues), which may
 * then start with an incremental based on one of them; `haveFrom` names where they are, when not that volume.
 */
export function checkChainOrder(headers: StreamHeader[], files: string[], have: ChainSnapshot[] | null = null, haveFrom = 'the volume'): void {
  const known = new Map<string, { generation: number; createdAtMs: number }>((have ?? []).map((s) => [s.name, s]));
  headers.forEach((h, k) => {
    if (k === 0 && h.kind !== 'full' && !have) throw new SnapplaneError('INVALID', `${files[0]} is an incremental (based on '${h.base!.name}'); a restore starts with a full (level-0) backup`, { path: files[0] });
    if (k > 0 && h.kind === 'full') throw new SnapplaneError('INVALID', `${files[k]} is a full backup; only the first backup of a chain may be full`, { path: files[k] });
    if (k > 0 && h.sourceVolume !== headers[0].sourceVolume) throw new SnapplaneError('INVALID', `${files[k]} is from another volume (${h.sourceVolume}) than ${files[0]} (${headers[0].sourceVolume})`, { path: files[k] });
    if (h.base) {
      const b = known.get(h.base.name);
      if (!b || b.generation !== h.base.generation || b.createdAtMs !== h.base.createdAtMs) {
        throw new SnapplaneError('INVALID', `${files[k]} needs snapshot '${h.base.name}', which ${have ? `neither ${haveFrom} nor an earlier backup of the chain has` : 'no earlier backup of the chain carries'} (carried so far: ${[...known.keys()].join(', ') || 'none'})`, { path: files[k] });
      }
    }
    for (const s of h.snapshots) known.set(s.name, { generation: s.generation, createdAtMs: s.createdAtMs });
  });
}
