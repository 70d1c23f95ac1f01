/**
 * A read-only BlockDevice over a chain of backup files, so one file or folder can be restored out of a backup
 * without restoring the volume: the files are indexed by their record headers only, and a read fetches (and
 * verifies) just the block records it needs, i.e. the metadata on the path and the blocks of that file.
 */
import { uncompressSync } from 'lz4-napi';
import { SnapplaneError } from '../common/errors.js';
import { BLOCK_SIZE } from '../common/units.js';
import { chunkCount } from '../planes/bit-plane.js';
import { FORMAT_VERSION, InodeType, decodeInode, encodeFsinfo, newInode } from '../fs/format.js';
import type { BlockDevice, DeviceHealth } from '../device/block-device.js';
import { backupLabel, openBackup, type BackupLocation, type BackupSource } from './backup-source.js';
import { PREAMBLE_SIZE, RECORD_HEADER_SIZE, RecordFlag, RecordType, checkPreamble, decodeRecordHeader, preambleFault, recordChecksum, streamIdBytes, type StreamHeader } from './format.js';

interface RecordRef {
  file: number;
  vbn: number;
  count: number;
  header: Buffer;
  payloadOffset: number;
  payloadLength: number;
  flags: number;
  /** The record's number in its stream (for messages). */
  seq: number;
}

/** preambleFault for a backup read at random: its preamble and header record, as far as they are there. */
async function preambleFaultAt(f: BackupSource): Promise<SnapplaneError> {
  const pre = Buffer.alloc(PREAMBLE_SIZE);
  await f.read(pre, 0);
  const raw = f.size >= PREAMBLE_SIZE + RECORD_HEADER_SIZE ? Buffer.alloc(RECORD_HEADER_SIZE) : null;
  if (raw) await f.read(raw, PREAMBLE_SIZE);
  const n = raw ? raw.readUInt32LE(4) : 0;
  const payload = raw && PREAMBLE_SIZE + RECORD_HEADER_SIZE + n <= f.size ? Buffer.alloc(n) : null;
  if (payload) await f.read(payload, PREAMBLE_SIZE + RECORD_HEADER_SIZE);
  return preambleFault(pre, raw, payload);
}

export class BackupChainDevice implements BlockDevice {
  readonly readOnly = true;
  /** Payload bytes read from the backup files so far (to show a single-file restore reads little). */
  bytesRead = 0;
  /** The last few records read (metadata and data reads interleave, so one is not enough). */
  private readonly cache = new Map<RecordRef, Buffer>();
  private closed = false;

  private constructor(
    readonly label: string,
    readonly blockCount: number,
    private readonly files: BackupSource[],
    private readonly ids: Buffer[],
    private readonly index: Map<number, RecordRef>,
    private readonly fsinfo: Buffer,
  ) {}

  /** Indexes a chain (oldest first) whose headers are already checked; `snapshot` picks a carried snapshot (default: the newest). */
  static async open(locations: BackupLocation[], headers: StreamHeader[], snapshot?: string): Promise<BackupChainDevice> {
    const paths = locations.map(backupLabel);
    const files: BackupSource[] = [];
    const index = new Map<number, RecordRef>();
    try {
      for (let k = 0; k < paths.length; k++) {
        const fh = await openBackup(locations[k]);
        files.push(fh);
        const size = fh.size;
        const pre = Buffer.alloc(PREAMBLE_SIZE);
        await fh.read(pre, 0);
        if (!checkPreamble(pre)) throw new SnapplaneError('BAD_STREAM', `${paths[k]}: ${(await preambleFaultAt(fh)).message}`, { path: paths[k] });
        let offset = PREAMBLE_SIZE;
        const h = Buffer.alloc(RECORD_HEADER_SIZE);
        for (;;) {
          if (offset + RECORD_HEADER_SIZE > size) throw new SnapplaneError('BAD_STREAM', `${paths[k]}: truncated at byte ${offset} (no end record)`, { path: paths[k] });
          await fh.read(h, offset);
          const rec = decodeRecordHeader(h);
          const payloadOffset = offset + RECORD_HEADER_SIZE;
          if (payloadOffset + rec.payloadLength > size) throw new SnapplaneError('BAD_STREAM', `${paths[k]}: truncated inside record ${rec.seq}`, { path: paths[k] });
          if (rec.type === RecordType.blocks) {
            const ref: RecordRef = { file: k, vbn: rec.vbn, count: rec.count, header: Buffer.from(h), payloadOffset, payloadLength: rec.payloadLength, flags: rec.flags, seq: rec.seq };
            for (let v = rec.vbn; v < rec.vbn + rec.count; v++) index.set(v, ref);
          }
          offset = payloadOffset + rec.payloadLength;
          if (rec.type === RecordType.end) break;
        }
      }
    } catch (e) {
      for (const f of files) await f.close();
      throw e;
    }
    const carried = headers.flatMap((h) => h.snapshots);
    const chosen = snapshot === undefined ? carried[carried.length - 1] : carried.find((s) => s.name === snapshot);
    if (!chosen) {
      for (const f of files) await f.close();
      throw new SnapplaneError('NOT_FOUND', `no backup of this chain carries snapshot '${snapshot}' (they carry: ${carried.map((s) => s.name).join(', ')})`, { snapshot });
    }
    const last = headers[headers.length - 1];
    const fsinfo = encodeFsinfo({
      formatVersion: FORMAT_VERSION,
      generation: chosen.generation,
      blockCount: last.blockCount,
      uuid: last.sourceVolume,
      cpTimeMs: chosen.createdAtMs,
      inodeCount: chosen.inodeCount,
      planeStride: chunkCount(last.blockCount),
      snapshotCount: 0,
      nextSnapshotId: 1,
      inodeFile: decodeInode(Buffer.from(chosen.inodeFile, 'base64'), 0),
      blockMap: newInode(InodeType.File),
      snapshotTable: newInode(InodeType.File),
    });
    return new BackupChainDevice(`${paths[paths.length - 1]}@${chosen.name}`, last.blockCount, files, headers.map((h) => streamIdBytes(h.streamId)), index, fsinfo);
  }

  private async record(ref: RecordRef): Promise<Buffer> {
    const hit = this.cache.get(ref);
    if (hit) {
      this.cache.delete(ref);
      this.cache.set(ref, hit);
      return hit;
    }
    const payload = Buffer.alloc(ref.payloadLength);
    await this.files[ref.file].read(payload, ref.payloadOffset);
    this.bytesRead += ref.payloadLength;
    if (recordChecksum(this.ids[ref.file], ref.header, payload) !== ref.header.readUInt32LE(28)) throw this.bad(ref, 'fails its checksum (corrupted)');
    let data: Buffer;
    try {
      data = ref.flags & RecordFlag.codec ? uncompressSync(payload) : payload;
    } catch {
      throw this.bad(ref, 'does not decompress');
    }
    if (data.length !== ref.count * BLOCK_SIZE) throw this.bad(ref, 'has the wrong size');
    this.cache.set(ref, data);
    if (this.cache.size > 8) this.cache.delete(this.cache.keys().next().value!);
    return data;
  }

  /** A block record that fails a check, named by its backup, number and place (the tape, for a tape set). */
  private bad(ref: RecordRef, what: string): SnapplaneError {
    const f = this.files[ref.file];
    const start = ref.payloadOffset - RECORD_HEADER_SIZE;
    const where = f.place?.(start, ref.payloadOffset + ref.payloadLength);
    return new SnapplaneError('BAD_STREAM', `${f.path}: backup record ${ref.seq} (VBNs ${ref.vbn}..${ref.vbn + ref.count - 1}, starting at stream byte ${start}${where ? `, ${where}` : ''}) ${what}; put a good copy of ${f.path} in its place (\`snapplane verify\` checks backups)`, { path: f.path, vbn: ref.vbn });
  }

  /** True when some backup of the chain carries VBN `vbn`. */
  holds(vbn: number): boolean {
    return this.index.has(vbn);
  }

  /** Reads blocks from the newest backup carrying each VBN; fsinfo is the chosen snapshot's root. */
  async readBlocks(vbn: number, count: number, into?: Buffer): Promise<Buffer> {
    if (this.closed) throw new SnapplaneError('CLOSED', 'backup device is closed');
    const out = into && into.length === count * BLOCK_SIZE ? into : Buffer.alloc(count * BLOCK_SIZE);
    for (let k = 0; k < count; k++) {
      const v = vbn + k;
      if (v < 2) {
        this.fsinfo.copy(out, k * BLOCK_SIZE);
        continue;
      }
      const ref = this.index.get(v);
      if (!ref) {
        out.fill(0, k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE);
        continue;
      }
      const data = await this.record(ref);
      data.copy(out, k * BLOCK_SIZE, (v - ref.vbn) * BLOCK_SIZE, (v - ref.vbn + 1) * BLOCK_SIZE);
    }
    return out;
  }

  writeBlocks(): Promise<void> {
    return Promise.reject(new SnapplaneError('READ_ONLY', 'a backup is read-only'));
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.files) await f.close();
  }

  health(): DeviceHealth {
    return { kind: 'image', degraded: false, members: [] };
  }
}
