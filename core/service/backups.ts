/**
 * Backups: file and tape backups of a volume, their verification, and restores from them (a whole chain into a
 * volume, or one file or folder to the host). The service facade delegates here.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, open as openFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join as joinPath, resolve as resolvePath } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BackupCheck, CopySummary, ProgressEvent, ReceiveReport, SendReport, VerifyReport } from '../api/types.js';
import { SnapplaneError, isSnapplaneError } from '../common/errors.js';
import { sameFile } from '../common/same-file.js';
import { pathExists } from '../common/path-exists.js';
import { BLOCK_SIZE } from '../common/units.js';
import { copyToHost } from '../fs/host-copy.js';
import { Volume } from '../fs/volume.js';
import { BackupChainDevice } from '../stream/backup-device.js';
import { backupBytes, backupLabel, isSequentialBackup, type BackupLocation } from '../stream/backup-source.js';
import { SharedChainBlocks } from '../stream/chain-blocks.js';
import type { StreamHeader } from '../stream/format.js';
import { discardResumeToken } from '../stream/receive.js';
import { planStream, writeStream, type SendOptions, type StreamPlan, type StreamProgress } from '../stream/send.js';
import { isTapeDevice, writeTapeDevice, type NextTape } from '../stream/tape-device.js';
import { writeTapes } from '../stream/tape.js';
import { checkChain, checkChainOrder, readChainHeaders, sendToFile, sendToVolumeFile, verifyStream } from '../stream/transfer.js';
import type { TransferJobRecord } from './state-store.js';
import { isVolumeImage } from './volume-file.js';
import type { VolumeRef } from './volume-names.js';

type Progress = (p: ProgressEvent) => void;

/** What backups need of the service: its open volumes, its receive, and its jobs. */
export interface BackupHost {
  openRef(ref: VolumeRef, write: boolean): Promise<Volume>;
  /** A receive as a job of its own (kind `receive`). */
  receive(volume: string, source: AsyncIterable<Buffer>, options: { force?: boolean; raid?: number }, onProgress?: Progress): Promise<ReceiveReport>;
  /** A receive inside the calling job; `resumeHint: null` leaves the resume advice out of its errors. */
  receiveInto(volume: string, source: AsyncIterable<Buffer>, options: { force?: boolean; raid?: number; resumeHint?: string | null }, onProgress: Progress | undefined, signal: { cancelled: boolean }): Promise<ReceiveReport>;
  job<T>(kind: TransferJobRecord['kind'], volume: string, target: string, expression: string | undefined, onProgress: Progress | undefined, fn: (signal: { cancelled: boolean }, progress: Progress) => Promise<T>, bytesOf: (r: T) => number): Promise<T>;
  readonly now: (() => number) | undefined;
}

/** The report of a send of `plan` from `volume` (`dryRun`: planned only). */
export function sendReport(volume: string, plan: StreamPlan, dryRun: boolean, streamBytes: number): SendReport {
  const h = plan.header;
  const dataBytes = plan.sendBlocks * BLOCK_SIZE;
  return {
    volume,
    streamId: h.streamId,
    kind: h.kind,
    expression: h.expression,
    base: h.base?.name ?? null,
    snapshots: h.snapshots.map((x) => x.name),
    current: h.snapshots[h.snapshots.length - 1].name,
    order: h.order,
    codec: h.codec,
    blocks: plan.sendBlocks,
    dataBytes,
    streamBytes,
    overhead: dataBytes === 0 ? 0 : (streamBytes - dataBytes) / dataBytes,
    resumedFromVbn: h.resumeFromVbn,
    dryRun,
  };
}

/** Backups of volumes and restores from them, each a job of the service. */
export class Backups {
  constructor(private readonly host: BackupHost) {}

  /**
   * Sends an image into a file (a file backup): on the host, or with `inVolume` inside another volume; written under
   * a temporary name and renamed when complete. A file already at `path` is kept (EXISTS) unless `force`: the rename
   * would replace it, and it is usually the backup before (a tape folder that holds tapes is refused the same way).
   */
  async sendToFile(volume: string, expression: string, path: string, options: SendOptions & { inVolume?: string; force?: boolean } = {}, onProgress?: Progress): Promise<SendReport> {
    const inVolume = options.inVolume;
    if (inVolume !== undefined && resolvePath(inVolume) === resolvePath(volume)) {
      throw new SnapplaneError('INVALID', `a backup of '${volume}' cannot be written inside '${inVolume}' itself: its writes would change the volume being read; use another volume`, { volume: inVolume });
    }
    const target = inVolume === undefined ? path : `${inVolume}:${path}`;
    // The rename that ends a backup would put the stream in a volume's place (one a console or daemon may have open).
    if (inVolume === undefined && (await isVolumeImage(path))) {
      throw new SnapplaneError('INVALID', `'${path}' is a Snapplane volume image; a backup written there would replace it: name a new file`, { path });
    }
    return this.host.job('backup', volume, target, expression, onProgress, async (signal, progress) => {
      const v = await this.host.openRef({ volume }, false);
      const into = inVolume === undefined ? null : await this.host.openRef({ volume: inVolume }, true);
      if (!options.force) await refuseExistingBackup(path, into, target);
      progress({ phase: 'plan', done: 0, total: 1, unit: 'items' });
      const plan = await planStream(v, expression, { ...options, now: this.host.now });
      const sendProgress = (p: StreamProgress): void => progress({ phase: 'send', done: p.blocks * BLOCK_SIZE, total: plan.sendBlocks * BLOCK_SIZE, unit: 'bytes' });
      const bytes = into ? await sendToVolumeFile(v, plan, into, path, sendProgress, signal) : await sendToFile(v, plan, path, sendProgress, signal);
      return { ...sendReport(volume, plan, false, bytes), target };
    }, (r) => r.streamBytes);
  }

  /** The backups named by `files`: host paths, or with `inVolume` files inside that volume (or one of its snapshots). */
  private async backupLocations(files: string[], inVolume?: VolumeRef): Promise<BackupLocation[]> {
    if (!inVolume) return files;
    const v = await this.host.openRef(inVolume, false);
    const label = inVolume.snapshot ? `${inVolume.volume}@${inVolume.snapshot}` : inVolume.volume;
    return files.map((f) => ({ label: `${label}:${f}`, open: () => v.fileReader(f) }));
  }

  /**
   * Reads each tape device among `locations` once into a spool file (under $SNAPPLANE_SPOOL or the temp folder):
   * restore, restore-file and verify check a whole chain before they write and seek within it, and a tape reads
   * only in order. `receive -i` reads a tape directly instead.
   */
  private async spoolTapes(locations: BackupLocation[], nextTape: NextTape | undefined, progress: Progress): Promise<{ locations: BackupLocation[]; done: () => Promise<void> }> {
    if (!(await Promise.all(locations.map(isSequentialBackup))).some(Boolean)) return { locations, done: async () => undefined };
    const dir = await mkdtemp(joinPath(process.env.SNAPPLANE_SPOOL ?? tmpdir(), 'snapplane-spool-'));
    const done = (): Promise<void> => rm(dir, { recursive: true, force: true });
    const out: BackupLocation[] = [];
    try {
      for (const [k, loc] of locations.entries()) {
        if (!(await isSequentialBackup(loc))) {
          out.push(loc);
          continue;
        }
        const file = joinPath(dir, `${k}.stream`);
        let bytes = 0;
        // The spool keeps which cartridge each stream byte came from, so a bad record found later names it.
        const tape = backupBytes(loc, { nextTape });
        async function* counted(): AsyncGenerator<Buffer> {
          for await (const b of tape) {
            bytes += b.length;
            progress({ phase: `read tape ${backupLabel(loc)}`, done: bytes, total: 0, unit: 'bytes' });
            yield b;
          }
        }
        await pipeline(Readable.from(counted()), createWriteStream(file));
        out.push({
          label: backupLabel(loc),
          place: (offset, end) => tape.place(offset, end),
          open: async () => {
            const fh = await openFile(file, 'r');
            return { size: (await fh.stat()).size, read: async (b, o) => (await fh.read(b, 0, b.length, o)).bytesRead, close: () => fh.close() };
          },
        });
      }
    } catch (e) {
      await done();
      throw e;
    }
    return { locations: out, done };
  }

  /**
   * Tape backup: the image in `tape` order across tape files of `tapeSize` bytes in folder `dir`, or across
   * cartridges of a tape device `dir` (tape headers, 64 KiB tape blocks, a position table at the end);
   * `beforeTape` runs before each further tape, `askOperator` before each further cartridge when there is no hook.
   */
  async sendToTape(volume: string, expression: string, dir: string, options: { tapeSize: number; beforeTape?: NextTape; askOperator?: NextTape; codec?: 'none' | 'lz4' }, onProgress?: Progress): Promise<SendReport & { tapes: number }> {
    return this.host.job('backup', volume, dir, expression, onProgress, async (signal, progress) => {
      const v = await this.host.openRef({ volume }, false);
      const plan = await planStream(v, expression, { order: 'tape', codec: options.codec, now: this.host.now });
      const tapeProgress = (p: StreamProgress): void => progress({ phase: 'tape', done: p.blocks * BLOCK_SIZE, total: plan.sendBlocks * BLOCK_SIZE, unit: 'bytes' });
      const tapeOptions = { tapeSize: options.tapeSize, beforeTape: options.beforeTape, label: `${volume}: ${plan.header.expression}`, streamId: plan.header.streamId };
      const stream = writeStream(v, plan, tapeProgress, signal, true);
      // A folder takes its next tape file on its own; a device needs a cartridge change, by the hook or the operator.
      const r = (await isTapeDevice(dir)) ? await writeTapeDevice(dir, stream, { ...tapeOptions, beforeTape: options.beforeTape ?? options.askOperator }) : await writeTapes(dir, stream, tapeOptions);
      return { ...sendReport(volume, plan, false, r.bytes), target: dir, tapes: r.tapes };
    }, (r) => r.streamBytes);
  }

  /** Receives a stream from a file (a file backup, on the host or with `inVolume` inside a volume). */
  async receiveFile(volume: string, path: string, options: { force?: boolean; raid?: number; inVolume?: VolumeRef; nextTape?: NextTape } = {}, onProgress?: Progress): Promise<ReceiveReport> {
    await this.refuseSameVolume(volume, options.inVolume);
    if (!options.inVolume && !(await pathExists(path))) throw new SnapplaneError('NOT_FOUND', `stream file '${path}' does not exist`, { path });
    const [loc] = await this.backupLocations([path], options.inVolume);
    try {
      return await this.host.receive(volume, backupBytes(loc, { nextTape: options.nextTape }), options, onProgress);
    } catch (e) {
      // The reader counts bytes and records of the stream; which stream is the caller's to say.
      if (!isSnapplaneError(e, 'BAD_STREAM') || e.path) throw e;
      throw new SnapplaneError('BAD_STREAM', `${backupLabel(loc)}: ${e.message}`, { volume: e.volume, path: backupLabel(loc), vbn: e.vbn, snapshot: e.snapshot, cause: e });
    }
  }

  private async refuseSameVolume(volume: string, inVolume: VolumeRef | undefined): Promise<void> {
    if (inVolume && (await sameFile(inVolume.volume, volume))) {
      throw new SnapplaneError('INVALID', `the backups are inside '${inVolume.volume}', the volume being restored; restore into another volume`, { volume });
    }
  }

  /**
   * Verifies backups end to end (every record, counts, digests) and that they form a restorable chain. Backups that
   * start with an incremental (one just written, or the tail of a chain) are a chain that was not checked, not a
   * fault: their own order is checked, and the report says what checking the chain takes.
   */
  async verify(files: string[], options: { inVolume?: VolumeRef; nextTape?: NextTape } = {}, onProgress?: Progress): Promise<VerifyReport> {
    const spooled = await this.spoolTapes(await this.backupLocations(files, options.inVolume), options.nextTape, (p) => onProgress?.(p));
    try {
      return await this.verifyLocations(spooled.locations);
    } finally {
      await spooled.done();
    }
  }

  private async verifyLocations(locations: BackupLocation[]): Promise<VerifyReport> {
    const present = await Promise.all(locations.map((loc) => typeof loc !== 'string' || pathExists(loc)));
    // The chain's order from the headers, then (reading only each stream's leading records) the blocks a restore
    // writes over ones a snapshot restored before holds: those are compared as the backups are read in full.
    let chain: string | null = null;
    let tail: string | null = null;
    let shared: SharedChainBlocks | null = null;
    if (present.every(Boolean)) {
      try {
        const headers = await readChainHeaders(locations);
        const labels = locations.map(backupLabel);
        const first = headers[0];
        if (first.kind === 'incremental' && first.base) {
          // A tail of a chain: checked from the snapshot it is based on; what comes before it is not here to check.
          checkChainOrder(headers, labels, [first.base], `the snapshot ${labels[0]} is based on`);
          tail = `${labels[0]} is an incremental (based on '${first.base.name}'), so the chain was not checked; to check it, verify it with the backups it goes on from, starting with a full (level-0) backup: snapplane verify <full> [<incrementals>...] ${labels.join(' ')}`;
        } else {
          checkChainOrder(headers, labels);
          shared = await SharedChainBlocks.plan(locations);
        }
      } catch (e) {
        chain = (e as Error).message;
      }
    }
    const backups: BackupCheck[] = [];
    for (const [k, loc] of locations.entries()) {
      const f = backupLabel(loc);
      if (!present[k]) {
        backups.push({ file: f, kind: 'full', expression: '', base: null, snapshots: [], sourceVolume: '', blocks: 0, bytes: 0, ok: false, error: 'no such file' });
        continue;
      }
      const compare = shared && !shared.empty ? shared : null;
      backups.push(
        await verifyStream(backupBytes(loc), f, (vbn, count, data) => {
          if (!compare || chain !== null) return;
          try {
            compare.check(k, vbn, count, data);
          } catch (e) {
            chain = (e as Error).message;
          }
        }),
      );
    }
    const allOk = backups.every((b) => b.ok);
    if (!allOk) {
      const bad = backups.filter((b) => !b.ok).map((b) => b.file);
      return { ok: false, chain: null, chainStatus: 'not-checked', chainNote: `the chain was not checked: ${bad.join(', ')} failed ${bad.length === 1 ? 'its' : 'their'} check`, backups };
    }
    if (chain !== null) return { ok: false, chain, chainStatus: 'broken', chainNote: null, backups };
    return { ok: true, chain: null, chainStatus: tail ? 'not-checked' : 'restorable', chainNote: tail, backups };
  }

  /**
   * Restores a chain of backups (a full one, then incrementals) into a volume. The chain's order is checked from the
   * headers before anything is written; each backup is verified as it is received and commits whole, so one that
   * fails leaves the volume at the backup before it. Into a volume that holds the first backups of the chain
   * already (a restore that stopped), it goes on with the ones it lacks.
   */
  async restore(volume: string, files: string[], options: { raid?: number; inVolume?: VolumeRef; nextTape?: NextTape } = {}, onProgress?: Progress): Promise<ReceiveReport[]> {
    await this.refuseSameVolume(volume, options.inVolume);
    const named = await this.backupLocations(files, options.inVolume);
    return this.host.job('restore', volume, named.map(backupLabel).join(' '), undefined, onProgress, async (signal, progress) => {
      const { locations, done } = await this.spoolTapes(named, options.nextTape, progress);
      try {
        progress({ phase: 'check chain', done: 0, total: files.length, unit: 'items' });
        const headers = await readChainHeaders(locations);
        const labels = locations.map(backupLabel);
        const have = await this.restoredSoFar(volume, headers[0].sourceVolume);
        const same = (s: { name: string; generation: number; createdAtMs: number }): boolean => have?.some((h) => h.name === s.name && h.generation === s.generation && h.createdAtMs === s.createdAtMs) === true;
        // Restored before: the backups up to the last whose newest snapshot (the state it leaves) the volume has.
        let skip = 0;
        headers.forEach((h, k) => {
          if (same(h.snapshots[h.snapshots.length - 1])) skip = k + 1;
        });
        checkChainOrder(headers.slice(skip), labels.slice(skip), skip > 0 || headers[0].kind === 'incremental' ? have : null);
        const out: ReceiveReport[] = headers.slice(0, skip).map((h) => alreadyRestored(volume, h));
        for (let k = skip; k < locations.length; k++) {
          try {
            out.push(await this.host.receiveInto(volume, backupBytes(locations[k]), { ...options, resumeHint: null }, progress, signal));
          } catch (e) {
            throw await this.restoreStopped(volume, labels[k], headers[k], e);
          }
        }
        return out;
      } finally {
        await done();
      }
    }, (r) => r.reduce((n, x) => n + x.bytes, 0));
  }

  /** The snapshots a volume a restore goes into holds, when it is a copy of `sourceVolume` (else null). */
  private async restoredSoFar(volume: string, sourceVolume: string): Promise<{ name: string; generation: number; createdAtMs: number }[] | null> {
    if (!(await pathExists(volume))) return null;
    const v = await this.host.openRef({ volume }, true);
    return v.fsinfo.uuid === sourceVolume ? v.snapshots.list() : null;
  }

  /**
   * The error of a restore that stopped at `file`: naming it, and how to go on. A restore does not resume inside a
   * backup (it reads it again), so the receive token the failed one left is removed.
   */
  private async restoreStopped(volume: string, file: string, header: StreamHeader, e: unknown): Promise<unknown> {
    if (!(e instanceof SnapplaneError)) return e;
    await discardResumeToken(volume, header.streamId);
    const have = ((await this.restoredSoFar(volume, header.sourceVolume).catch(() => null)) ?? []).map((s) => s.name);
    // A receive that refused before writing says "nothing was written to" the volume itself: not said twice.
    const kept = have.length > 0 ? `; '${volume}' keeps what the backups before it restored (snapshots ${have.join(', ')})` : e.message.includes('nothing was written to') ? '' : !(await pathExists(volume)) ? `; nothing was restored, and '${volume}' was not created` : `; nothing was restored into '${volume}'`;
    return new SnapplaneError(e.code, `restore stopped at ${file}: ${e.message}${kept}; ${e.code === 'BAD_STREAM' ? `put a good copy of ${file} in its place (\`snapplane verify\` checks backups), then run` : 'once that is fixed, run'} the same restore again: it goes on with the backups '${volume}' lacks`, { volume, path: file, snapshot: e.snapshot, vbn: e.vbn, cause: e });
  }

  /**
   * Restores one file or folder out of a backup chain without restoring the volume: only the record headers are
   * scanned, and only the metadata on its path and its own blocks are read.
   */
  async restoreFile(files: string[], volPath: string, hostPath: string, options: { snapshot?: string; inVolume?: VolumeRef; nextTape?: NextTape } = {}, onProgress?: Progress): Promise<CopySummary & { backupBytesRead: number }> {
    const named = await this.backupLocations(files, options.inVolume);
    return this.host.job('restore-file', named.length > 0 ? backupLabel(named[named.length - 1]) : '', hostPath, volPath, onProgress, async (signal, progress) => {
      const { locations, done } = await this.spoolTapes(named, options.nextTape, progress);
      try {
        return await this.restoreFileFrom(locations, volPath, hostPath, options.snapshot, progress, signal);
      } finally {
        await done();
      }
    }, (r) => r.bytes);
  }

  private async restoreFileFrom(locations: BackupLocation[], volPath: string, hostPath: string, snapshot: string | undefined, progress: Progress, signal: { cancelled: boolean }): Promise<CopySummary & { backupBytesRead: number }> {
    const headers = await checkChain(locations);
    const device = await BackupChainDevice.open(locations, headers, snapshot);
    try {
      const v = await Volume.openDevice(device, { readOnly: true, cpIntervalMs: 0 });
      const summary = await copyToHost(v, volPath, hostPath, progress, undefined, signal);
      await v.close();
      return { ...summary, backupBytesRead: device.bytesRead };
    } finally {
      await device.close();
    }
  }
}

/** Refuses to replace a file at `path` (on the host, or inside volume `into`): a backup replaces one only when forced. */
async function refuseExistingBackup(path: string, into: Volume | null, target: string): Promise<void> {
  const isFile = into
    ? await into.stat(path).then((e) => e.type !== 'dir', () => false)
    : await stat(path).then((s) => !s.isDirectory(), () => false);
  if (isFile) {
    throw new SnapplaneError('EXISTS', `'${target}' exists already and was left as it is: a backup does not replace a file unless asked to; name a new file, or replace it (\`snapplane backup --force\`, or "replace an existing file" in the console)`, { path });
  }
}

/** The report of a backup a continued restore finds on the volume already: nothing was received. */
function alreadyRestored(volume: string, h: StreamHeader): ReceiveReport {
  const snapshots = h.snapshots.map((x) => x.name);
  return { volume, streamId: h.streamId, kind: h.kind, expression: h.expression, base: h.base?.name ?? null, snapshots, current: snapshots[snapshots.length - 1], resumedFromVbn: null, blocks: 0, bytes: 0, generation: 0, alreadyThere: true };
}
