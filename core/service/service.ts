/** The service facade: the one entry point front ends use. It opens volumes, runs operations on them, and closes them. */
import { stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type {
  VerifyReport,
  BackupPlan,
  CopySummary,
  DirEntryInfo,
  FsckReport,
  ImageEvalReport,
  MasterInfo,
  MirrorInfo,
  MirrorSetReport,
  MirrorKind,
  MirrorResyncOptions,
  MirrorResyncReport,
  MirrorUpdateReport,
  PlaneInfo,
  ProgressEvent,
  RaidScrubReport,
  ReceiveReport,
  ReplicateReport,
  ScheduleInfo,
  ScheduleRunReport,
  SendReport,
  SnapshotDiff,
  SnapshotInfo,
  SpaceReport,
  VolumeInfo,
} from '../api/types.js';
import type { BlockInfo, PlaneTiles, RevertPreview, SavedImage } from '../api/console-types.js';
import { SnapplaneError, StaleViewError, asIoError, isSnapplaneError } from '../common/errors.js';
import { hostSpaceShortfall } from '../common/host-space.js';
import { pathExists } from '../common/path-exists.js';
import { sameFile } from '../common/same-file.js';
import { BLOCK_SIZE, formatBytes } from '../common/units.js';
import { findBlockOwner, type OwnerState } from '../fs/block-owner.js';
import { SnapshotFlag } from '../fs/format.js';
import { copyFromHost, copyToHost } from '../fs/host-copy.js';
import { restoreIntoFolder } from '../fs/host-restore.js';
import { VolumeLock, lockPathOf } from '../fs/lock.js';
import { liveSends, senderOf } from '../fs/sending.js';
import { deleteVolumeFiles, replaceVolumeFiles } from '../fs/sidecar.js';
import { Volume } from '../fs/volume.js';
import { bindNames, evaluateBound } from '../image/evaluate.js';
import { parseImageExpr, formatImageExpr, streamShape } from '../image/expression.js';
import { parseLevelPolicy, planBackups } from '../image/plan.js';
import { planeTiles, imageTiles, planesHolding } from '../image/tiles.js';
import { describeCadence, lastSlot, nextSlot, type Cadence } from '../jobs/cadence.js';
import type { Endpoint } from '../net/endpoint.js';
import { openDeviceAt } from '../raid/open-device.js';
import { Raid4Device } from '../raid/raid4-device.js';
import { StreamReader } from '../stream/reader.js';
import { readResumeToken, receiveStream } from '../stream/receive.js';
import { keyFileExposure } from '../net/key-file.js';
import { planStream, streamSize, writeStream, type SendOptions, type StreamProgress } from '../stream/send.js';
import type { NextTape } from '../stream/tape-device.js';
import { checkDestination } from '../transfer/destination.js';
import { readReplacement } from '../transfer/replacement.js';
import { readMarker, readOffline } from '../transfer/sidecars.js';
import { Backups, sendReport } from './backups.js';
import { jobSignalScope } from './job-signal.js';
import { Replication, type MirrorSettings, type ReplicationHost, type TransferOptions } from './replication.js';
import { defaultGuards, isDue, planScheduleRun, type RetentionGuard } from './scheduler.js';
import { StateStore, type JobRecord, type TransferJobRecord } from './state-store.js';
import { checkNewVolumePath, snapshotGivenForVolume, type VolumeRef } from './volume-names.js';

export type { VolumeRef } from './volume-names.js';

export interface ServiceOptions {
  /** CP timer for volumes the service keeps open; 0 turns the timer off (one-shot CLI commands). */
  cpIntervalMs?: number;
  /** The clock (ms since the epoch) for snapshot and file times; a simulated clock drives demos and schedule tests. */
  now?: () => number;
  /** Where relationships, schedules and job history persist (default: state.json under $SNAPPLANE_HOME). */
  stateFile?: string;
  /**
   * The engine serves several requests at once (the console): true while work of its own besides the asking one is
   * under way (a request, another job, a scheduler pass), any of which may hold a writer it opened. A mirror update
   * gives up its source's writer for the transfer only while this is false; otherwise it keeps it, and sends from a
   * read-only view all the same.
   */
  otherWork?: () => boolean;
}

export type ProgressCallback = (p: ProgressEvent) => void;

/** How long an out-of-date read-only volume stays open after a newer one replaced it (for reads still under way). */
const RETIRED_MS = 10 * 60_000;

/** How many fresh views a read gets when a writer in another process keeps changing the volume under it. */
const STALE_READ_ATTEMPTS = 5;

export class SnapplaneService {
  private readonly open = new Map<string, Volume>();
  /** Writers being closed by releaseWriter, by key: a new open of the volume waits for its lock to go. */
  private readonly closingWriters = new Map<string, Promise<void>>();
  /** Out-of-date read-only volumes, closed RETIRED_MS after they were replaced (or by closeAll). */
  private readonly retired = new Set<Volume>();
  private readonly cpIntervalMs: number;
  private readonly now: (() => number) | undefined;
  private readonly state: StateStore;
  /** Reasons to keep a snapshot that retention would otherwise prune (replication adds its own). */
  readonly retentionGuards: RetentionGuard[] = [...defaultGuards];

  private readonly replication: Replication;
  private readonly backups: Backups;

  constructor(options: ServiceOptions = {}) {
    this.cpIntervalMs = options.cpIntervalMs ?? 10_000;
    this.now = options.now;
    this.state = new StateStore(options.stateFile);
    const host: ReplicationHost = {
      openVolume: (path, write, mirrorWrite, offlineUpdate) => this.volume({ volume: path }, write, mirrorWrite === true, offlineUpdate === true),
      closeVolume: (path) => this.close(path),
      // One-shot processes keep a writer that was open before (their caller may hold it); the console decides when
      // it would give the writer up (releaseWriter), as its requests come and go.
      writerShared: (path) => options.otherWork === undefined && this.open.has(this.key({ volume: path }, false)),
      releaseWriter: (path) => (options.otherWork?.() ? Promise.resolve() : this.releaseWriter(path)),
      openDetachedView: (path) => Volume.open(path, { readOnly: true, cpIntervalMs: 0, openDevice: openDeviceAt, now: this.now }),
      deleteVolume: (path) => this.deleteVolume(path),
      replaceVolume: (path, replacement) => this.replaceVolume(path, replacement),
      receiveInto: (path, source, opts, onProgress, signal) => this.receiveInto(path, source, opts, onProgress, signal),
      job: (kind, volume, target, expression, onProgress, fn, bytesOf) => this.transferJob(kind, volume, target, expression, onProgress, fn, bytesOf),
      clock: () => this.clock(),
      state: this.state,
    };
    this.replication = new Replication(host);
    this.backups = new Backups({
      openRef: (ref, write) => this.volume(ref, write),
      receive: (path, source, opts, onProgress) => this.receive(path, source, opts, onProgress),
      receiveInto: (path, source, opts, onProgress, signal) => this.receiveInto(path, source, opts, onProgress, signal),
      job: host.job,
      now: this.now,
    });
  }

  private clock(): number {
    return this.now ? this.now() : Date.now();
  }

  // ---- schedules ---------------------------------------------------------------------------------------

  /** Adds (or replaces) a snapshot schedule on a volume; the volume becomes known to the daemon. */
  async scheduleAdd(volume: string, label: string, cadence: Cadence, keep: number): Promise<ScheduleInfo[]> {
    if (!/^[A-Za-z][A-Za-z0-9_.]*$/.test(label) || label.length > 40) {
      throw new SnapplaneError('INVALID', `bad schedule label '${label}': letters, digits, '_' and '.', starting with a letter`, { volume });
    }
    if (!Number.isInteger(keep) || keep < 1 || keep > 255) throw new SnapplaneError('INVALID', `--keep must be 1 to 255 (got ${keep})`, { volume });
    await this.volumeInfo({ volume }); // the volume must exist and open
    // Every run would fail (a mirror takes no snapshots of its own): refused now, with where they come from.
    const marker = await readMarker(volume).catch(() => null);
    if (marker && !marker.brokenAt) {
      throw new SnapplaneError('INVALID', `'${volume}' is the mirror of '${marker.source}' (relationship '${marker.relationship}'): it takes no snapshots of its own; schedule them on '${marker.source}', and each update brings them to the mirror`, { volume });
    }
    const key = resolvePath(volume);
    await this.state.update((st) => {
      const rec = (st.volumes[key] ??= { schedules: [] });
      rec.schedules = rec.schedules.filter((x) => x.label !== label);
      rec.schedules.push({ label, cadence, keep, createdAt: new Date(this.clock()).toISOString() });
    });
    return this.scheduleList(volume);
  }

  /** The schedules of a volume, with when each is next due. */
  async scheduleList(volume: string): Promise<ScheduleInfo[]> {
    const st = await this.state.load();
    const now = this.clock();
    const schedules = st.volumes[resolvePath(volume)]?.schedules ?? [];
    // Without the volume (gone, or another host's), each schedule is shown at its next slot.
    const made = schedules.length === 0 ? [] : await this.volume({ volume }, false).then((v) => v.snapshots.list().map((e) => ({ name: e.name, at: e.createdAtMs })), () => null);
    return schedules.map((x) => {
      const due = made !== null && isDue(x.label, x.cadence, made, now);
      return { label: x.label, cadence: describeCadence(x.cadence), keep: x.keep, due, nextAt: new Date(due ? lastSlot(x.cadence, now) : nextSlot(x.cadence, now)).toISOString() };
    });
  }

  /** Removes a schedule (its snapshots stay). */
  async scheduleRemove(volume: string, label: string): Promise<void> {
    const key = resolvePath(volume);
    const found = await this.state.update((st) => {
      const rec = st.volumes[key];
      const before = rec?.schedules.length ?? 0;
      if (rec) rec.schedules = rec.schedules.filter((x) => x.label !== label);
      return before !== (rec?.schedules.length ?? 0);
    });
    if (!found) throw new SnapplaneError('NOT_FOUND', `volume '${volume}' has no schedule '${label}'`, { volume });
  }

  /** Runs what is due now (or, with dryRun, says what would be taken and pruned and the exact bytes freed). */
  async scheduleRun(volume: string, options: { dryRun?: boolean } = {}): Promise<ScheduleRunReport> {
    const st = await this.state.load();
    const schedules = st.volumes[resolvePath(volume)]?.schedules ?? [];
    const now = this.clock();
    const snapshots = await this.snapList({ volume });
    const needed = await this.replication.neededMasterReasons(volume);
    // A snapshot being sent (from a read-only view, here or in another process) stays until that transfer ends.
    for (const r of await liveSends(volume)) for (const x of r.snapshots) if (!needed.has(x.name)) needed.set(x.name, `being sent by ${senderOf(r)}`);
    const plan = planScheduleRun(volume, schedules, snapshots, now, [...this.retentionGuards, (_v, snap) => needed.get(snap.name) ?? null]);
    const freed = await this.space(volume, plan.prune.map((p) => p.name));
    const report: ScheduleRunReport = {
      volume,
      at: new Date(now).toISOString(),
      dryRun: options.dryRun === true,
      take: plan.take.map((t) => t.name),
      prune: plan.prune.map((p) => p.name),
      kept: plan.kept,
      freedBytes: freed.freedBytes,
    };
    if (options.dryRun) return report;
    const startedAt = new Date(now).toISOString();
    let error: unknown;
    // The history records what happened, not the plan: a run that failed part-way took and pruned only these.
    const taken: string[] = [];
    const pruned: string[] = [];
    let freeBeforePrune: number | null = null;
    const prune = async (): Promise<void> => {
      if (plan.prune.length > pruned.length && freeBeforePrune === null) freeBeforePrune = (await this.volumeInfo({ volume })).freeBytes;
      for (const p of plan.prune.slice(pruned.length)) {
        await this.snapDelete(volume, p.name);
        pruned.push(p.name);
      }
    };
    try {
      for (const t of plan.take) {
        try {
          await this.snapCreate(volume, t.name);
        } catch (e) {
          // A volume too full for the snapshot: the prunes this run makes anyway come first when they free space
          // (else a full volume kept every old snapshot and took no new one, run after run), then it tries again.
          if (!isSnapplaneError(e, 'ENOSPC') || pruned.length === plan.prune.length || report.freedBytes === 0) throw e;
          await prune();
          await this.snapCreate(volume, t.name);
        }
        taken.push(t.name);
      }
      await prune();
    } catch (e) {
      error = e;
    }
    let freedBytes = pruned.length === plan.prune.length ? report.freedBytes : 0;
    if (pruned.length > 0 && pruned.length < plan.prune.length && freeBeforePrune !== null) {
      // Part of the prune: what those deletions gave back, measured (the plan's figure was for all of them).
      const after = await this.volumeInfo({ volume }).then((i) => i.freeBytes, () => freeBeforePrune!);
      freedBytes = Math.max(0, after - freeBeforePrune);
    }
    if (plan.take.length > 0 || plan.prune.length > 0 || error) {
      await this.state.update((s) => {
        s.history.push({
          id: s.nextJobId++,
          kind: 'schedule-run',
          volume: resolvePath(volume),
          startedAt,
          finishedAt: new Date(this.clock()).toISOString(),
          outcome: error ? 'error' : 'ok',
          taken,
          pruned,
          kept: report.kept,
          freedBytes,
          error: error ? (error instanceof Error ? error.message : String(error)) : undefined,
        });
      });
    }
    if (error) throw error;
    return report;
  }

  /** Volumes with schedules (what the daemon runs). */
  async scheduledVolumes(): Promise<string[]> {
    const st = await this.state.load();
    return Object.entries(st.volumes)
      .filter(([, v]) => v.schedules.length > 0)
      .map(([k]) => k);
  }

  /** Past schedule runs, newest last. */
  async jobHistory(): Promise<JobRecord[]> {
    return (await this.state.load()).history;
  }

  private key(ref: VolumeRef, readOnly: boolean): string {
    return `${ref.volume}\u0000${ref.snapshot ?? ''}\u0000${readOnly ? 'ro' : 'rw'}`;
  }

  /**
   * Opens (or reuses) a volume for reading or writing. `offlineUpdate`: the update that took the volume off-line
   * opens it (everyone else is refused).
   */
  private async volume(ref: VolumeRef, write: boolean, mirrorWrite = false, offlineUpdate = false): Promise<Volume> {
    await this.closingWriters.get(this.key({ volume: ref.volume }, false))?.catch(() => undefined);
    if (write && ref.snapshot !== undefined) {
      throw new SnapplaneError('READ_ONLY', `snapshot '${ref.snapshot}' is read-only`, {
        volume: ref.volume,
        snapshot: ref.snapshot,
      });
    }
    // A writer can serve reads of the active file system too.
    if (!write && ref.snapshot === undefined) {
      const rw = this.open.get(this.key(ref, false));
      if (rw) return rw;
    }
    const k = this.key(ref, !write);
    let v = this.open.get(k);
    // Only another process can have committed since a read-only view was opened, and only while this one does not
    // hold the volume for writing (the writer lock): then the view would answer from the old state.
    const writerHere = this.open.has(this.key({ volume: ref.volume }, false));
    if (v && v.readOnly && !writerHere && (await v.committedGeneration()) !== v.fsinfo.generation) {
      this.open.delete(k);
      this.retire(v);
      v = undefined;
    }
    if (!v) {
      const offline = offlineUpdate ? null : await readOffline(ref.volume);
      if (offline) throw new SnapplaneError('BUSY', `volume '${ref.volume}' is off-line: ${offline}; try again when that update has finished`, { volume: ref.volume });
      if (write && !mirrorWrite) {
        const marker = await readMarker(ref.volume);
        if (marker && !marker.brokenAt) {
          // A relationship deleted while its mirror could not be reached leaves the marker: breaking it by name fails then.
          const known = (await this.state.load()).relationships?.[marker.relationship] !== undefined;
          const how = known
            ? `\`snapplane mirror break ${marker.relationship}\` (where the relationship was created) or \`snapplane mirror break ${ref.volume}\` (on this host, a takeover) makes it writable`
            : `\`snapplane mirror break ${ref.volume}\` (on this host, a takeover) or \`snapplane mirror break ${marker.relationship}\` on the host that made the relationship makes it writable (this host knows no relationship '${marker.relationship}': if it was deleted, break the volume)`;
          throw new SnapplaneError('READ_ONLY', `volume '${ref.volume}' is the mirror of '${marker.source}' (relationship '${marker.relationship}'); it changes only by mirror updates until ${how}`, { volume: ref.volume });
        }
      }
      try {
        v = await Volume.open(ref.volume, {
          readOnly: !write,
          snapshot: ref.snapshot,
          cpIntervalMs: write ? this.cpIntervalMs : 0,
          openDevice: openDeviceAt,
          now: this.now,
        });
      } catch (e) {
        // `put v.img@A …`: no volume by that name, but a snapshot of one; say so rather than NOT_FOUND.
        if (e instanceof SnapplaneError && e.code === 'NOT_FOUND' && ref.snapshot === undefined) throw (await snapshotGivenForVolume(ref.volume, write)) ?? e;
        throw e;
      }
      this.open.set(k, v);
    }
    return v;
  }

  /**
   * Runs `read` on a read-only view of `ref`, again on a fresh view when a writer in another process changed the
   * volume under it: each retry follows a commit of that writer, and a writer committing more often than a read
   * takes gets its BUSY after a few.
   */
  private async reading<T>(ref: VolumeRef, read: (v: Volume) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const v = await this.volume(ref, false);
      try {
        return await read(v);
      } catch (e) {
        if (!(e instanceof StaleViewError) || attempt >= STALE_READ_ATTEMPTS) throw e;
      }
    }
  }

  /**
   * Creates a volume: on a new sparse image file of `sizeBytes`, or with `raid` on a new RAID-4 group folder of
   * `raid` data member images plus a parity image, each of `sizeBytes`.
   */
  async createVolume(path: string, sizeBytes: number, options: { raid?: number } = {}): Promise<VolumeInfo> {
    await checkNewVolumePath(path);
    let v: Volume;
    if (options.raid !== undefined) {
      await Raid4Device.createWhole(path, options.raid, sizeBytes, (device) => Volume.format(device, { now: this.now }));
      v = await Volume.open(path, { cpIntervalMs: this.cpIntervalMs, openDevice: openDeviceAt, now: this.now });
    } else {
      v = await Volume.create(path, { sizeBytes, cpIntervalMs: this.cpIntervalMs, now: this.now });
    }
    this.open.set(this.key({ volume: path }, false), v);
    return v.info();
  }

  private async raidDevice(volume: string): Promise<{ v: Volume; dev: Raid4Device }> {
    const v = await this.volume({ volume }, true);
    if (!(v.device instanceof Raid4Device)) {
      throw new SnapplaneError('INVALID', `volume '${volume}' is a single image, not a RAID-4 group`, { volume });
    }
    return { v, dev: v.device };
  }

  /** Takes a member out of a RAID-4 group (a drill); the volume keeps working degraded. */
  async raidFail(volume: string, member: number): Promise<VolumeInfo> {
    const { v, dev } = await this.raidDevice(volume);
    await v.exclusive(() => dev.failMember(member));
    return v.info();
  }

  /** Replaces a failed member with a new image in the group folder and rebuilds it while the volume stays usable. */
  async raidReplace(volume: string, member: number, image: string, onProgress?: ProgressCallback): Promise<VolumeInfo> {
    const { v, dev } = await this.raidDevice(volume);
    await v.exclusive(() => dev.beginReplace(member, image));
    for (;;) {
      // Only stripes holding data are rebuilt (as a resilver copies only allocated blocks).
      const step = await v.exclusive(() => dev.rebuildStep(4096, (vbn, count) => v.holdsData(vbn, count)));
      onProgress?.({ phase: 'rebuild', done: step.done, total: step.total, unit: 'blocks' });
      if (step.complete) break;
    }
    return v.info();
  }

  /**
   * Scrubs a RAID-4 volume: verifies every block checksum (rebuilding and rewriting bad copies from parity),
   * then every stripe's parity (rewriting parity that does not match).
   */
  async raidScrub(volume: string, onProgress?: ProgressCallback): Promise<RaidScrubReport> {
    const { v, dev } = await this.raidDevice(volume);
    const before = v.ctx.repaired;
    onProgress?.({ phase: 'verify blocks', done: 0, total: 1, unit: 'items' });
    const fsck = await v.fsck();
    const dataRepaired = v.ctx.repaired - before;
    const total = dev.stripeCount;
    let parityRepaired = 0;
    let checked = 0;
    for (let s = 0; s < total; s += 4096) {
      const n = Math.min(4096, total - s);
      const { mismatches, checked: c } = await v.exclusive(() => dev.scrubStripes(s, n, true, (vbn, count) => v.holdsData(vbn, count)));
      parityRepaired += mismatches.length;
      checked += c;
      onProgress?.({ phase: 'verify parity', done: s + n, total, unit: 'items' });
    }
    const unrepairable = fsck.issues.filter((i) => i.kind === 'checksum').map((i) => ({ vbn: i.vbn ?? -1, path: i.path ?? '', message: i.message }));
    return {
      volume,
      stripes: total,
      stripesChecked: checked,
      dataBlocksRepaired: dataRepaired,
      parityStripesRepaired: parityRepaired,
      unrepairable,
      clean: unrepairable.length === 0 && fsck.clean,
      degraded: dev.health().degraded,
    };
  }

  // ---- transfer jobs ------------------------------------------------------------------------------------

  private readonly running = new Map<number, { cancelled: boolean }>();
  private jobSeq = 0;

  /** Asks every running transfer to stop (a receive stays at its base and keeps a resume token); returns how many. */
  cancelJobs(): number {
    for (const signal of this.running.values()) signal.cancelled = true;
    return this.running.size;
  }

  /** Runs a transfer as a job: cancellable, its phases collected from progress, its outcome kept in the history. */
  private async transferJob<T>(
    kind: TransferJobRecord['kind'],
    volume: string,
    target: string,
    expression: string | undefined,
    onProgress: ProgressCallback | undefined,
    fn: (signal: { cancelled: boolean }, progress: ProgressCallback) => Promise<T>,
    bytesOf: (r: T) => number,
  ): Promise<T> {
    const signal = jobSignalScope.getStore() ?? { cancelled: false };
    const id = ++this.jobSeq;
    this.running.set(id, signal);
    // The console reserved the history id it shows on the job's card: the record takes it (once).
    const historyId = signal.historyId;
    signal.historyId = undefined;
    const phases: string[] = [];
    // What moved before a failure or a cancel: the history records it, as the job's own progress showed it.
    let moved = 0;
    const progress: ProgressCallback = (p) => {
      if (phases[phases.length - 1] !== p.phase) phases.push(p.phase);
      if (p.unit === 'bytes') moved = Math.max(moved, p.done);
      onProgress?.(p);
    };
    const startedAt = new Date(this.clock()).toISOString();
    let outcome: TransferJobRecord['outcome'] = 'ok';
    let error: string | undefined;
    let bytes = 0;
    try {
      const r = await fn(signal, progress);
      bytes = bytesOf(r);
      return r;
    } catch (e) {
      outcome = e instanceof SnapplaneError && e.code === 'CANCELLED' ? 'cancelled' : 'error';
      error = e instanceof Error ? e.message : String(e);
      bytes = moved;
      throw e;
    } finally {
      this.running.delete(id);
      const resumeToken = kind === 'receive' || kind === 'copy' ? ((await readResumeToken(target).catch(() => null)) ?? undefined) : undefined;
      const record: TransferJobRecord = { id: 0, kind, volume: resolvePath(volume), target, expression, startedAt, finishedAt: new Date(this.clock()).toISOString(), outcome, phases, bytes, error, resumeToken };
      await this.state
        .update((st) => {
          st.history.push({ ...record, id: historyId ?? st.nextJobId++ });
        })
        .catch(() => undefined); // the history is a record, never a reason to fail a transfer
    }
  }

  // ---- storage images and streams ----------------------------------------------------------------------

  /** Evaluates a storage-image expression over the volume's planes: its blocks and bytes, and whether it can be streamed. */
  async imageEval(volume: string, expression: string): Promise<ImageEvalReport> {
    return this.reading({ volume }, (v) =>
      v.exclusive(async () => {
        const expr = parseImageExpr(expression);
        const entries = v.snapshots.list();
        const bound = bindNames(expr, expression, entries, volume);
        const image = await evaluateBound(expr, bound, await v.planeMap());
        // Counted as a stream of it carries them (send.ts and the planner leave the fsinfo copies out likewise).
        const fsinfoBlocks = (image.plane.has(0) ? 1 : 0) + (image.plane.has(1) ? 1 : 0);
        image.plane.release(); // only the size is reported
        const shape = streamShape(expr);
        const blocks = image.blocks - fsinfoBlocks;
        const report: ImageEvalReport = {
          volume,
          expression: formatImageExpr(expr),
          blocks,
          bytes: blocks * BLOCK_SIZE,
          fsinfoBlocks,
          planes: [...bound.values()].map((b) => ({ name: b.name, plane: b.plane, snapshot: b.entry?.name ?? null })),
          streamable: !('reason' in shape) && shape.tops.every((t) => bound.get(t.name)!.entry !== null) && (shape.base === null || bound.get(shape.base.name)!.entry !== null),
        };
        if ('reason' in shape) report.reason = shape.reason;
        else if (!report.streamable) report.reason = "a stream carries snapshots, not 'active'; take a snapshot first";
        else report.kind = shape.base ? 'incremental' : 'full';
        return report;
      }),
    );
  }

  /** Plans level-0/1/2... backups of the volume's snapshots under a policy, with exact sizes; `at` asks for a restore chain. */
  async imagePlan(volume: string, policy: string, at?: string): Promise<BackupPlan> {
    const parsed = parseLevelPolicy(policy);
    let atMs: number | undefined;
    if (at !== undefined) {
      atMs = Date.parse(at);
      if (Number.isNaN(atMs)) throw new SnapplaneError('INVALID', `bad date '${at}' (use ISO 8601, e.g. 2026-06-05T12:00)`, { volume });
    }
    return this.reading({ volume }, (v) => v.exclusive(async () => planBackups(await v.planeMap(), v.snapshots.list(), parsed, volume, atMs)));
  }

  /** Plans a send: exact sizes from the planes, no data read (`send --dry-run`). */
  async sendDryRun(volume: string, expression: string, options: SendOptions = {}): Promise<SendReport> {
    const v = await this.volume({ volume }, false);
    const plan = await planStream(v, expression, { ...options, now: this.now });
    return sendReport(volume, plan, true, streamSize(plan).bytes);
  }

  /** Sends an image as a stream of buffers (to a pipe or socket); the report comes once the stream is consumed. */
  async sendStream(volume: string, expression: string, options: SendOptions & { reuseBuffers?: boolean; signal?: { cancelled: boolean } } = {}, onProgress?: ProgressCallback): Promise<{ report: SendReport; stream: AsyncIterable<Buffer> }> {
    const v = await this.volume({ volume }, false);
    const plan = await planStream(v, expression, { ...options, now: this.now });
    const report = sendReport(volume, plan, false, 0);
    async function* run(): AsyncGenerator<Buffer> {
      const progress = (p: StreamProgress): void => onProgress?.({ phase: 'send', done: p.blocks * BLOCK_SIZE, total: plan.sendBlocks * BLOCK_SIZE, unit: 'bytes' });
      for await (const b of writeStream(v, plan, progress, options.signal, options.reuseBuffers === true)) {
        report.streamBytes += b.length;
        yield b;
      }
      report.overhead = report.dataBytes === 0 ? 0 : (report.streamBytes - report.dataBytes) / report.dataBytes;
    }
    return { report, stream: run() };
  }

  /**
   * Sends an image into a file (a file backup): on the host, or with `inVolume` inside another volume; written under
   * a temporary name and renamed when complete; a file already there is kept (EXISTS) unless `force`.
   */
  sendToFile(volume: string, expression: string, path: string, options: SendOptions & { inVolume?: string; force?: boolean } = {}, onProgress?: ProgressCallback): Promise<SendReport> {
    return this.backups.sendToFile(volume, expression, path, options, onProgress);
  }

  /** Tape backup: the image in `tape` order across tape files in a folder, or across cartridges of a tape device. */
  sendToTape(volume: string, expression: string, dir: string, options: { tapeSize: number; beforeTape?: NextTape; askOperator?: NextTape; codec?: 'none' | 'lz4' }, onProgress?: ProgressCallback): Promise<SendReport & { tapes: number }> {
    return this.backups.sendToTape(volume, expression, dir, options, onProgress);
  }

  /** Receives a stream from a file (a file backup, on the host or with `inVolume` inside a volume). */
  receiveFile(volume: string, path: string, options: { force?: boolean; raid?: number; inVolume?: VolumeRef; nextTape?: NextTape } = {}, onProgress?: ProgressCallback): Promise<ReceiveReport> {
    return this.backups.receiveFile(volume, path, options, onProgress);
  }

  /** Verifies backups end to end (every record, counts, digests) and that they form a restorable chain. */
  verify(files: string[], options: { inVolume?: VolumeRef; nextTape?: NextTape } = {}, onProgress?: ProgressCallback): Promise<VerifyReport> {
    return this.backups.verify(files, options, onProgress);
  }

  /** Restores a chain of backups (a full one, then incrementals) into a volume; each backup commits whole. */
  restore(volume: string, files: string[], options: { raid?: number; inVolume?: VolumeRef; nextTape?: NextTape } = {}, onProgress?: ProgressCallback): Promise<ReceiveReport[]> {
    return this.backups.restore(volume, files, options, onProgress);
  }

  /** Restores one file or folder out of a backup chain to the host, reading only what its path needs. */
  restoreFile(files: string[], volPath: string, hostPath: string, options: { snapshot?: string; inVolume?: VolumeRef; nextTape?: NextTape } = {}, onProgress?: ProgressCallback): Promise<CopySummary & { backupBytesRead: number }> {
    return this.backups.restoreFile(files, volPath, hostPath, options, onProgress);
  }

  /**
   * Receives a stream into a volume. A full stream into a volume that does not exist creates it (an image file
   * of the source's size, or `raid` data members plus parity). On any error the destination stays at its base.
   */
  async receive(volume: string, source: AsyncIterable<Buffer>, options: { force?: boolean; raid?: number } = {}, onProgress?: ProgressCallback): Promise<ReceiveReport> {
    return this.transferJob('receive', volume, volume, undefined, onProgress, (signal, progress) => this.receiveInto(volume, source, options, progress, signal), (r) => r.bytes);
  }

  private async receiveInto(volume: string, source: AsyncIterable<Buffer>, options: { force?: boolean; raid?: number; mirrorWrite?: boolean; overwriteBase?: boolean; resumeHint?: string | null }, onProgress: ProgressCallback | undefined, signal: { cancelled: boolean }): Promise<ReceiveReport> {
    const reader = new StreamReader(source);
    let created = false;
    let v: Volume;
    try {
      const header = await reader.open();
      const short = await hostSpaceShortfall(volume, header.imageBlocks * BLOCK_SIZE);
      if (short) {
        throw new SnapplaneError('ENOSPC', `the ${header.kind} stream of ${formatBytes(header.imageBlocks * BLOCK_SIZE)} needs at least ${formatBytes(short.need)} more on the host file system holding ${short.folder}, which has ${formatBytes(short.free)} free; nothing was written to '${volume}'`, { volume });
      }
      if (!(await pathExists(volume))) {
        if (header.kind !== 'full') {
          throw new SnapplaneError('NOT_FOUND', `volume '${volume}' does not exist; an incremental stream (based on '${header.base!.name}') needs a destination that has that snapshot`, { volume });
        }
        const size = header.blockCount * BLOCK_SIZE;
        await this.createVolume(volume, options.raid ? Math.ceil(header.blockCount / options.raid) * BLOCK_SIZE + 16 * BLOCK_SIZE : size, options.raid ? { raid: options.raid } : {});
        created = true;
      }
      v = await this.volume({ volume }, true, options.mirrorWrite === true, options.overwriteBase === true);
    } catch (e) {
      await reader.close();
      throw e;
    }
    try {
      const report = await receiveStream(v, reader, { force: options.force, overwriteBase: options.overwriteBase, signal, onProgress: (p) => onProgress?.({ phase: 'receive', done: p.blocks * BLOCK_SIZE, total: p.totalBlocks * BLOCK_SIZE, unit: 'bytes' }) });
      // Returned or thrown, receiveStream has let every write of the reader's buffers settle.
      reader.releaseBuffers();
      return created ? { ...report, created } : report;
    } catch (e) {
      reader.releaseBuffers();
      await reader.close();
      // A volume stopped half-way through committing must be reopened from disk.
      if (v.isFailed) await this.forget(volume);
      const token = await readResumeToken(volume);
      // A volume this receive made is removed when nothing will resume into it: a restore (it reads the backup
      // again), or no token kept. A replication keeps it and its token, and resumes there.
      if (created && (options.resumeHint === null || (options.resumeHint === undefined && !token))) {
        await this.forget(volume);
        await deleteVolumeFiles(volume).catch(() => undefined);
        // A restore says so itself, naming the backup it stopped at.
        if (!(e instanceof SnapplaneError) || options.resumeHint === null) throw e;
        throw new SnapplaneError(e.code, `${e.message}; '${volume}', which this receive created, was removed`, { volume, path: e.path, snapshot: e.snapshot, vbn: e.vbn, cause: e });
      }
      if (token && e instanceof SnapplaneError && (e.code === 'BAD_STREAM' || e.code === 'IO' || e.code === 'CANCELLED' || e.code === 'ENOSPC')) {
        // What resumes depends on the caller: a replication resumes on its own, a manual receive needs the token.
        if (options.resumeHint === null) throw e;
        const hint = options.resumeHint ?? `resume with \`snapplane send ... --resume ${token}\``;
        const room = e.code === 'ENOSPC' ? ' (they hold host space): make room on the host, then' : ':';
        throw new SnapplaneError(e.code, `${e.message}; blocks that landed are kept${room} ${hint}`, { volume, cause: e });
      }
      throw e;
    }
  }

  /** The resume token an interrupted receive into `volume` left behind, or null. */
  async receiveToken(volume: string): Promise<string | null> {
    return readResumeToken(volume);
  }

  /** Copies an image of one volume to another (full or incremental), blocks at the same VBNs, in this process. */
  async copy(source: string, destination: string, expression: string, options: SendOptions & { force?: boolean } = {}, onProgress?: ProgressCallback): Promise<ReceiveReport> {
    if (await sameFile(source, destination)) throw new SnapplaneError('INVALID', 'source and destination are the same volume', { volume: source });
    return this.transferJob('copy', source, resolvePath(destination), expression, onProgress, async (signal, progress) => {
      // The receiver is done with each buffer before it asks for the next, so the sender may reuse them.
      const { stream } = await this.sendStream(source, expression, { ...options, reuseBuffers: true, signal });
      // A copy sends no resumed stream: the same copy again starts over (the kept blocks serve a `send --resume`).
      return this.receiveInto(destination, stream, { force: options.force, resumeHint: 'a copy does not resume: run the same copy again, it sends the image from the start' }, progress, signal);
    }, (r) => r.bytes);
  }

  private async forget(volume: string): Promise<void> {
    for (const [k, v] of this.open) {
      if (k.startsWith(`${volume}\u0000`)) {
        await v.abort().catch(() => undefined);
        this.open.delete(k);
      }
    }
  }

  /** Capacity, generation, device health and counts of a volume or snapshot. */
  async volumeInfo(ref: VolumeRef): Promise<VolumeInfo> {
    const info = await this.reading(ref, (v) => v.info());
    // The marker is a sidecar the service keeps, not part of the volume: shown wherever the volume is.
    if (ref.snapshot === undefined) {
      info.mirrorOf = await readMarker(ref.volume);
      info.replacement = await readReplacement(ref.volume);
    }
    return info;
  }

  /** Copies a host file or folder into the volume (modes, owners, mtimes and symlinks preserved); cancellable. */
  async put(volume: string, hostPath: string, volPath: string, onProgress?: ProgressCallback): Promise<CopySummary> {
    const v = await this.volume({ volume }, true);
    return this.cancellable((signal) => copyFromHost(v, hostPath, volPath, onProgress, signal));
  }

  /** Hands a file of the volume (or a snapshot) to `sink` chunk by chunk (`get <vol> <path> -`); returns its bytes. */
  async getTo(ref: VolumeRef, volPath: string, sink: (chunk: Buffer) => Promise<void>): Promise<number> {
    return this.cancellable((signal) =>
      this.reading(ref, async (v) => {
        const st = await v.stat(volPath);
        if (st.type !== 'file') throw new SnapplaneError('INVALID', `'${volPath}' is a ${st.type === 'dir' ? 'folder' : 'symbolic link'}; only a file goes to standard output (name a host path to get it)`, { volume: ref.volume, path: volPath });
        let written = 0;
        try {
          for await (const chunk of v.readChunks(volPath, { reuse: true })) {
            if (signal.cancelled) throw new SnapplaneError('CANCELLED', `get interrupted after ${written} bytes of '${volPath}'`, { volume: ref.volume, path: volPath });
            await sink(chunk);
            written += chunk.length;
          }
        } catch (e) {
          // Bytes already out cannot be taken back: a fresh view would send them again.
          if (written > 0 && e instanceof StaleViewError) throw new SnapplaneError('BUSY', `${e.message} (after ${written} bytes of '${volPath}' went out: run it again)`, { volume: ref.volume, path: volPath });
          throw e;
        }
        return written;
      }),
    );
  }

  /** Copies a file or folder out of the volume (or a snapshot) to the host; cancellable. */
  async get(ref: VolumeRef, volPath: string, hostPath: string, onProgress?: ProgressCallback): Promise<CopySummary> {
    const into = await stat(hostPath).then((s) => s.isDirectory(), () => false);
    return this.cancellable((signal) => this.reading(ref, (v) => copyToHost(v, volPath, hostPath, onProgress, into, signal)));
  }

  /** Runs a copy that `cancelJobs` stops (Ctrl-C in the CLI) without recording it as a transfer job. */
  private async cancellable<T>(fn: (signal: { cancelled: boolean }) => Promise<T>): Promise<T> {
    const signal = jobSignalScope.getStore() ?? { cancelled: false };
    const id = ++this.jobSeq;
    this.running.set(id, signal);
    try {
      return await fn(signal);
    } finally {
      this.running.delete(id);
    }
  }

  /** Lists a folder (or describes one file). */
  async ls(ref: VolumeRef, volPath = '/'): Promise<DirEntryInfo[]> {
    return this.reading(ref, async (v) => {
      const st = await v.stat(volPath);
      return st.type === 'dir' ? v.readdir(volPath) : [st];
    });
  }

  /** Removes a file, link or (with recursive) a folder tree. */
  async rm(volume: string, volPath: string, recursive = false): Promise<void> {
    await (await this.volume({ volume }, true)).remove(volPath, { recursive });
  }

  /** Makes a folder (with parents, its missing ancestors too). */
  async mkdir(volume: string, volPath: string, parents = false): Promise<void> {
    await (await this.volume({ volume }, true)).mkdir(volPath, { parents });
  }

  /** Renames or moves a file or folder within the volume. */
  async mv(volume: string, from: string, to: string): Promise<void> {
    await (await this.volume({ volume }, true)).rename(from, to);
  }

  /** Forces a consistency point; returns its generation. */
  async sync(volume: string): Promise<number> {
    return (await this.volume({ volume }, true)).sync();
  }

  /** Takes a snapshot (a shadow snapshot with `shadow`). */
  async snapCreate(volume: string, name: string, shadow = false): Promise<SnapshotInfo> {
    return (await this.volume({ volume }, true)).createSnapshot(name, { shadow });
  }

  /** Deletes a snapshot (clears its plane); refuses a held one. */
  async snapDelete(volume: string, name: string): Promise<void> {
    const v = await this.volume({ volume }, true);
    const entry = v.snapshots.byName(name, volume);
    await this.replication.checkNotNeeded(volume, [entry], 'delete');
    if (entry.flags & SnapshotFlag.hold) await this.replication.checkNotRelationships(volume, name);
    await v.deleteSnapshot(name);
  }

  /** Renames a snapshot. */
  async snapRename(volume: string, from: string, to: string): Promise<void> {
    await (await this.volume({ volume }, true)).renameSnapshot(from, to);
  }

  /** Sets or clears a snapshot's hold (a held snapshot cannot be deleted). */
  async snapHold(volume: string, name: string, hold: boolean): Promise<SnapshotInfo> {
    const v = await this.volume({ volume }, true);
    await v.setSnapshotFlags(name, { hold });
    return (await v.listSnapshots()).find((s) => s.name === name)!;
  }

  /** Lists snapshots with their unique-block counts, oldest first. */
  async snapList(ref: VolumeRef): Promise<SnapshotInfo[]> {
    return this.reading({ volume: ref.volume }, (v) => v.listSnapshots());
  }

  /** Files added, changed and removed between two snapshots (`active` names the live file system). */
  async snapDiff(volume: string, older: string, newer: string): Promise<SnapshotDiff> {
    return this.reading({ volume }, (v) => v.diffSnapshots(older, newer));
  }

  /** Restores a file or folder from a snapshot by pointing at its blocks (no data copy). */
  async snapRestore(volume: string, snapshot: string, volPath: string, to?: string): Promise<void> {
    await (await this.volume({ volume }, true)).restoreFromSnapshot(snapshot, volPath, { to });
  }

  /** Reverts the whole volume to a snapshot; changes made since it are lost. */
  async snapRevert(volume: string, snapshot: string): Promise<void> {
    await (await this.volume({ volume }, true)).revertToSnapshot(snapshot);
  }

  /** Checks every invariant of the volume. */
  async fsck(volume: string): Promise<FsckReport> {
    // A volume whose metadata is too damaged to open is fsck's finding, not an error that hides the report.
    const opened = await this.volume({ volume }, false).then(
      () => null,
      (e: unknown) => e,
    );
    if (opened instanceof SnapplaneError && (opened.code === 'CHECKSUM' || opened.code === 'BAD_FORMAT' || opened.code === 'IO') && (await pathExists(volume))) {
      return {
        volume,
        clean: false,
        generation: -1,
        issues: [{ kind: opened.code === 'CHECKSUM' ? 'checksum' : 'structure', message: `the volume cannot be opened: ${opened.message}`, ...(opened.vbn === undefined ? {} : { vbn: opened.vbn }) }],
        stats: { files: 0, dirs: 0, symlinks: 0, blocksReferenced: 0, planesChecked: 0, snapshotsChecked: 0 },
      };
    }
    if (opened) throw opened;
    return this.reading({ volume }, async (v) => {
      const report = await v.fsck();
      // Issues found in a view a writer in another process committed past may be its doing (blocks reused under
      // the view), not the volume's: such a report is not given out.
      if (!report.clean && v.readOnly) {
        const now = await v.committedGeneration();
        if (now !== v.fsinfo.generation) throw new StaleViewError(`volume '${volume}' changed while fsck read it (a writer in another process committed CP ${now} after CP ${v.fsinfo.generation}, which fsck was checking); run fsck again, or when the writer has stopped`, { volume });
      }
      return report;
    });
  }

  /** Per plane: name, blocks set, blocks held only by it. */
  async planes(volume: string): Promise<PlaneInfo[]> {
    return this.reading({ volume }, (v) => v.planes());
  }

  /**
   * Takes an out-of-date read-only volume out of use: a send or read still holding it goes on (its planes and
   * blocks are pinned or still there), so it is closed only a while later.
   */
  private retire(v: Volume): void {
    this.retired.add(v);
    const timer = setTimeout(() => {
      if (!this.retired.delete(v)) return;
      void v.close().catch(() => undefined);
    }, RETIRED_MS);
    timer.unref();
  }

  /**
   * Deletes a volume with its sidecars (a full resync's unfinished replacement no relationship will finish). Closed
   * here first; refused with LOCKED while another process has it open for writing.
   */
  async deleteVolume(path: string): Promise<void> {
    await this.close(path);
    if ((await stat(path).catch(() => null)) === null) throw new SnapplaneError('NOT_FOUND', `volume '${path}' does not exist`, { volume: path });
    await this.underWriterLock(path, `cannot delete volume '${path}'`, () => deleteVolumeFiles(path));
  }

  /**
   * Puts the volume at `replacement` in place of the one at `path` (deleted), under `path`'s writer lock: refused
   * with LOCKED while another process has it open for writing. Both are closed here first.
   */
  async replaceVolume(path: string, replacement: string): Promise<void> {
    await this.close(path);
    await this.close(replacement);
    await this.underWriterLock(path, `cannot put '${replacement}' in place of '${path}'`, () => replaceVolumeFiles(path, replacement));
  }

  /** Runs `change` on a volume's files holding its writer lock (none when it does not exist); host errors say `what`. */
  private async underWriterLock(path: string, what: string, change: () => Promise<void>): Promise<void> {
    const isGroup = await stat(path).then((st) => st.isDirectory(), () => null);
    const lock = isGroup === null ? null : await VolumeLock.acquire(path, lockPathOf(path, isGroup));
    try {
      await change();
    } catch (e) {
      throw asIoError(e, what, { volume: path });
    } finally {
      await lock?.release();
    }
  }

  /** Commits and closes this process's writer of `volume` (its read-only views stay open): other processes may write. */
  private async releaseWriter(volume: string): Promise<void> {
    const k = this.key({ volume }, false);
    const v = this.open.get(k);
    if (!v) return;
    this.open.delete(k);
    // Until its lock is gone, an open for writing here would find the lock this process's own (LOCKED): it waits.
    const closing = v.close().finally(() => this.closingWriters.delete(k));
    this.closingWriters.set(k, closing);
    await closing;
  }

  /** Closes one volume (writes a final consistency point when it was open for writing). */
  async close(volume: string): Promise<void> {
    for (const [k, v] of [...this.open]) {
      if (k.startsWith(`${volume}\u0000`)) {
        this.open.delete(k);
        await v.close();
      }
    }
  }

  /** Releases every volume without committing: each stays at its last consistency point (after a failed command). */
  async abortAll(): Promise<void> {
    const all = [...this.open.values(), ...this.retired];
    this.open.clear();
    this.retired.clear();
    for (const v of all) await v.abort().catch(() => undefined);
  }

  /** Exact bytes that deleting the snapshots `names` would free, with per-snapshot figures. */
  async space(volume: string, names: string[]): Promise<SpaceReport> {
    return this.reading({ volume }, (v) => v.space(names));
  }

  // ---- replication and mirroring ----------------------------------------------------------------------------

  /** Master snapshots, oldest first, with the destinations that still need each (`master list`). */
  masterList(volume: string): Promise<MasterInfo[]> {
    return this.replication.masterList(volume);
  }

  /** Marks (or unmarks) a master snapshot; the `master` named pointer follows the newest. */
  masterMark(volume: string, snapshot: string, mark: boolean): Promise<MasterInfo[]> {
    return this.replication.masterMark(volume, snapshot, mark);
  }

  /** Forgets a destination that will not come back; the masters only it needed are no longer held. */
  masterRelease(volume: string, destination: string): Promise<{ destination: string; released: string[] }> {
    return this.replication.masterRelease(volume, destination);
  }

  /** Sends a destination (a local volume or host:port/name) up to the source's newest master snapshot (`dryRun`: says what it would send). */
  async replicate(source: string, destination: string, options: TransferOptions & { raid?: number; dryRun?: boolean } = {}, onProgress?: ProgressCallback): Promise<ReplicateReport> {
    // Here rather than in every replication: a relationship's update replicates to the destination it was created with.
    await checkDestination(destination, options.keyFile);
    return this.replication.replicate(source, destination, options, onProgress);
  }

  /** A warning when users other than the owner can read a pre-shared key file, else null (see core/net/key-file.ts). */
  keyFileWarning(keyFile: string): Promise<string | null> {
    return keyFileExposure(keyFile);
  }

  /** Runs a replication endpoint on a TCP port for volumes under `root` (`snapplane serve`); idle volumes stay open `holdMs` (default 30 s). */
  serve(options: { host?: string; port: number; root: string; keyFile: string; log?: (line: string) => void; holdMs?: number }): Promise<Endpoint> {
    return this.replication.serve(options);
  }

  /** Records a mirror relationship; its first update initializes the mirror. */
  mirrorCreate(name: string, source: string, destination: string, options: TransferOptions & { kind: MirrorKind; schedule?: Cadence; slow?: string }): Promise<MirrorInfo> {
    return this.replication.mirrorCreate(name, source, destination, options);
  }

  /** Changes a relationship's schedule, bandwidth limit or key file (its state and snapshots stay). */
  mirrorSet(name: string, settings: MirrorSettings): Promise<MirrorSetReport> {
    return this.replication.mirrorSet(name, settings);
  }

  /** What one transfer of a relationship would send now (`mirror update --dry-run`); nothing is taken or sent. */
  mirrorUpdatePreview(name: string): Promise<MirrorUpdateReport> {
    return this.replication.mirrorUpdatePreview(name);
  }

  /** One transfer of a relationship. */
  mirrorUpdate(name: string, onProgress?: ProgressCallback): Promise<MirrorUpdateReport> {
    return this.replication.mirrorUpdate(name, onProgress);
  }

  /** Takeover: breaks a relationship and makes its mirror writable. */
  mirrorBreak(nameOrVolume: string): Promise<{ relationship: string | null; destination: string; writable: boolean }> {
    return this.replication.mirrorBreak(nameOrVolume);
  }

  /** Re-establishes a relationship from the newest common snapshot (no full copy). */
  mirrorResync(name: string, options: MirrorResyncOptions = {}, onProgress?: ProgressCallback): Promise<MirrorResyncReport> {
    return this.replication.mirrorResync(name, options, onProgress);
  }

  /** A relationship's state and lag. */
  mirrorStatus(name: string): Promise<MirrorInfo> {
    return this.replication.mirrorStatus(name);
  }

  /** Every relationship. */
  mirrorList(): Promise<MirrorInfo[]> {
    return this.replication.mirrorList();
  }

  /** Deletes a relationship record (snapshots stay). */
  mirrorDelete(name: string): Promise<{ destination: string; released: boolean; reason: string | null; unheld: string[] }> {
    return this.replication.mirrorDelete(name);
  }

  /** Rebuilds an incremental mirror's newest state into a new volume. */
  mirrorReconstruct(name: string, volume: string, onProgress?: ProgressCallback): Promise<ReceiveReport> {
    return this.replication.mirrorReconstruct(name, volume, onProgress);
  }

  /** Checks an incremental mirror's base and every block of its sparse structure against its checksum. */
  mirrorVerify(name: string): Promise<{ name: string; blocks: number; unchecked: number; base: string }> {
    return this.replication.mirrorVerify(name);
  }

  /** Relationships whose schedule is due (the daemon runs them). */
  dueMirrors(): Promise<string[]> {
    return this.replication.dueMirrors(this.clock());
  }

  /**
   * Claims a relationship dueMirrors listed for this process's update, if it is still due and no other process took
   * it meanwhile: returns why it is skipped, or null (then run mirrorUpdate).
   */
  mirrorClaimDue(name: string): Promise<string | null> {
    return this.replication.claimDue(name, this.clock());
  }

  /** Closes every volume this service opened. */
  async closeAll(): Promise<void> {
    const all = [...this.open.values(), ...this.retired];
    this.open.clear();
    this.retired.clear();
    let first: unknown;
    for (const v of all) {
      try {
        await v.close();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  }

  // ---- the console (renderer views) --------------------------------------------------------------------------

  /** Volumes the console knows (given to it, created or opened in it, or scheduled), remembered in the state file. */
  async knownVolumes(): Promise<string[]> {
    const st = await this.state.load();
    return Object.entries(st.volumes)
      .filter(([, v]) => v.known === true || v.schedules.length > 0)
      .map(([k]) => k);
  }

  /**
   * The newest CP generation committed on `volume`'s disk: what the console compares to notice a change another
   * process (the CLI, a daemon) made. A volume held for writing here answers from memory (no one else can commit).
   */
  async committedGeneration(volume: string): Promise<number> {
    const rw = this.open.get(this.key({ volume }, false));
    if (rw) return rw.fsinfo.generation;
    const ro = this.open.get(this.key({ volume }, true)) ?? (await this.volume({ volume }, false));
    return ro.committedGeneration();
  }

  /** Takes the next job-history id (the console numbers a job's card with the id its history record will have). */
  async reserveJobId(): Promise<number> {
    return this.state.update((st) => st.nextJobId++);
  }

  /**
   * Records a console job that failed before any transfer of it began (refused: BUSY, DIVERGED, a bad argument),
   * under the id reserved for it, so the History shows it as the job's card did.
   */
  async recordRefusedJob(id: number, kind: TransferJobRecord['kind'], volume: string, target: string, startedAt: string, error: string): Promise<void> {
    await this.state.update((st) => {
      st.history.push({ id, kind, volume, target, startedAt, finishedAt: new Date(this.clock()).toISOString(), outcome: 'error', phases: [], bytes: 0, error });
    });
  }

  /** True while a transfer or a cancellable copy (put, get) runs here. */
  busy(): boolean {
    return this.running.size > 0;
  }

  /** Volumes open for writing here (each holds its writer lock until closed). */
  writableVolumes(): string[] {
    return [...this.open].filter(([k, v]) => k.endsWith('\u0000rw') && !v.readOnly).map(([k]) => k.slice(0, k.indexOf('\u0000')));
  }

  /** Remembers a volume for the console (or, with `known` false, forgets it; its schedules stay). */
  async rememberVolume(volume: string, known = true): Promise<void> {
    const key = resolvePath(volume);
    await this.state.update((st) => {
      const rec = (st.volumes[key] ??= { schedules: [] });
      rec.known = known;
    });
  }

  /** Writes one file into the volume from bytes (the console's upload); parents must exist. */
  async writeFile(volume: string, volPath: string, data: Buffer): Promise<CopySummary> {
    await (await this.volume({ volume }, true)).writeFile(volPath, data);
    return { files: 1, dirs: 0, symlinks: 0, bytes: data.length };
  }

  private readonly imageCache = new Map<string, { generation: number; plane: import('../planes/sparse-plane.js').SparsePlane; blocks: number }>();

  /**
   * Aggregated tiles of the planes for the grid: per row of `blocksPerRow` blocks, a density per plane (and for
   * the storage image `expression`, when given), computed word-parallel from the planes; never whole planes.
   */
  async planeTiles(volume: string, req: { firstVbn: number; blocksPerRow: number; rows: number; planes: number[]; expression?: string }): Promise<PlaneTiles> {
    return this.reading({ volume }, (v) =>
      v.exclusive(async () => {
        const map = await v.planeMap();
        const entries = v.snapshots.list();
        const t = await planeTiles(map, entries, req);
        let image: string | null = null;
        let imageBlocks: number | null = null;
        let imageError: string | null = null;
        // An expression that does not fit this volume (a name it lacks) leaves the image out, never the planes.
        const expression = req.expression;
        if (expression !== undefined) imageError = await (async () => {
          const key = `${resolvePath(volume)}\u0000${expression}`;
          let cached = this.imageCache.get(key);
          if (!cached || cached.generation !== v.fsinfo.generation || v.isDirty) {
            let expr: ReturnType<typeof parseImageExpr>;
            let bound: ReturnType<typeof bindNames>;
            try {
              expr = parseImageExpr(expression);
              bound = bindNames(expr, expression, entries, volume);
            } catch (e) {
              if (e instanceof SnapplaneError && !(e instanceof StaleViewError)) return e.message;
              throw e;
            }
            const evaluated = await evaluateBound(expr, bound, map);
            cached = { generation: v.fsinfo.generation, plane: evaluated.plane, blocks: evaluated.blocks };
            this.imageCache.clear(); // one image at a time: the composer's current one
            this.imageCache.set(key, cached);
          }
          const it = await imageTiles(cached.plane, map.blockCount, req);
          image = Buffer.from(it.densities.buffer, it.densities.byteOffset, it.densities.byteLength).toString('base64');
          imageBlocks = cached.blocks;
          return null;
        })();
        return {
          firstVbn: req.firstVbn,
          blocksPerRow: req.blocksPerRow,
          rows: req.rows,
          validRows: t.validRows,
          planes: req.planes,
          densities: Buffer.from(t.densities.buffer, t.densities.byteOffset, t.densities.byteLength).toString('base64'),
          image,
          imageBlocks,
          imageError,
          counts: t.counts,
        };
      }),
    );
  }

  /**
   * What the grid's hover shows for VBN `vbn` (or, with `count`, for the first used block of the range): RAID
   * member and stripe, the planes that hold it, and the file, folder or metadata tree that uses it.
   */
  async blockInfo(volume: string, vbn: number, count = 1): Promise<BlockInfo> {
    return this.reading({ volume }, async (v) => {
      if (!v.readOnly && v.isDirty) await v.sync(); // the owner search walks the committed state
      return v.exclusive(async () => {
        const map = await v.planeMap();
        if (vbn >= map.blockCount) throw new SnapplaneError('INVALID', `VBN ${vbn} is past the end of the volume (${map.blockCount} blocks)`, { volume, vbn });
        const entries = v.snapshots.list();
        const planes = [0, ...entries.map((e) => e.plane)];
        const range = await planesHolding(map, entries, planes, vbn, count);
        const target = range.firstUsed ?? vbn;
        const names = new Map<number, string>([[0, 'active'], ...entries.map((e): [number, string] => [e.plane, e.name])]);
        let member = 0;
        let stripe: number | null = null;
        let diskBlock: number | null = null;
        let memberPath = v.device.label;
        if (v.device instanceof Raid4Device) {
          const loc = v.device.locate(target);
          member = loc.member;
          stripe = loc.stripe;
          diskBlock = loc.diskBlock;
          memberPath = v.device.health().members[loc.member]?.path ?? memberPath;
        } else diskBlock = target;
        let owner: BlockInfo['owner'] = null;
        if (range.firstUsed !== null) {
          const here = count === 1 ? range.holding : (await planesHolding(map, entries, planes, target, 1)).holding;
          let state: OwnerState | null = null;
          if (here.includes(0)) {
            state = { name: 'active', inodeFile: v.fsinfo.inodeFile, inodeCount: v.fsinfo.inodeCount, blockMap: v.fsinfo.blockMap, snapshotTable: v.fsinfo.snapshotTable };
          } else {
            const newest = entries.filter((e) => here.includes(e.plane)).sort((a, b) => b.generation - a.generation)[0];
            if (newest) state = { name: newest.name, inodeFile: newest.inodeFile, inodeCount: newest.inodeCount, blockMap: newest.blockMap, snapshotTable: null };
          }
          const found = state ? await findBlockOwner(v, state, target) : null;
          // A block a plane holds that no tree of that state reaches: metadata of its consistency point (a snapshot
          // plane also holds the snapshot table of the CP that took it).
          if (state) owner = found ? { ...found, state: state.name } : { kind: 'metadata', path: null, inode: null, indirect: false, state: state.name };
        }
        return {
          vbn: target,
          rangeFirst: vbn,
          rangeCount: Math.min(count, map.blockCount - vbn),
          member,
          memberPath,
          stripe,
          diskBlock,
          planes: range.holding.map((p) => ({ plane: p, name: names.get(p) ?? `plane ${p}` })),
          owner,
        };
      });
    });
  }

  /**
   * Copies a file or folder of a snapshot (or `active`) into host folder `folder` as `name` (default: its own
   * name), never writing outside `folder` and never over anything already there.
   */
  async restoreToHost(volume: string, snapshot: string, volPath: string, folder: string, name?: string): Promise<CopySummary & { target: string }> {
    const v = await this.volume(snapshot === 'active' ? { volume } : { volume, snapshot }, false);
    return restoreIntoFolder(v, volPath, folder, name);
  }

  /** What reverting to `snapshot` would lose: changes since it, and the blocks only the active file system holds. */
  async revertPreview(volume: string, snapshot: string): Promise<RevertPreview> {
    const diff = await this.snapDiff(volume, snapshot, 'active');
    const planes = await this.planes(volume);
    const snaps = await this.snapList({ volume });
    const me = snaps.find((s) => s.name === snapshot);
    if (!me) throw new SnapplaneError('NOT_FOUND', `no snapshot '${snapshot}' on volume '${volume}'`, { volume, snapshot });
    const lost = planes.find((p) => p.plane === 0)?.uniqueBlocks ?? 0;
    return {
      snapshot,
      added: diff.added,
      changed: diff.changed,
      removed: diff.removed,
      lostBlocks: lost,
      lostBytes: lost * BLOCK_SIZE,
      laterSnapshots: snaps.filter((s) => s.generation > me.generation).map((s) => s.name),
    };
  }

  /** Saved storage-image expressions of a volume. */
  async imageList(volume: string): Promise<SavedImage[]> {
    const st = await this.state.load();
    return [...(st.volumes[resolvePath(volume)]?.images ?? [])];
  }

  /** Saves (or replaces) a named storage-image expression after checking that it evaluates. */
  async imageSave(volume: string, name: string, expression: string): Promise<SavedImage[]> {
    const report = await this.imageEval(volume, expression);
    const key = resolvePath(volume);
    await this.state.update((st) => {
      const rec = (st.volumes[key] ??= { schedules: [] });
      rec.images = [...(rec.images ?? []).filter((x) => x.name !== name), { name, expression: report.expression, createdAt: new Date(this.clock()).toISOString() }];
    });
    return this.imageList(volume);
  }

  /** Deletes a saved expression. */
  async imageDelete(volume: string, name: string): Promise<SavedImage[]> {
    const key = resolvePath(volume);
    const found = await this.state.update((st) => {
      const rec = st.volumes[key];
      const before = rec?.images?.length ?? 0;
      if (rec?.images) rec.images = rec.images.filter((x) => x.name !== name);
      return before !== (rec?.images?.length ?? 0);
    });
    if (!found) throw new SnapplaneError('NOT_FOUND', `volume '${volume}' has no saved image '${name}'`, { volume });
    return this.imageList(volume);
  }
}

