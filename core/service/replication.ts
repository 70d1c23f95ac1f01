/**
 * Volume replication and mirroring (SPEC §2, the seed's "Volume Mirroring" and "Volume Replication"): master
 * snapshots and their holds, `replicate` to a local or remote destination, and persisted mirror relationships
 * (full mirrors, incremental mirrors on a slow + fast medium, replicas) with update, break and resync.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { SnapplaneError, isSnapplaneError } from '../common/errors.js';
import { spareBuffers } from '../common/spare-buffers.js';
import { requireParentFolder } from '../common/parent-folder.js';
import { sameFile } from '../common/same-file.js';
import { BLOCK_SIZE } from '../common/units.js';
import { SnapshotFlag, type SnapshotEntry } from '../fs/format.js';
import type { Volume } from '../fs/volume.js';
import { formatImageExpr, parseImageExpr, quoteName } from '../image/expression.js';
import { blocksWrittenSince } from '../image/written-since.js';
import { evaluateImage } from '../image/evaluate.js';
import { READ_RING_BYTES, READ_RING_SLOTS, planStream, streamSize, writeStream, type StreamPlan } from '../stream/send.js';
import { StreamReader } from '../stream/reader.js';
import { decodeResumeToken } from '../stream/receive.js';
import { sendToFile } from '../stream/transfer.js';
import { writeTapes } from '../stream/tape.js';
import { keyFileExposure, readKeyFile } from '../net/key-file.js';
import { RateLimit } from '../net/pump.js';
import { connectTo, listen, type Endpoint } from '../net/endpoint.js';
import { checkDestination, parseRemote, type Destination, type ReceiveRequest } from '../transfer/destination.js';
import { checkNewVolumePath, checkServedName } from './volume-names.js';
import { RemoteDestination } from '../transfer/remote-destination.js';
import { IncrementalMirror } from '../transfer/incremental-mirror.js';
import { endpointIdOf } from '../transfer/destination-identity.js';
import { forgetDestination, neededMasters, readDestinations, readMarker, recordDestination, takenOverMessage, writeMarker } from '../transfer/sidecars.js';
import { describeCadence, nextSlot, type Cadence } from '../jobs/cadence.js';
import { LocalDestination, isReceiving, refOf, sameRef, serveConnection, type EngineAccess } from './local-destination.js';
import { VolumeHold } from './volume-hold.js';
import { TransferProgressFile, readTransferProgress } from './transfer-progress.js';
import type { ConsoleState, StateStore, RelationshipRecord, TransferJobRecord } from './state-store.js';
import type { DestinationStatus, MasterInfo, MirrorInfo, MirrorKind, MirrorMarker, MirrorResyncOptions, MirrorResyncReport, MirrorSetReport, MirrorUpdateReport, ProgressEvent, ReceiveReport, ReplicateReport, SnapshotRef } from '../api/types.js';
import { processAlive } from '../common/process-alive.js';

type Progress = (p: ProgressEvent) => void;

/** The service internals replication runs on. */
export interface ReplicationHost extends EngineAccess {
  /**
   * True when a writer of `path` in this process may be in use by the caller's other work (one was open already in
   * a one-shot process): an update then keeps it and sends from it.
   */
  writerShared(path: string): boolean;
  /**
   * Commits and closes this process's writer of `path`, so that other processes may write to it; the console's
   * engine keeps it instead while other work of its own is under way.
   */
  releaseWriter(path: string): Promise<void>;
  /** A read-only view of `path`'s committed state of its own (not shared in the process); the caller closes it. */
  openDetachedView(path: string): Promise<Volume>;
  job<T>(kind: TransferJobRecord['kind'], volume: string, target: string, expression: string | undefined, onProgress: Progress | undefined, fn: (signal: { cancelled: boolean }, progress: Progress) => Promise<T>, bytesOf: (r: T) => number): Promise<T>;
  clock(): number;
  readonly state: StateStore;
}

export interface TransferOptions {
  keyFile?: string;
  /** Bytes per second. */
  limit?: number;
}

function canonical(expression: string): string {
  return formatImageExpr(parseImageExpr(expression));
}

function byGeneration(a: SnapshotEntry, b: SnapshotEntry): number {
  return a.generation - b.generation;
}

/** What a replication sends, given the source's masters and the destination's update request. */
export interface ReplicationChoice {
  kind: 'none' | 'full' | 'incremental';
  from: SnapshotEntry | null;
  to: SnapshotEntry;
  expression: string;
  reason: string;
}

/** How long trying a key waits for its endpoint (connect and handshake). */
const KEY_CHECK_MS = 5_000;
/** Read-ring buffers kept between sends to remote destinations: enough for two at once. */
const spareRing = spareBuffers(READ_RING_BYTES, 2 * READ_RING_SLOTS);

/**
 * Tries a remote destination's key now (the handshake only, no request): a key its endpoint refuses fails here, where
 * it is given (`refused` says what did not happen), rather than at every scheduled update. An endpoint that does not
 * answer is no error (down for now, or not set up yet): the answer says the key was not checked, and why. Null for
 * a local destination.
 */
async function tryKey(destination: string, keyFile: string, refused: string): Promise<{ checked: boolean; message: string } | null> {
  const remote = parseRemote(destination);
  if (!remote) return null;
  const key = await readKeyFile(keyFile);
  const where = destination.slice(0, destination.lastIndexOf('/'));
  try {
    (await connectTo(remote.host, remote.port, key, KEY_CHECK_MS)).destroy();
    return { checked: true, message: `the endpoint at ${where} took the key` };
  } catch (e) {
    if (isSnapplaneError(e, 'AUTH') && !e.message.endsWith('timed out')) throw new SnapplaneError('AUTH', `${e.message}; ${refused}`, { path: keyFile, cause: e });
    return { checked: false, message: `the key was not checked: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** Where a send reads its stream from, and its plan (given the point an interrupted receive of it stopped at). */
interface StreamSource {
  volume: Volume;
  plan(resume: { streamId: string; fromVbn: number } | undefined): Promise<StreamPlan>;
}

/** The point an interrupted receive of the same image stopped at, from the destination's status (none: from the start). */
function resumeOf(status: DestinationStatus, expression: string): { streamId: string; fromVbn: number } | undefined {
  if (!status.resume || status.resume.expression !== canonical(expression)) return undefined;
  try {
    return decodeResumeToken(status.resume.token);
  } catch {
    return undefined;
  }
}

/**
 * The seed's rule: the incremental from the destination's newest master to the source's newest master; a full copy
 * when the destination has no master, or its newest is not on the source (e.g. older than the source's oldest).
 */
export function chooseReplication(masters: SnapshotEntry[], status: DestinationStatus, source: string, sourceUuid: string): ReplicationChoice {
  if (masters.length === 0) throw new SnapplaneError('NOT_FOUND', `'${source}' has no master snapshot to replicate; mark one with \`snapplane master mark ${source} <snap>\``, { volume: source });
  const newest = masters[masters.length - 1];
  const have = status.newestMaster;
  if (have && sameRef(have, refOf(newest))) return { kind: 'none', from: newest, to: newest, expression: quoteName(newest.name), reason: `the destination already has the newest master '${newest.name}'` };
  const common = have ? masters.find((m) => sameRef(refOf(m), have)) : undefined;
  if (common && have) {
    if (status.uuid !== sourceUuid) throw new SnapplaneError('INVALID', `'${status.volume}' is a different volume (${status.uuid}), not a copy of '${source}' (${sourceUuid})`, { volume: source });
    return { kind: 'incremental', from: common, to: newest, expression: `${quoteName(newest.name)} - ${quoteName(common.name)}`, reason: `the destination's newest master is '${have.name}'` };
  }
  const reason = !have
    ? 'the destination has no master snapshot'
    : masters[0].generation > have.generation
      ? `the source's oldest master '${masters[0].name}' is newer than the destination's newest '${have.name}'`
      : `the destination's newest master '${have.name}' is not on the source`;
  if (status.exists && !status.empty) {
    throw new SnapplaneError('EXISTS', `'${status.volume}' needs a full copy (${reason}), but it is not empty; a full copy lands only on a new, empty volume (give a new destination name)`, { volume: status.volume });
  }
  return { kind: 'full', from: null, to: newest, expression: quoteName(newest.name), reason };
}

/** Snapshots a stream carries at most (STREAM.md §2.3). */
const MAX_CARRIED = 255;

/** A transfer snapshot of some mirror relationship (`mirror.<name>.<n>`): each relationship keeps its own. */
function isTransferSnapshot(e: SnapshotEntry): boolean {
  return /^mirror\..+\.\d+$/.test(e.name);
}

/** A transfer snapshot of relationship `rel` (not of one whose name merely starts like it). */
function ownSnapshot(rel: RelationshipRecord, name: string): boolean {
  const prefix = `mirror.${rel.name}.`;
  return name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length));
}

/**
 * The source's snapshots a full mirror's update brings along with its top: the regular ones taken after the base
 * (all older ones for the first transfer) that the mirror does not have yet, except other relationships'
 * transfer snapshots. Shadows stay behind: they would pin blocks on the mirror that the source reuses.
 */
export function carriedAlong(entries: SnapshotEntry[], base: SnapshotEntry | null, top: SnapshotEntry, status: DestinationStatus): SnapshotEntry[] {
  return entries
    .filter((e) => !(e.flags & SnapshotFlag.shadow) && !isTransferSnapshot(e) && e.generation < top.generation && (!base || e.generation > base.generation))
    .filter((e) => !status.snapshots.some((s) => sameRef(s, refOf(e))))
    .sort(byGeneration)
    .slice(-(MAX_CARRIED - 1));
}

/** What `mirror set` changes; a field left out stays as it is. */
export interface MirrorSettings {
  /** The update schedule; null: on demand only. */
  schedule?: Cadence | null;
  /** Bytes per second into the destination; null: no limit. */
  limit?: number | null;
  /** A remote destination's pre-shared key file. */
  keyFile?: string;
}

/** One report for an update that finished an interrupted one's transfer (`first`) and then sent what is newer. */
function finishedThen(first: MirrorUpdateReport, then: MirrorUpdateReport): MirrorUpdateReport {
  const both = (a?: string[], b?: string[]): string[] | undefined => (a || b ? [...(a ?? []), ...(b ?? [])] : undefined);
  return {
    ...then,
    transfer: first.transfer,
    from: first.from,
    blocks: first.blocks + then.blocks,
    bytes: first.bytes + then.bytes,
    resumedFromVbn: first.resumedFromVbn,
    finished: first.to,
    carried: both(first.carried, then.carried),
    dropped: both(first.dropped, then.dropped),
    ...(first.replaced ? { replaced: first.replaced } : {}),
    ...(first.downstream ? { downstream: first.downstream } : {}),
  };
}

export class Replication {
  /** Relationships this process is updating or resyncing now, with when it started (one at a time each). */
  private readonly busy = new Map<string, string>();

  constructor(private readonly host: ReplicationHost) {}

  /**
   * Runs an update or resync of relationship `name` unless this process runs one already: the record's pid says
   * so for other processes, not for two jobs of one console (the second sent the same snapshot again and failed
   * with "this stream was received before", then marked the relationship idle while the first still ran).
   */
  private async oneAtATime<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const since = this.busy.get(name);
    if (since) throw new SnapplaneError('BUSY', `relationship '${name}' is being updated by this process (since ${since}); wait for that to finish`);
    this.busy.set(name, new Date(this.host.clock()).toISOString());
    try {
      return await fn();
    } finally {
      this.busy.delete(name);
    }
  }

  /** Whether an update or resync of `rel` runs now: in this process (its busy set), or in another live one (the record's pid). */
  private running(rel: RelationshipRecord): boolean {
    const t = rel.transferring;
    if (!t) return false;
    return t.pid === process.pid ? this.busy.has(rel.name) : processAlive(t.pid);
  }

  /** Refuses (BUSY) to `verb` a relationship while one of its transfers runs, naming where and since when. */
  private refuseWhileRunning(rel: RelationshipRecord, verb: string): void {
    if (!this.running(rel)) return;
    const where = rel.transferring!.pid === process.pid ? 'this process' : `process ${rel.transferring!.pid}`;
    throw new SnapplaneError('BUSY', `relationship '${rel.name}' is transferring (in ${where}, since ${rel.transferring!.since}): ${verb} it once that transfer has ended or been stopped`);
  }

  /**
   * Marks relationship `name` as transferring in this process, checked and set under the state lock (`check` may
   * refuse): a break, delete or another process's update between a plain load and save would be lost, or overlap.
   * This process's own mark (a resync going on to its update, or one a crash left behind) is taken as it is.
   */
  private async claim(name: string, check?: (rel: RelationshipRecord) => void): Promise<RelationshipRecord> {
    return this.host.state.update((s) => {
      const rel = s.relationships?.[name];
      if (!rel) throw notFound(name, s);
      const t = rel.transferring;
      if (t && t.pid !== process.pid && processAlive(t.pid)) throw new SnapplaneError('BUSY', `relationship '${name}' is transferring in process ${t.pid} since ${t.since}`);
      check?.(rel);
      rel.transferring = { pid: process.pid, since: new Date(this.host.clock()).toISOString() };
      return structuredClone(rel);
    });
  }

  /** Clears this process's transferring mark of a relationship (a resync that failed before its update). */
  private async unclaim(name: string): Promise<void> {
    await this.host.state.update((s) => {
      const rel = s.relationships?.[name];
      if (rel?.transferring?.pid === process.pid) rel.transferring = null;
    });
  }

  // ---- master snapshots and their holds ------------------------------------------------------------------

  /** Master snapshots of a volume, oldest first, with the destinations that still need each. */
  async masterList(volume: string): Promise<MasterInfo[]> {
    const v = await this.host.openVolume(volume, false);
    const masters = v.snapshots.list().filter((e) => e.flags & SnapshotFlag.master).sort(byGeneration);
    const needed = neededMasters(masters, await readDestinations(volume));
    return masters.map((m, i) => ({
      name: m.name,
      createdAt: new Date(m.createdAtMs).toISOString(),
      generation: m.generation,
      shadow: (m.flags & SnapshotFlag.shadow) !== 0,
      pointer: i === masters.length - 1,
      neededBy: needed.get(m.name) ?? [],
    }));
  }

  /** Marks or unmarks a master snapshot; a master some destination still needs cannot be unmarked. */
  async masterMark(volume: string, snapshot: string, mark: boolean): Promise<MasterInfo[]> {
    const v = await this.host.openVolume(volume, true);
    const entry = v.snapshots.byName(snapshot, volume);
    if (!mark && !(entry.flags & SnapshotFlag.master)) throw new SnapplaneError('INVALID', `snapshot '${snapshot}' of '${volume}' is not a master snapshot; nothing to unmark (\`snapplane master list ${volume}\` shows the masters)`, { volume, snapshot });
    if (!mark) await this.checkNotNeeded(volume, [entry], 'unmark');
    await v.setSnapshotFlags(snapshot, { master: mark });
    return this.masterList(volume);
  }

  /**
   * Forgets a destination of `volume` that will not come back (its host is gone, or the copy was deleted): the
   * masters only it still needed may go. Returns the masters it no longer holds.
   */
  async masterRelease(volume: string, destination: string): Promise<{ destination: string; released: string[] }> {
    const known = await readDestinations(volume);
    const label = known.some((d) => d.destination === destination) || parseRemote(destination) ? destination : resolvePath(destination);
    const v = await this.host.openVolume(volume, false);
    const masters = v.snapshots.list().filter((e) => e.flags & SnapshotFlag.master);
    const before = neededMasters(masters, known);
    if (!(await forgetDestination(volume, label))) {
      throw new SnapplaneError('NOT_FOUND', `'${volume}' has no destination '${destination}' (known: ${known.map((d) => d.destination).join(', ') || 'none'})`, { volume });
    }
    const after = neededMasters(masters, await readDestinations(volume));
    return { destination: label, released: [...before.keys()].filter((m) => !after.has(m)) };
  }

  /** Refuses (HELD) when a destination still needs one of these master snapshots. */
  async checkNotNeeded(volume: string, entries: SnapshotEntry[], verb: string): Promise<void> {
    const masters = entries.filter((e) => e.flags & SnapshotFlag.master);
    if (masters.length === 0) return;
    const v = await this.host.openVolume(volume, false);
    const all = v.snapshots.list().filter((e) => e.flags & SnapshotFlag.master);
    const needed = neededMasters(all, await readDestinations(volume));
    for (const m of masters) {
      const by = needed.get(m.name);
      if (!by) continue;
      const them = by.length === 1 ? 'it' : 'them';
      // Replicating moves a destination past `m` only when there is a newer master to move to.
      const newer = all.some((e) => e.generation > m.generation);
      const release = `\`snapplane master release ${volume} <destination>\` for one that is gone`;
      const way = newer ? `replicate to ${them} first, or ${release}` : `mark a newer master snapshot and replicate to ${them} first, or ${release}`;
      throw new SnapplaneError('HELD', `cannot ${verb} master snapshot '${m.name}': ${by.join(', ')} ${by.length === 1 ? 'has' : 'have'} not moved past it yet (${way})`, { volume, snapshot: m.name });
    }
  }

  /** The destination's state, the source's masters and what a replication to it sends (none, incremental or full). */
  private async replicationChoice(source: string, dest: string, d: Destination): Promise<{ status: DestinationStatus; v: Volume; masters: SnapshotEntry[]; choice: ReplicationChoice; report: ReplicateReport }> {
    const status = await d.status();
    // Off-line is not refused: it is an update from a shadow master that is running (its receive refuses a second
    // one: BUSY or LOCKED) or was interrupted, which this replication then finishes.
    if (status.mirrorOf && !status.mirrorOf.brokenAt) throw new SnapplaneError('INVALID', `'${dest}' is the mirror of '${status.mirrorOf.source}' in relationship '${status.mirrorOf.relationship}'; it is updated by \`snapplane mirror update ${status.mirrorOf.relationship}\``, { volume: dest });
    const v = await this.host.openVolume(source, false);
    const masters = v.snapshots.list().filter((e) => e.flags & SnapshotFlag.master).sort(byGeneration);
    const choice = chooseReplication(masters, status, source, v.fsinfo.uuid);
    const report: ReplicateReport = { source, destination: d.label, kind: choice.kind, from: choice.from?.name ?? null, to: choice.to.name, reason: choice.reason, resumedFromVbn: null, blocks: 0, bytes: 0, wireBytes: 0, seconds: 0 };
    // A shadow master's blocks may be reused under the destination's copy of it: readers are kept out meanwhile.
    if (choice.kind !== 'none' && choice.from && choice.from.flags & SnapshotFlag.shadow) report.offline = `being updated from shadow master '${choice.from.name}'`;
    return { status, v, masters, choice, report };
  }

  /** What `replicate` would send now: the same choice and plan (a resume included), no data read, nothing recorded. */
  private async replicatePreview(source: string, dest: string, opts: TransferOptions): Promise<ReplicateReport> {
    const t0 = performance.now();
    const d = await this.destination(dest, opts, { cancelled: false });
    try {
      const { status, v, masters, choice, report } = await this.replicationChoice(source, dest, d);
      report.dryRun = true;
      if (choice.kind !== 'none') {
        const plan = await planStream(v, choice.expression, { resume: resumeOf(status, choice.expression), selection: 'subtraction', now: () => this.host.clock() });
        report.resumedFromVbn = plan.header.resumeFromVbn;
        report.blocks = plan.sendBlocks;
        report.bytes = plan.sendBlocks * BLOCK_SIZE;
        report.streamBytes = streamSize(plan).bytes;
        // The receive deletes the destination's masters that are no longer masters here (LocalDestination's
        // dropObsolete), unless held there or needed by its own destinations, which only it can tell.
        const gone = status.exists ? status.snapshots.filter((x) => x.master && !masters.some((m) => sameRef(refOf(m), x))).map((x) => x.name) : [];
        if (gone.length > 0) report.dropped = gone;
      }
      report.seconds = (performance.now() - t0) / 1000;
      return report;
    } finally {
      await d.close().catch(() => undefined);
    }
  }

  /**
   * Refuses to delete a snapshot a mirror relationship of this host holds on its source (its last common snapshot,
   * or the one an interrupted update will finish) while the hold is on, saying whose it is and what deleting it
   * costs. Releasing the hold first (as `zfs release` before `zfs destroy`) lets it go: the admin's choice.
   */
  async checkNotRelationships(volume: string, snapshot: string): Promise<void> {
    const st = await this.host.state.load();
    const path = resolvePath(volume);
    const rel = Object.values(st.relationships ?? {}).find((r) => r.source === path && (r.lastCommon?.name === snapshot || r.pending === snapshot || r.resyncHold === snapshot));
    if (!rel) return;
    const role = rel.pending === snapshot ? 'the snapshot its interrupted update will finish' : 'its last snapshot in common with the mirror';
    throw new SnapplaneError('HELD', `cannot delete snapshot '${snapshot}': relationship '${rel.name}' holds it (${role}); without it the next update needs a full copy (\`snapplane mirror resync ${rel.name} --full\`). To delete it anyway, \`snapplane snap release\` it first; if the relationship is no longer wanted, \`snapplane mirror delete ${rel.name}\``, { volume, snapshot });
  }

  /** Master snapshots of `volume` that retention must keep, with the reason. */
  async neededMasterReasons(volume: string): Promise<Map<string, string>> {
    const v = await this.host.openVolume(volume, false);
    const masters = v.snapshots.list().filter((e) => e.flags & SnapshotFlag.master);
    const out = new Map<string, string>();
    for (const [name, by] of neededMasters(masters, await readDestinations(volume))) out.set(name, `master snapshot needed by ${by.join(', ')}`);
    return out;
  }

  // ---- destinations ----------------------------------------------------------------------------------------

  private async destination(label: string, opts: TransferOptions, signal: { cancelled: boolean }): Promise<Destination> {
    const remote = parseRemote(label);
    if (!remote) return new LocalDestination(this.host, resolvePath(label), signal, opts.limit ? new RateLimit(opts.limit) : null);
    if (!opts.keyFile) throw new SnapplaneError('INVALID', `'${label}' is a remote destination: give its pre-shared key file (--key-file)`);
    const key = await readKeyFile(opts.keyFile);
    return RemoteDestination.connect(remote.host, remote.port, remote.name, key, opts.limit ? new RateLimit(opts.limit) : null);
  }

  /**
   * Plans and sends one stream to a destination, resuming an interrupted receive of the same image. A resume the
   * destination refuses (it changed since) is retried once from the start.
   */
  private async sendTo(source: StreamSource, connect: () => Promise<Destination>, first: Destination, status: DestinationStatus, expression: string, request: ReceiveRequest, signal: { cancelled: boolean }, progress: Progress): Promise<{ report: ReceiveReport; plan: StreamPlan; destination: Destination }> {
    let d = first;
    let resume = resumeOf(status, expression);
    for (;;) {
      const plan = await source.plan(resume);
      // A remote destination copies each buffer into its frames before asking for the next, and is done with the
      // stream once its receive settles: the read ring can be lent from the spares kept between sends.
      const ring = d.remote ? Array.from({ length: READ_RING_SLOTS }, () => spareRing.take()) : null;
      const stream = writeStream(source.volume, plan, undefined, signal, ring ?? true);
      try {
        const report = await d.receive(stream, request, (p) => progress({ ...p, phase: 'transfer' }));
        return { report, plan, destination: d };
      } catch (e) {
        if (!resume || !(e instanceof SnapplaneError) || e.code !== 'INVALID') throw e;
        resume = undefined;
        await d.close().catch(() => undefined);
        d = await connect();
      } finally {
        for (const b of ring ?? []) spareRing.give(b);
      }
    }
  }

  // ---- replicate --------------------------------------------------------------------------------------------

  /**
   * Brings a destination up to the source's newest master snapshot (incremental, or full when none is in common).
   * With `dryRun`, says what that would send (asking the destination for its state, as a run does) and sends nothing.
   */
  async replicate(source: string, dest: string, opts: TransferOptions & { raid?: number; dryRun?: boolean } = {}, onProgress?: Progress): Promise<ReplicateReport> {
    // Before anything: a volume would otherwise record itself as its own destination, holding its masters for ever.
    if (!parseRemote(dest) && (await sameFile(source, dest))) throw new SnapplaneError('INVALID', 'source and destination are the same volume', { volume: source });
    if (opts.dryRun) return this.replicatePreview(source, dest, opts);
    // The history is read from anywhere: a local destination is recorded by its full path, as the source is.
    return this.host.job('replicate', source, parseRemote(dest) ? dest : resolvePath(dest), undefined, onProgress, async (signal, progress) => {
      const t0 = performance.now();
      const connect = (): Promise<Destination> => this.destination(dest, opts, signal);
      let d = await connect();
      try {
        const { status, v, masters, choice, report } = await this.replicationChoice(source, dest, d);
        if (choice.kind !== 'none' && choice.from) {
          // Known before the transfer: if this process dies after the destination commits but before it hears so,
          // the base stays held (longer than needed, never shorter).
          await recordDestination(source, d.label, refOf(choice.from), new Date(this.host.clock()), status.id ?? undefined);
        }
        if (choice.kind !== 'none') {
          const source: StreamSource = { volume: v, plan: (resume) => planStream(v, choice.expression, { resume, selection: 'subtraction', now: () => this.host.clock() }) };
          const sent = await this.sendTo(source, connect, d, status, choice.expression, { raid: opts.raid, offline: report.offline, sourceMasters: masters.map(refOf) }, signal, progress);
          d = sent.destination;
          report.resumedFromVbn = sent.report.resumedFromVbn;
          report.blocks = sent.report.blocks;
          report.bytes = sent.report.bytes;
          if (sent.report.dropped?.length) report.dropped = sent.report.dropped;
        }
        await recordDestination(source, d.label, refOf(choice.to), new Date(this.host.clock()), status.id ?? undefined);
        report.wireBytes = d.wireBytes();
        report.seconds = (performance.now() - t0) / 1000;
        return report;
      } finally {
        await d.close().catch(() => undefined);
      }
    }, (r) => r.bytes);
  }

  // ---- serve ------------------------------------------------------------------------------------------------

  /** Runs a replication endpoint: volumes live under `root`; every connection must prove the pre-shared key. */
  async serve(opts: { host?: string; port: number; root: string; keyFile: string; log?: (line: string) => void; holdMs?: number }): Promise<Endpoint> {
    const key = await readKeyFile(opts.keyFile);
    const exposed = await keyFileExposure(opts.keyFile);
    if (exposed) opts.log?.(`warning: ${exposed}`);
    const root = resolvePath(opts.root);
    const kind = await stat(root).then((st) => (st.isDirectory() ? 'dir' : 'file'), () => 'missing');
    if (kind !== 'dir') throw new SnapplaneError('NOT_FOUND', `--root '${opts.root}' ${kind === 'missing' ? 'does not exist' : 'is not a folder'}; create it first`, { path: root });
    // A mirror taken over on this host (`mirror break <volume>`) is let go at once, for the writer that took it.
    const hold = new VolumeHold(this.host, isReceiving, opts.holdMs, async (path) => (await readMarker(path).catch(() => null))?.brokenAt !== undefined);
    const { id: endpointId, problem } = await endpointIdOf(root);
    if (problem) opts.log?.(`warning: ${problem}`);
    const endpoint = await listen(opts.host ?? '127.0.0.1', opts.port, key, (conn) => {
      opts.log?.(`connection from ${conn.peer}`);
      return serveConnection(hold, root, conn, opts.log, endpointId);
    }, (peer, e) => opts.log?.(`refused ${peer}: ${e.message}`));
    return {
      ...endpoint,
      close: async () => {
        await endpoint.close();
        await hold.closeAll();
      },
    };
  }

  // ---- relationships ------------------------------------------------------------------------------------------

  private async load(name: string): Promise<RelationshipRecord> {
    const st = await this.host.state.load();
    const rel = st.relationships?.[name];
    if (!rel) throw notFound(name, st);
    return rel;
  }

  /**
   * Writes a relationship back; one deleted meanwhile (`mirror delete` while it transferred) stays deleted. Its
   * settings are `mirror set`'s alone: a transfer that read the record before a `mirror set` keeps the new ones.
   */
  private async save(rel: RelationshipRecord, create = false): Promise<void> {
    await this.host.state.update((s) => {
      s.relationships ??= {};
      const stored = s.relationships[rel.name];
      if (stored && !create) Object.assign(rel, settingsOf(stored));
      if (create || stored) s.relationships[rel.name] = rel;
    });
  }

  /**
   * Changes a relationship's schedule (null: on demand), bandwidth limit (null: none) or a remote destination's key
   * file, and nothing else: its state, snapshots and holds stay, so no full copy follows (deleting and creating it
   * again would need one). Allowed while it transfers: that transfer keeps the settings it started with.
   */
  async mirrorSet(name: string, settings: MirrorSettings): Promise<MirrorSetReport> {
    const rel = await this.load(name);
    if (settings.schedule === undefined && settings.limit === undefined && settings.keyFile === undefined) {
      throw new SnapplaneError('INVALID', `nothing to change for relationship '${name}': give a schedule (--every, --at, --on-demand), --limit or --no-limit, or --key-file`);
    }
    if (settings.limit != null && rel.kind === 'incremental') throw new SnapplaneError('INVALID', '--limit paces transfers into a volume (local or remote); an incremental mirror writes local files and is not throttled');
    if (settings.limit != null && !(Number.isSafeInteger(settings.limit) && settings.limit > 0)) throw new SnapplaneError('INVALID', `bad limit ${settings.limit}: a positive number of bytes per second`);
    let keyFile: string | undefined;
    let keyCheck: MirrorSetReport['keyCheck'];
    if (settings.keyFile !== undefined) {
      await checkDestination(rel.destination, settings.keyFile);
      keyFile = resolvePath(settings.keyFile);
      // Read now, as at create: a key file that is missing or malformed would otherwise fail every update.
      await readKeyFile(keyFile);
      keyCheck = (await tryKey(rel.destination, keyFile, 'nothing was changed')) ?? undefined;
    }
    const changed: MirrorSetReport['changed'] = [];
    const saved = await this.host.state.update((s) => {
      const r = s.relationships?.[name];
      if (!r) throw notFound(name, s);
      const before = { schedule: describeSchedule(r), limit: r.limit, keyFile: r.keyFile };
      if (settings.schedule !== undefined) {
        r.everyMs = settings.schedule?.kind === 'every' ? settings.schedule.everyMs : null;
        r.at = settings.schedule?.kind === 'at' ? settings.schedule : null;
      }
      if (settings.limit !== undefined) r.limit = settings.limit;
      if (keyFile !== undefined) r.keyFile = keyFile;
      const after = { schedule: describeSchedule(r), limit: r.limit, keyFile: r.keyFile };
      for (const k of ['schedule', 'limit', 'keyFile'] as const) if (before[k] !== after[k]) changed.push({ setting: k, from: before[k], to: after[k] });
      return structuredClone(r);
    });
    return { mirror: await this.info(saved), changed, ...(keyCheck ? { keyCheck } : {}) };
  }

  /** Records a relationship (the first `mirror update` initializes it). */
  async mirrorCreate(name: string, source: string, destination: string, opts: TransferOptions & { kind: MirrorKind; schedule?: Cadence; slow?: string }): Promise<MirrorInfo> {
    if (!/^[A-Za-z][A-Za-z0-9_-]{0,39}$/.test(name)) throw new SnapplaneError('INVALID', `bad relationship name '${name}': a letter, then letters, digits, '_' or '-' (at most 40)`);
    const st = await this.host.state.load();
    if (st.relationships?.[name]) throw new SnapplaneError('EXISTS', `relationship '${name}' already exists`);
    await checkDestination(destination, opts.keyFile);
    const remote = parseRemote(destination);
    // A name the destination would refuse (or a new local volume it could not create) fails now, not at every update.
    if (remote) checkServedName(remote.name);
    else if (opts.kind !== 'incremental' && !(await stat(destination).then(() => true, () => false))) await checkNewVolumePath(resolvePath(destination));
    if (opts.kind === 'incremental') {
      if (!opts.slow || !/^(file|tape):.+/.test(opts.slow)) throw new SnapplaneError('INVALID', 'an incremental mirror needs --slow file:<path> or --slow tape:<folder> for its base image (the destination is the fast folder)');
      if (remote) throw new SnapplaneError('INVALID', 'an incremental mirror keeps its fast half in a local folder');
      // Refused rather than kept and ignored: its base and deltas are written to local files, which --limit does not pace.
      if (opts.limit) throw new SnapplaneError('INVALID', '--limit paces transfers into a volume (local or remote); an incremental mirror writes local files and is not throttled');
      // Where its halves go must exist now, not fail at the first update.
      await requireParentFolder(resolvePath(destination), 'fast folder');
      await requireParentFolder(resolvePath(opts.slow.replace(/^(file|tape):/, '')), opts.slow.startsWith('file:') ? 'base image' : 'tape folder');
    } else if (opts.slow) throw new SnapplaneError('INVALID', '--slow is for incremental mirrors');
    if (remote && !opts.keyFile) throw new SnapplaneError('INVALID', `'${destination}' is remote: give its pre-shared key file (--key-file)`);
    // Read now: a key file that is missing or malformed would otherwise fail every scheduled update instead.
    if (opts.keyFile) await readKeyFile(resolvePath(opts.keyFile));
    // Likewise a key the endpoint refuses (one that does not answer yet is no error: it may be set up later).
    if (remote && opts.keyFile) await tryKey(destination, resolvePath(opts.keyFile), 'the relationship was not created');
    const src = resolvePath(source);
    // The source must open (a clear NOT_FOUND or BAD_FORMAT now, not at the first update).
    await this.host.openVolume(src, false);
    if (opts.kind !== 'replica') await refuseMirrorSource(src, opts.kind);
    if (!remote && (await sameFile(destination, src))) throw new SnapplaneError('INVALID', 'source and destination are the same volume', { volume: source });
    const slow = opts.slow ? opts.slow.replace(/^(file|tape):(.*)$/, (_m, k: string, p: string) => `${k}:${resolvePath(p)}`) : null;
    // Two relationships into one volume would fight over it (the second fails at every update): refused now.
    const target = remote ? destination : resolvePath(destination);
    const taken = Object.values(st.relationships ?? {}).find((r) => r.destination === target);
    if (taken) throw new SnapplaneError('EXISTS', `'${destination}' is already the destination of relationship '${taken.name}' (from ${taken.source}); give this one its own destination, or \`snapplane mirror delete ${taken.name}\` first if that one is done with`, { volume: destination });
    const rel: RelationshipRecord = {
      name,
      kind: opts.kind,
      source: src,
      destination: target,
      slow,
      keyFile: opts.keyFile ? resolvePath(opts.keyFile) : null,
      everyMs: opts.schedule?.kind === 'every' ? opts.schedule.everyMs : null,
      at: opts.schedule?.kind === 'at' ? opts.schedule : null,
      limit: opts.limit ?? null,
      broken: false,
      lastCommon: null,
      pending: null,
      seq: 0,
      transferring: null,
      lastTransferAt: null,
      lastTransferBytes: 0,
      lastError: null,
      lastSelection: null,
      createdAt: new Date(this.host.clock()).toISOString(),
    };
    await this.save(rel, true);
    return this.info(rel);
  }

  /** Every relationship with its state. */
  async mirrorList(): Promise<MirrorInfo[]> {
    const st = await this.host.state.load();
    const out: MirrorInfo[] = [];
    for (const rel of Object.values(st.relationships ?? {})) out.push(await this.info(rel));
    return out;
  }

  /** One relationship's state, lag included. */
  async mirrorStatus(name: string): Promise<MirrorInfo> {
    return this.info(await this.load(name));
  }

  /**
   * Deletes a relationship record (its snapshots stay). Its mirror is made writable where it can be reached (a
   * marker naming another relationship is left alone); `released` says whether it was, and if not, why. The holds
   * the relationship put on its source's snapshots go (`unheld`): nothing would ever release them after this.
   */
  async mirrorDelete(name: string): Promise<{ destination: string; released: boolean; reason: string | null; unheld: string[] }> {
    const rel = await this.load(name);
    // Its transfer would go on writing a mirror this releases, for a relationship no longer recorded.
    this.refuseWhileRunning(rel, 'delete');
    let released = true;
    let reason: string | null = null;
    if (rel.kind !== 'incremental') {
      try {
        const d = await this.destination(rel.destination, { keyFile: rel.keyFile ?? undefined }, { cancelled: false });
        try {
          const status = await d.status();
          if (status.mirrorOf?.relationship === rel.name) await d.setMarker(null);
        } finally {
          await d.close();
        }
      } catch (e) {
        // A local mirror that would not open (a writer holds it): its marker is a file beside it, removed all the same.
        const local = !parseRemote(rel.destination) && (await readMarker(rel.destination).catch(() => null))?.relationship === rel.name;
        if (local) await writeMarker(rel.destination, null);
        else {
          released = false;
          reason = e instanceof Error ? e.message : String(e);
        }
      }
    }
    await this.host.state.update((s) => {
      const cur = s.relationships?.[name];
      if (cur) this.refuseWhileRunning(cur, 'delete');
      delete s.relationships?.[name];
    });
    return { destination: rel.destination, released, reason, unheld: await this.releaseHolds(rel).catch(() => []) };
  }

  /** Releases the holds a relationship put on its source's snapshots (its own, and a resync's); returns their names. */
  private async releaseHolds(rel: RelationshipRecord): Promise<string[]> {
    const v = await this.host.openVolume(rel.source, true);
    const held = v.snapshots.list().filter((e) => e.flags & SnapshotFlag.hold && (ownSnapshot(rel, e.name) || e.name === rel.resyncHold));
    for (const e of held) await v.setSnapshotFlags(e.name, { hold: false });
    return held.map((e) => e.name);
  }

  private async info(rel: RelationshipRecord): Promise<MirrorInfo> {
    const now = this.host.clock();
    const lagBlocks = await this.lagBlocks(rel);
    const alive = rel.transferring !== null && processAlive(rel.transferring.pid);
    const lagSeconds = rel.lastCommon ? Math.max(0, (now - rel.lastCommon.createdAtMs) / 1000) : null;
    const schedule = scheduleOf(rel);
    // An update whose process died without a word (SIGKILL, a crash): it never recorded how it ended.
    const killed = rel.transferring !== null && !alive ? `interrupted: the update in process ${rel.transferring.pid} (started ${rel.transferring.since}) stopped without finishing (the process was killed or its host went down); the next \`snapplane mirror update ${rel.name}\` finishes it` : null;
    let state: MirrorInfo['state'] = 'idle';
    if (rel.broken) state = 'broken';
    else if (alive) state = 'transferring';
    else if (killed) state = 'failed';
    // A full resync that stopped without a word (its process was killed): the old mirror is there, behind.
    else if (!rel.lastCommon) state = rel.lastError ? 'failed' : rel.replacing ? 'lagging' : 'uninitialized';
    else if (rel.lastError) state = 'failed';
    else if (schedule && lagSeconds !== null && lagSeconds * 1000 > 2 * periodMs(schedule)) state = 'lagging';
    // Found now rather than at the next update: a source deleted or moved away is not an idle relationship.
    const gone = alive ? null : await this.missingPart(rel);
    if (gone && state !== 'broken') state = 'failed';
    return {
      name: rel.name,
      kind: rel.kind,
      source: rel.source,
      destination: rel.destination,
      slow: rel.slow,
      every: describeSchedule(rel),
      state,
      lastCommon: rel.lastCommon?.name ?? null,
      lastTransferAt: rel.lastTransferAt,
      lastTransferBytes: rel.lastTransferBytes,
      lastError: gone ?? killed ?? rel.lastError,
      lagSeconds,
      lagBlocks,
      lastSelection: rel.lastSelection,
      replacing: rel.replacing === true,
      limit: rel.limit ?? null,
      keyFile: rel.keyFile ?? null,
      progress: alive ? await readTransferProgress(this.host.state.path, rel.name, rel.transferring!.pid) : null,
      nextAt: schedule && !rel.broken ? new Date(nextUpdateAt(rel, now)).toISOString() : null,
    };
  }

  /** What of the relationship is gone now (its source; an initialized incremental mirror's base or fast half), or null. */
  private async missingPart(rel: RelationshipRecord): Promise<string | null> {
    const missing = (p: string): Promise<boolean> => stat(p).then(() => false, () => true);
    if (await missing(rel.source)) return `the source volume '${rel.source}' does not exist (any more)`;
    if (rel.kind !== 'incremental' || !rel.lastCommon) return null;
    const advice = `\`snapplane mirror resync ${rel.name} --full\` re-initializes the mirror`;
    if (await missing(join(rel.destination, 'delta.json'))) return `the fast folder '${rel.destination}' holds no incremental mirror any more (no delta.json); put it back, or ${advice}`;
    const base = rel.slow ? splitSlow(rel.slow)[1] : null;
    if (base && (await missing(base))) return `the base image '${base}' is missing (deleted or moved); put it back, or ${advice}`;
    return null;
  }

  /** Blocks written on the source since the last common snapshot (null before the first, or when it cannot tell). */
  private async lagBlocks(rel: RelationshipRecord): Promise<number | null> {
    if (!rel.lastCommon) return null;
    try {
      // The CP that deleted the previous common snapshot rewrote the block map and snapshot table: not a write of
      // the source's files (left out), and a mirror just updated has no lag.
      return await blocksWrittenSince(await this.host.openVolume(rel.source, false), rel.lastCommon.name);
    } catch {
      return null;
    }
  }

  /** Relationships whose schedule is due at `now` (for the daemon). */
  async dueMirrors(now: number): Promise<string[]> {
    const st = await this.host.state.load();
    return Object.values(st.relationships ?? {})
      // One being transferred (a `mirror update` from a shell, a console job) is left to that transfer.
      .filter((r) => scheduleOf(r) !== null && !r.broken && !this.running(r) && now >= nextUpdateAt(r, now))
      .map((r) => r.name);
  }

  /**
   * Claims scheduled relationship `name` for an update by this process if it is still due at `now`: a scheduler's
   * list (dueMirrors) goes stale while it runs the updates before this one, and another process's scheduler or a
   * `mirror update` may have taken it meanwhile. Returns why it is skipped, or null once claimed (the update that
   * follows takes this process's mark as its own).
   */
  async claimDue(name: string, now: number): Promise<string | null> {
    return this.host.state.update((s) => {
      const rel = s.relationships?.[name];
      if (!rel) return 'it was deleted';
      if (rel.broken) return 'it was broken (its mirror taken over)';
      const t = rel.transferring;
      if (t && (t.pid === process.pid ? this.busy.has(name) : processAlive(t.pid))) return `it is being updated ${t.pid === process.pid ? 'by this process' : `by process ${t.pid}`} (since ${t.since})`;
      const due = nextUpdateAt(rel, now);
      if (now < due) return `it was updated at ${rel.lastTransferAt ?? rel.lastAttemptAt ?? 'an earlier time'}; next due at ${new Date(due).toISOString()}`;
      rel.transferring = { pid: process.pid, since: new Date(this.host.clock()).toISOString() };
      return null;
    });
  }

  /** One transfer of a relationship: initializes it the first time, then sends what changed since the last common snapshot. */
  async mirrorUpdate(name: string, onProgress?: Progress): Promise<MirrorUpdateReport> {
    return this.oneAtATime(name, () => this.update(name, onProgress));
  }

  private async update(name: string, onProgress?: Progress): Promise<MirrorUpdateReport> {
    const rel = await this.claim(name, (r) => {
      if (r.broken) throw new SnapplaneError('INVALID', `relationship '${name}' is broken (its mirror was taken over); \`snapplane mirror resync ${name}\` re-establishes it`);
    }).catch(async (e: unknown) => {
      // A scheduler's claim (claimDue) must not outlive the update it was for: other processes would wait on it.
      await this.unclaim(name).catch(() => undefined);
      throw e;
    });
    return this.host.job('mirror-update', rel.source, rel.destination, undefined, onProgress, async (signal, reported) => {
      const t0 = performance.now();
      // Also for `mirror status` in other processes: a daemon's update shows nowhere else.
      const shown = new TransferProgressFile(this.host.state.path, name);
      const progress: Progress = (p) => {
        reported(p);
        shown.record(p);
      };
      const step = (): Promise<MirrorUpdateReport> => (rel.kind === 'replica' ? this.replicaUpdate(rel, signal, progress) : rel.kind === 'incremental' ? this.incrementalUpdate(rel, signal, progress) : this.fullUpdate(rel, signal, progress));
      // The snapshot of an update that stopped: this one finishes it first (resuming what landed).
      const interrupted = rel.pending;
      try {
        let r = await step();
        // ... and then brings the mirror up to date, as asked, rather than leaving it at that older state.
        if (interrupted && r.to === interrupted && (await this.lagBlocks(rel)) !== 0) r = finishedThen(r, await step());
        r.seconds = (performance.now() - t0) / 1000;
        rel.lastError = null;
        rel.failures = 0;
        rel.lastTransferAt = new Date(this.host.clock()).toISOString();
        rel.lastTransferBytes = r.bytes;
        rel.lastSelection = r.selection;
        return r;
      } catch (x) {
        const e = withKeyFileAdvice(x, rel);
        rel.lastError = e instanceof Error ? e.message : String(e);
        rel.failures = (rel.failures ?? 0) + 1;
        throw e;
      } finally {
        await shown.end();
        rel.transferring = null;
        rel.lastAttemptAt = new Date(this.host.clock()).toISOString();
        await this.save(rel);
      }
    }, (r) => r.bytes);
  }

  /**
   * What `mirror update` would send now: the destination is asked and checked as an update does (reachable, the key,
   * still this relationship's mirror, holding the base), and the blocks are counted with the source's state as of
   * its last CP in place of the snapshot the update would take. Nothing is taken, sent or recorded.
   */
  async mirrorUpdatePreview(name: string): Promise<MirrorUpdateReport> {
    const t0 = performance.now();
    const rel = structuredClone(await this.load(name));
    if (rel.broken) throw new SnapplaneError('INVALID', `relationship '${name}' is broken (its mirror was taken over); \`snapplane mirror resync ${name}\` re-establishes it`);
    try {
      if (rel.kind === 'replica') {
        const r = await this.replicate(rel.source, rel.destination, { keyFile: rel.keyFile ?? undefined, dryRun: true });
        return { ...replicaReport(rel, r), seconds: r.seconds, dryRun: true };
      }
      await refuseMirrorSource(rel.source, rel.kind);
      const v = await this.host.openVolume(rel.source, false);
      const base = await this.baseOf(rel, v);
      let carried: SnapshotEntry[] = [];
      let dropped: string[] = [];
      // An incremental mirror's halves are local: one that is gone fails the update as it would (with what to do).
      const gone = rel.kind === 'incremental' ? await this.missingPart(rel) : null;
      if (gone) throw new SnapplaneError('NOT_FOUND', gone, { path: rel.destination });
      if (rel.kind === 'full') {
        const d = await this.destination(rel.destination, { keyFile: rel.keyFile ?? undefined }, { cancelled: false });
        try {
          const status = await d.status();
          refuseDestinationState(rel, status);
          refuseWithoutBase(rel, status, base);
          // The update's own snapshot is newer than all of them.
          carried = carriedAlong(v.snapshots.list(), base, { generation: Number.MAX_SAFE_INTEGER } as SnapshotEntry, rel.replacing && !base ? { ...status, snapshots: [] } : status);
          // The receive deletes the mirror's snapshots the source no longer has (LocalDestination's dropObsolete),
          // unless held there or needed by the mirror's own destinations, which only it can tell.
          const sourceSnapshots = v.snapshots.list().filter((e) => !(e.flags & SnapshotFlag.shadow));
          if (base) dropped = status.snapshots.filter((x) => !sourceSnapshots.some((e) => sameRef(refOf(e), x))).map((x) => x.name);
        } finally {
          await d.close().catch(() => undefined);
        }
      }
      const expression = `${[...carried.map((e) => quoteName(e.name)), 'active'].join(' + ')}${base ? ` - ${quoteName(base.name)}` : ''}`;
      const blocks = await v.exclusive(async () => {
        const image = await evaluateImage(expression, await v.planeMap(), v.snapshots.list(), rel.source);
        // A stream carries the fsinfo copies in its header, not as blocks (as the planner and imageEval count).
        const n = image.blocks - (image.plane.has(0) ? 1 : 0) - (image.plane.has(1) ? 1 : 0);
        image.plane.release();
        return n;
      });
      // The update takes the next free name (after finishing an interrupted one's snapshot, already named).
      const { name: to } = nextTransferName(rel, v);
      // Which way the update would choose its blocks (marks or subtraction) is its own to find: not claimed here.
      return { name, kind: rel.kind, transfer: base ? 'incremental' : 'full', from: base?.name ?? null, to, selection: base ? null : 'full', blocks, bytes: blocks * BLOCK_SIZE, resumedFromVbn: null, seconds: (performance.now() - t0) / 1000, ...(rel.kind === 'full' ? { carried: carried.map((e) => e.name), dropped } : {}), ...(rel.pending ? { finished: rel.pending } : {}), dryRun: true };
    } catch (e) {
      throw withKeyFileAdvice(e, rel);
    }
  }

  private marker(rel: RelationshipRecord, v: Volume): MirrorMarker {
    return { relationship: rel.name, source: rel.source, sourceUuid: v.fsinfo.uuid, since: rel.createdAt };
  }

  /** The snapshot this update sends up to: the one an interrupted update took, else a new one at the latest CP. */
  private async topSnapshot(rel: RelationshipRecord, v: Volume): Promise<SnapshotEntry> {
    const pending = rel.pending ? v.snapshots.list().find((e) => e.name === rel.pending) : undefined;
    if (pending) return pending;
    const { name, seq } = nextTransferName(rel, v);
    rel.seq = seq;
    // Kept from deletion until the next update supersedes it.
    await v.snapshotForTransfer(name, { hold: true });
    rel.pending = name;
    await this.save(rel);
    return v.snapshots.byName(name, rel.source);
  }

  /**
   * After an update: the new snapshot is the common one; the previous one goes on the source if it is the
   * relationship's own (the destination deleted its copy when the stream committed), else loses the hold a resync
   * gave it. Recorded first: a crash after it leaves at most a stray the next update removes.
   */
  private async advance(rel: RelationshipRecord, v: Volume, top: SnapshotEntry, old: SnapshotEntry | null): Promise<void> {
    rel.lastCommon = refOf(v.snapshots.byName(top.name, rel.source));
    rel.pending = null;
    rel.replacing = false;
    const released = rel.resyncHold ?? null;
    // Without the writer (another process holds it), the previous snapshot and a resync's hold stay for the next
    // update (removeStrays).
    if (v.readOnly) return this.save(rel);
    rel.resyncHold = null;
    await this.save(rel);
    if (old && old.name !== top.name && v.snapshots.has(old.name)) {
      if (ownSnapshot(rel, old.name)) await deleteUnlessSent(v, old.name);
      else if (released === old.name) await v.setSnapshotFlags(old.name, { hold: false });
    }
  }

  /**
   * An update whose stream committed on the destination but that stopped before recording so (its process was
   * killed, or the connection dropped before the answer): its snapshot is the common one now. Sending it again
   * would be refused (the destination has it and has moved past the old base).
   */
  private async settleLanded(rel: RelationshipRecord, v: Volume, landed: (ref: SnapshotRef) => boolean): Promise<void> {
    const p = rel.pending ? v.snapshots.list().find((e) => e.name === rel.pending) : undefined;
    if (!p || !landed(refOf(p))) return;
    rel.lastCommon = refOf(p);
    rel.pending = null;
    rel.replacing = false;
    await this.save(rel);
  }

  /**
   * Deletes the relationship's own snapshots on the source other than its base and pending one: left by updates
   * that stopped between their steps, and held, so nothing else would ever free their blocks. The mirror drops its
   * copies at the next receive (the source no longer has them).
   */
  private async removeStrays(rel: RelationshipRecord, v: Volume): Promise<void> {
    const keep = new Set([rel.lastCommon?.name, rel.pending]);
    for (const e of v.snapshots.list()) if (ownSnapshot(rel, e.name) && !keep.has(e.name)) await deleteUnlessSent(v, e.name);
    // A resync's hold on a snapshot the relationship has moved past (the update that did could not release it).
    if (rel.resyncHold && !keep.has(rel.resyncHold)) {
      if (v.snapshots.has(rel.resyncHold)) await v.setSnapshotFlags(rel.resyncHold, { hold: false });
      rel.resyncHold = null;
      await this.save(rel);
    }
  }

  private async baseOf(rel: RelationshipRecord, v: Volume): Promise<SnapshotEntry | null> {
    if (!rel.lastCommon) return null;
    const base = v.snapshots.list().find((e) => sameRef(refOf(e), rel.lastCommon!));
    if (!base) throw new SnapplaneError('NOT_FOUND', `the source lost snapshot '${rel.lastCommon.name}', the last one it had in common with the mirror; \`snapplane mirror resync ${rel.name}\` looks for an older common one, \`--full\` copies the source whole again`, { volume: rel.source, snapshot: rel.lastCommon.name });
    return base;
  }

  private async fullUpdate(rel: RelationshipRecord, signal: { cancelled: boolean }, progress: Progress): Promise<MirrorUpdateReport> {
    await refuseMirrorSource(rel.source, rel.kind);
    const connect = (): Promise<Destination> => this.destination(rel.destination, { keyFile: rel.keyFile ?? undefined, limit: rel.limit ?? undefined }, signal);
    let d = await connect();
    try {
      const status = await d.status();
      // Recorded: the schedule stops until a resync (the check below says so and refuses).
      if (takenOver(rel, status)) rel.broken = true;
      refuseDestinationState(rel, status);
      const shared = this.host.writerShared(rel.source);
      const v = await this.host.openVolume(rel.source, true);
      await this.settleLanded(rel, v, (ref) => status.snapshots.some((s) => sameRef(s, ref)));
      const base = await this.baseOf(rel, v);
      await this.removeStrays(rel, v);
      refuseWithoutBase(rel, status, base);
      const replace = rel.replacing === true && !base;
      const top = await this.topSnapshot(rel, v);
      // A replacement starts empty: it needs the snapshots the old mirror has as much as the others.
      const along = carriedAlong(v.snapshots.list(), base, top, replace ? { ...status, snapshots: [] } : status);
      const expression = `${[...along, top].map((e) => quoteName(e.name)).join(' + ')}${base ? ` - ${quoteName(base.name)}` : ''}`;
      const sourceSnapshots = v.snapshots.list().filter((e) => !(e.flags & SnapshotFlag.shadow)).map(refOf);
      const retire = base && ownSnapshot(rel, base.name) ? [base.name] : undefined;
      // A full resync resumes its copy beside the mirror, not a receive into the mirror itself.
      const from = replace ? { ...status, resume: status.replacement?.resume ?? null } : status;
      const request = { marker: this.marker(rel, v), sourceSnapshots, retire, replace: replace || undefined };
      const plan = (resume: { streamId: string; fromVbn: number } | undefined): Promise<StreamPlan> => planStream(v, expression, { resume, selection: 'marks', now: () => this.host.clock() });
      // A writer this process may share with other work stays, and sends; one opened for this update alone is given
      // up for the transfer (transferWithoutWriter), so other processes may write to the source meanwhile.
      const sent = shared ? await this.sendTo({ volume: v, plan }, connect, d, from, expression, request, signal, progress) : await this.transferWithoutWriter(rel.source, plan, resumeOf(from, expression), (source) => this.sendTo(source, connect, d, from, expression, request, signal, progress));
      d = sent.destination;
      await this.advance(rel, await this.afterTransfer(rel.source, shared ? v : null), top, base);
      return { name: rel.name, kind: rel.kind, transfer: base ? 'incremental' : 'full', from: base?.name ?? null, to: top.name, selection: sent.plan.selection, blocks: sent.report.blocks, bytes: sent.report.bytes, resumedFromVbn: sent.report.resumedFromVbn, seconds: 0, carried: along.map((e) => e.name), dropped: sent.report.dropped ?? [], ...(sent.report.replaced ? { replaced: sent.report.replaced } : {}), ...(sent.report.downstream ? { downstream: sent.report.downstream } : {}) };
    } finally {
      await d.close().catch(() => undefined);
    }
  }

  /**
   * Sends an update's stream with the source's writer given up: the plans (with the mark-on-allocate image, which
   * lives in the writer) are made first, then a read-only view of the same committed state pins the stream's
   * snapshots where other processes see it (sending.json), and only then is the writer closed. Its snapshots cannot
   * be deleted under the send, and their blocks are never reused while they exist, so other processes' writes go on
   * meanwhile, as a SnapMirror source stays writable during its transfers.
   */
  private async transferWithoutWriter<T>(path: string, plan: StreamSource['plan'], resume: { streamId: string; fromVbn: number } | undefined, send: (source: StreamSource) => Promise<T>): Promise<T> {
    const writer = await this.host.openVolume(path, true);
    // A resumed send the destination refuses starts over: both plans are made while the marks are at hand.
    const fresh = await plan(undefined);
    const resumed = resume ? await plan(resume) : null;
    if (writer.isDirty) await writer.consistencyPoint();
    const view = await this.host.openDetachedView(path);
    try {
      const unpin = await view.pinForSend(fresh.planeSlots, fresh.generations);
      try {
        await this.host.releaseWriter(path);
        return await send({ volume: view, plan: async (r) => (r && resumed ? resumed : fresh) });
      } finally {
        await unpin();
      }
    } finally {
      await view.close();
    }
  }

  /**
   * The source for an update's last step (advance): the writer it kept, else the writer opened again; while another
   * process holds that, a read-only view (the previous snapshot then goes at the next update).
   */
  private async afterTransfer(path: string, kept: Volume | null): Promise<Volume> {
    if (kept) return kept;
    try {
      return await this.host.openVolume(path, true);
    } catch (e) {
      if (!isSnapplaneError(e, 'LOCKED')) throw e;
      return this.host.openVolume(path, false);
    }
  }

  private async replicaUpdate(rel: RelationshipRecord, _signal: { cancelled: boolean }, progress: Progress): Promise<MirrorUpdateReport> {
    const r = await this.replicate(rel.source, rel.destination, { keyFile: rel.keyFile ?? undefined, limit: rel.limit ?? undefined }, progress);
    const v = await this.host.openVolume(rel.source, false);
    rel.lastCommon = refOf(v.snapshots.byName(r.to, rel.source));
    return replicaReport(rel, r);
  }

  private async incrementalUpdate(rel: RelationshipRecord, signal: { cancelled: boolean }, progress: Progress): Promise<MirrorUpdateReport> {
    await refuseMirrorSource(rel.source, rel.kind);
    const shared = this.host.writerShared(rel.source);
    const v = await this.host.openVolume(rel.source, true);
    const [kind, slowPath] = splitSlow(rel.slow!);
    if (rel.pending && rel.lastCommon) {
      const current = (await IncrementalMirror.open(rel.destination).catch(() => null))?.current;
      if (current) await this.settleLanded(rel, v, (ref) => sameRef({ ...current, id: 0 }, { ...ref, id: 0 }));
    }
    const base = await this.baseOf(rel, v);
    await this.removeStrays(rel, v);
    const top = await this.topSnapshot(rel, v);
    // As a full mirror's update: a writer opened for this update is given up while the stream goes out.
    const sending = <T>(plan: StreamSource['plan'], send: (source: StreamSource) => Promise<T>): Promise<T> => (shared ? send({ volume: v, plan }) : this.transferWithoutWriter(rel.source, plan, undefined, send));
    // A reconstruct or verify running meanwhile would read blocks this update writes: they take turns.
    const { blocks, selection } = await IncrementalMirror.exclusive(rel.destination, 'mirror update', async (): Promise<{ blocks: number; selection: MirrorUpdateReport['selection'] }> => {
      if (!base) {
        const plan = (): Promise<StreamPlan> => planStream(v, quoteName(top.name), { order: kind === 'tape' ? 'tape' : 'vbn', now: () => this.host.clock() });
        return sending(plan, async (source) => {
          const p = await source.plan(undefined);
          const onSend = (x: { blocks: number; totalBlocks: number }): void => progress({ phase: 'base', done: x.blocks * BLOCK_SIZE, total: x.totalBlocks * BLOCK_SIZE, unit: 'bytes' });
          if (kind === 'file') await sendToFile(source.volume, p, slowPath, onSend, signal);
          else await writeTapes(slowPath, writeStream(source.volume, p, onSend, signal, true), { tapeSize: 2 ** 40, label: `${rel.source}: ${p.header.expression}`, streamId: p.header.streamId });
          await IncrementalMirror.create(rel.destination, slowPath);
          return { blocks: p.sendBlocks, selection: 'full' as const };
        });
      } else {
        const mirror = await this.openIncremental(rel);
        // Found at the update, not first at a reconstruct: without its base the structure rebuilds nothing.
        await this.checkBase(rel, mirror);
        if (!sameRef({ ...mirror.current, id: 0 }, { ...rel.lastCommon!, id: 0 })) throw new SnapplaneError('INVALID', `the incremental mirror in '${rel.destination}' is at '${mirror.current.name}', the relationship at '${rel.lastCommon!.name}'`, { path: rel.destination });
        const plan = (): Promise<StreamPlan> => planStream(v, `${quoteName(top.name)} - ${quoteName(base.name)}`, { selection: 'marks', now: () => this.host.clock() });
        return sending(plan, async (source) => {
          const p = await source.plan(undefined);
          const reader = new StreamReader(writeStream(source.volume, p, undefined, signal, true));
          await reader.open();
          try {
            const applied = await mirror.apply(reader, (b, t) => progress({ phase: 'transfer', done: b * BLOCK_SIZE, total: t * BLOCK_SIZE, unit: 'bytes' }));
            return { blocks: applied.blocks, selection: p.selection };
          } finally {
            await reader.close();
          }
        });
      }
    });
    await this.advance(rel, await this.afterTransfer(rel.source, shared ? v : null), top, base);
    const mirror = await IncrementalMirror.open(rel.destination);
    return { name: rel.name, kind: rel.kind, transfer: base ? 'incremental' : 'full', from: base?.name ?? null, to: top.name, selection, blocks, bytes: blocks * BLOCK_SIZE, resumedFromVbn: null, seconds: 0, deltaBlocks: mirror.presentBlocks, deltaBytes: await mirror.diskBytes() };
  }

  /**
   * Takeover: breaks the relationship and makes the mirror writable. Given a volume path instead of a relationship
   * name (on the destination's host, where the relationship is not known), it marks that volume taken over: the
   * source's host learns of the break only at its next update, which must then stop rather than overwrite it.
   */
  async mirrorBreak(nameOrVolume: string): Promise<{ relationship: string | null; destination: string; writable: boolean }> {
    const st = await this.host.state.load();
    const rel = st.relationships?.[nameOrVolume];
    if (!rel) {
      const marker = await readMarker(nameOrVolume);
      if (!marker) throw new SnapplaneError('NOT_FOUND', `'${nameOrVolume}' is neither a known relationship nor a mirror volume`);
      if (!marker.brokenAt) {
        // Another process of this host (a `serve` holding it after an update) may have it open: breaking then is
        // still safe, since that process writes only what the relationship sends, and the next request is refused.
        await writeMarker(nameOrVolume, { ...marker, brokenAt: new Date(this.host.clock()).toISOString() });
      }
      return { relationship: marker.relationship, destination: nameOrVolume, writable: true };
    }
    if (rel.kind === 'incremental') throw new SnapplaneError('INVALID', `'${rel.name}' is an incremental mirror: there is no volume to take over; \`snapplane mirror reconstruct ${rel.name} <new-vol>\` builds one`);
    // Under the lock: a takeover under a running transfer would make the mirror writable while that transfer still
    // writes it, and the transfer's end would record the relationship unbroken again.
    await this.host.state.update((s) => {
      const cur = s.relationships?.[rel.name];
      if (!cur) throw notFound(rel.name, s);
      this.refuseWhileRunning(cur, 'break');
      cur.broken = true;
    });
    let writable = false;
    try {
      const d = await this.destination(rel.destination, { keyFile: rel.keyFile ?? undefined }, { cancelled: false });
      try {
        await d.setMarker(null);
        writable = true;
      } finally {
        await d.close();
      }
    } catch {
      writable = false;
    }
    return { relationship: rel.name, destination: rel.destination, writable };
  }

  /**
   * Re-establishes a broken (or diverged) relationship from the newest snapshot both sides still have: the
   * destination is rolled back to it (its changes after it are discarded, and listed), then updated. With
   * `reverse`, source and destination swap first (the old source becomes the mirror of the volume that took over).
   * With `full` (when nothing is in common any more), the mirror is deleted and copied whole again.
   */
  async mirrorResync(name: string, opts: MirrorResyncOptions = {}, onProgress?: Progress): Promise<MirrorResyncReport> {
    return this.oneAtATime(name, () => this.resync(name, opts, onProgress));
  }

  private async resync(name: string, opts: MirrorResyncOptions, onProgress?: Progress): Promise<MirrorResyncReport> {
    // Claimed before anything is rolled back or replaced: another process's update must not be writing the mirror.
    const rel = await this.claim(name);
    try {
      return await this.resyncClaimed(rel, opts, onProgress);
    } catch (x) {
      const e = withKeyFileAdvice(x, rel);
      await this.unclaim(name);
      // Kept where `mirror status` and the console's row show it: why the relationship is still broken.
      if (isSnapplaneError(e, 'DIVERGED')) {
        await this.host.state.update((s) => {
          const r = s.relationships?.[name];
          if (r) r.lastError = e.message;
        });
      }
      throw e;
    }
  }

  private async resyncClaimed(rel: RelationshipRecord, opts: MirrorResyncOptions, onProgress?: Progress): Promise<MirrorResyncReport> {
    const name = rel.name;
    if (rel.kind === 'incremental') {
      if (!opts.full) throw new SnapplaneError('INVALID', `'${name}' is an incremental mirror: it has no volume to roll back; \`snapplane mirror resync ${name} --full\` re-initializes it (a new base image, an empty sparse structure)`);
      if (opts.reverse) throw new SnapplaneError('INVALID', 'a resync is either --full or --reverse');
      return this.reinitIncremental(rel, onProgress);
    }
    if (opts.full) {
      if (opts.reverse) throw new SnapplaneError('INVALID', 'a resync is either --full or --reverse');
      return this.resyncFull(rel, onProgress);
    }
    if (opts.reverse) {
      if (parseRemote(rel.destination)) throw new SnapplaneError('INVALID', `a reverse resync makes '${rel.destination}' the source; run it on that host (create the relationship there)`);
      // The old source becomes a mirror, and a full or incremental mirror cannot take a mirror as its source (it
      // snapshots it at every update): their held snapshots would also stop the first update, after the roll back
      // and the reversal (a replica of it is a cascade, which may go on).
      const others = Object.values((await this.host.state.load()).relationships ?? {}).filter((r) => r.name !== name && r.kind !== 'replica' && resolvePath(r.source) === resolvePath(rel.source)).map((r) => r.name);
      if (others.length > 0) throw new SnapplaneError('INVALID', `a reverse resync makes '${rel.source}' the mirror of '${rel.destination}', but it is the source of mirror relationship${others.length > 1 ? 's' : ''} ${others.join(', ')} too, which cannot take a mirror as source; delete ${others.length > 1 ? 'them' : 'it'} first (\`snapplane mirror delete ${others[0]}\`), or keep it as a source and create a new relationship the other way`, { volume: rel.source });
      [rel.source, rel.destination] = [rel.destination, rel.source];
    }
    const d = await this.destination(rel.destination, { keyFile: rel.keyFile ?? undefined }, { cancelled: false });
    let common: SnapshotEntry;
    let discarded: string[];
    let discardedBlocks = 0;
    try {
      const status = await d.status();
      if (!status.exists) throw destinationGone(rel);
      const v = await this.host.openVolume(rel.source, true);
      const candidates = v.snapshots.list().filter((e) => status.snapshots.some((s) => sameRef(s, refOf(e)))).sort(byGeneration);
      if (candidates.length === 0) throw new SnapplaneError('NOT_FOUND', `'${rel.source}' and '${rel.destination}' have no snapshot in common; \`snapplane mirror resync ${name} --full\` copies the source whole again, to replace the mirror once it lands`);
      common = candidates[candidates.length - 1];
      const rolled = await d.rollBack(common.name, opts.discard ? undefined : { relationship: rel.name }).catch((e: unknown) => {
        if (!isSnapplaneError(e, 'DIVERGED')) throw e;
        const keep = opts.reverse
          ? `to keep it, copy what you need off '${rel.destination}' first (it is the old source: those writes never reached the mirror)`
          : parseRemote(rel.destination)
            ? `to keep it, make the mirror the source: a relationship created on its host, the other way`
            : `\`snapplane mirror resync ${name} --reverse\` keeps it (the mirror becomes the source)`;
        // The destination names itself as its host knows it (a path under a `serve`'s root): here, as the user does.
        const message = e.volume && e.message.startsWith(`'${e.volume}'`) ? `'${rel.destination}'${e.message.slice(e.volume.length + 2)}` : e.message;
        throw new SnapplaneError('DIVERGED', `${message}. \`snapplane mirror resync ${name}${opts.reverse ? ' --reverse' : ''} --discard\` discards it; ${keep}`, { volume: rel.destination });
      });
      discarded = rolled.discarded;
      discardedBlocks = rolled.discardedBlocks;
      // Reversed: the volume that took over is the source from now on (not before: a refused roll back changes nothing).
      if (opts.reverse) await writeMarker(rel.source, null);
      // A replica is never marked (its updates are replications, which refuse a marked volume): one an older resync
      // marked is released again. Its masters are held by the destination record, not by a hold.
      if (rel.kind === 'replica') {
        if (status.mirrorOf?.relationship === rel.name) await d.setMarker(null);
      } else await d.setMarker(this.marker(rel, v));
      rel.resyncHold = null;
      if (rel.kind !== 'replica' && !(common.flags & SnapshotFlag.hold)) {
        await v.setSnapshotFlags(common.name, { hold: true });
        if (!ownSnapshot(rel, common.name)) rel.resyncHold = common.name;
      }
      rel.lastCommon = refOf(common);
      rel.pending = null;
      rel.replacing = false;
      rel.broken = false;
      rel.lastError = null;
      await this.save(rel);
    } finally {
      await d.close();
    }
    const r = await this.update(name, onProgress);
    return { ...r, common: common.name, discarded, discardedBlocks };
  }

  /**
   * Full resync of a full mirror (only if its destination is this relationship's mirror, or is gone): the source is
   * copied whole beside the mirror, which that copy replaces once it has committed. Until then the old mirror stays
   * as it was, and a failed copy is resumed by the next update. A mirror taken over on its host is marked again
   * first: its writes since go with it.
   */
  private async resyncFull(rel: RelationshipRecord, onProgress?: Progress): Promise<MirrorResyncReport> {
    if (rel.kind !== 'full') throw new SnapplaneError('INVALID', `'${rel.name}' is a ${rel.kind}; --full resyncs a full mirror (a replica with no master in common needs a new, empty destination)`);
    const d = await this.destination(rel.destination, { keyFile: rel.keyFile ?? undefined }, { cancelled: false });
    const v = await this.host.openVolume(rel.source, true);
    let discarded: string[];
    try {
      const status = await d.status();
      const m = status.mirrorOf;
      // Only what the relationship itself made: a full resync must not replace a volume that merely has its name.
      if (status.exists && m?.relationship !== rel.name) {
        throw new SnapplaneError('INVALID', `'${rel.destination}' is not the mirror in relationship '${rel.name}' (${m ? `it is the mirror in '${m.relationship}'` : 'it is no mirror'}); refusing to replace it`, { volume: rel.destination });
      }
      if (m?.brokenAt) await d.setMarker(this.marker(rel, v));
      discarded = status.snapshots.map((s) => s.name);
    } finally {
      await d.close();
    }
    if (rel.resyncHold && v.snapshots.has(rel.resyncHold)) await v.setSnapshotFlags(rel.resyncHold, { hold: false });
    rel.resyncHold = null;
    rel.lastCommon = null;
    rel.pending = null;
    rel.replacing = true;
    rel.broken = false;
    rel.lastError = null;
    await this.save(rel);
    // The relationship's own snapshots on the source go with the first update (nothing is their base any more).
    const r = await this.update(rel.name, onProgress);
    return { ...r, common: null, discarded };
  }

  /**
   * Full resync of an incremental mirror (its base or sparse structure is lost or damaged): the structure is
   * deleted and the next update writes a new base and starts an empty structure. The old state is gone from then on.
   */
  private async reinitIncremental(rel: RelationshipRecord, onProgress?: Progress): Promise<MirrorResyncReport> {
    const [kind, slowPath] = splitSlow(rel.slow!);
    const old = await IncrementalMirror.open(rel.destination).catch(() => null);
    if (kind === 'tape') {
      // A tape folder takes a new base only empty: its tapes go when they are this mirror's old base, else the user decides.
      const tapes = (await readdir(slowPath).catch(() => [] as string[])).filter((f) => f.endsWith('.tap'));
      const ours = old !== null && old.basePath === slowPath && (await old.baseMatches().catch(() => false));
      if (tapes.length > 0 && !ours) throw new SnapplaneError('EXISTS', `tape folder '${slowPath}' holds tapes (${tapes[0]}, …) that are not this mirror's base as far as its fast folder '${rel.destination}' tells; move them away or empty the folder, then run \`snapplane mirror resync ${rel.name} --full\` again`, { path: slowPath });
      for (const t of tapes) await rm(join(slowPath, t), { force: true });
    }
    await IncrementalMirror.exclusive(rel.destination, 'mirror resync --full', () => IncrementalMirror.remove(rel.destination));
    rel.lastCommon = null;
    rel.pending = null;
    rel.resyncHold = null;
    rel.broken = false;
    rel.lastError = null;
    await this.save(rel);
    // The relationship's own snapshots on the source go with this update (nothing is their base any more).
    const r = await this.update(rel.name, onProgress);
    return { ...r, common: null, discarded: old ? [old.current.name] : [] };
  }

  /** Incremental mirrors: rebuilds the newest state (base + sparse incrementals) into a new volume. */
  async mirrorReconstruct(name: string, volume: string, onProgress?: Progress): Promise<ReceiveReport> {
    const rel = await this.load(name);
    if (rel.kind !== 'incremental') throw new SnapplaneError('INVALID', `'${name}' is a ${rel.kind} mirror; its destination volume already holds the state (open it, or \`mirror break\` to write to it)`);
    // Opened for the message below; read again under the structure's lock, where no update changes it.
    let mirror = await this.openIncremental(rel);
    const existed = await stat(volume).then(() => true, () => false);
    return this.host.job('reconstruct', rel.destination, volume, undefined, onProgress, async (signal, progress) => {
      try {
        return await IncrementalMirror.exclusive(rel.destination, 'mirror reconstruct', async () => {
          mirror = await this.openIncremental(rel);
          return this.host.receiveInto(volume, mirror.reconstruct(), {}, progress, signal);
        });
      } catch (e) {
        // A reconstruction cannot be resumed (each one is a new stream): what landed is a half-made volume, not kept.
        if (!existed) await this.host.deleteVolume(volume).catch(() => undefined);
        if (!(e instanceof SnapplaneError)) throw e;
        const root = e.cause instanceof SnapplaneError ? e.cause : e;
        const damaged = root.code === 'CHECKSUM' || root.code === 'BAD_STREAM';
        const where = damaged && root.path !== mirror.blockFile ? ` (reading the base image '${mirror.basePath}')` : '';
        const advice = damaged ? `. This mirror cannot rebuild the source's state: \`snapplane mirror resync ${name} --full\` re-initializes it from the source as it is now` : '';
        throw new SnapplaneError(root.code, `${root.message}${where}; nothing was reconstructed into '${volume}'${advice}`, { path: root.path ?? (damaged ? mirror.basePath : undefined), volume, vbn: root.vbn, cause: e });
      }
    }, (r) => r.bytes);
  }

  /** Incremental mirrors: checks every block of the sparse structure against its checksum, and that the base is there. */
  async mirrorVerify(name: string): Promise<{ name: string; blocks: number; unchecked: number; base: string }> {
    const rel = await this.load(name);
    if (rel.kind !== 'incremental') throw new SnapplaneError('INVALID', `'${name}' is a ${rel.kind} mirror; \`mirror verify\` checks an incremental mirror's sparse structure (check a volume with \`snapplane fsck\`)`);
    try {
      return await IncrementalMirror.exclusive(rel.destination, 'mirror verify', async () => {
        const mirror = await this.openIncremental(rel);
        await this.checkBase(rel, mirror);
        return { name, ...(await mirror.verify()), base: mirror.basePath };
      });
    } catch (e) {
      if (!(e instanceof SnapplaneError) || e.code !== 'CHECKSUM') throw e;
      throw new SnapplaneError('CHECKSUM', `${e.message}; this mirror cannot rebuild the source's state: \`snapplane mirror resync ${name} --full\` re-initializes it from the source as it is now`, { path: e.path, vbn: e.vbn, cause: e });
    }
  }

  /** The relationship's sparse structure, or NOT_FOUND saying how to start it again when its folder lost it. */
  private async openIncremental(rel: RelationshipRecord): Promise<IncrementalMirror> {
    try {
      return await IncrementalMirror.open(rel.destination);
    } catch (e) {
      if (!(e instanceof SnapplaneError) || e.code !== 'NOT_FOUND') throw e;
      throw new SnapplaneError('NOT_FOUND', `${e.message}: the fast half of incremental mirror '${rel.name}' is gone (deleted or moved); put the folder back, or \`snapplane mirror resync ${rel.name} --full\` re-initializes the mirror (a new base image on ${rel.slow}, an empty sparse structure)`, { path: rel.destination, cause: e });
    }
  }

  /** Refuses (NOT_FOUND) when an incremental mirror's base image is missing or is not the one it was built on. */
  private async checkBase(rel: RelationshipRecord, mirror: IncrementalMirror): Promise<void> {
    const advice = `put the base image back there, or \`snapplane mirror resync ${rel.name} --full\` re-initializes the mirror (a new base image, an empty sparse structure)`;
    if (!(await stat(mirror.basePath).then(() => true, () => false))) {
      throw new SnapplaneError('NOT_FOUND', `the base image '${mirror.basePath}' of incremental mirror '${rel.name}' is missing (deleted or moved): without it the mirror cannot rebuild the source's state; ${advice}`, { path: mirror.basePath });
    }
    const ok = await mirror.baseMatches().catch((e: unknown) => {
      throw new SnapplaneError(e instanceof SnapplaneError ? e.code : 'BAD_FORMAT', `the base image '${mirror.basePath}' of incremental mirror '${rel.name}' cannot be read (${e instanceof Error ? e.message : String(e)}); ${advice}`, { path: mirror.basePath, cause: e });
    });
    if (!ok) throw new SnapplaneError('INVALID', `'${mirror.basePath}' is not the base image incremental mirror '${rel.name}' was built on (another backup is there now); ${advice}`, { path: mirror.basePath });
  }
}

/** First retry of a failed scheduled update after this long, doubling with each failure in a row (never past the schedule). */
const RETRY_MS = 60_000;

/** Whether the destination says it was taken over on its host (`mirror break <volume>` there) from this relationship. */
function takenOver(rel: RelationshipRecord, status: DestinationStatus): boolean {
  return Boolean(status.mirrorOf?.brokenAt) && status.mirrorOf!.relationship === rel.name;
}

/** Refuses a full mirror's update (or its dry run) to a destination that is off-line, taken over, or another's mirror. */
function refuseDestinationState(rel: RelationshipRecord, status: DestinationStatus): void {
  if (status.offline) throw new SnapplaneError('BUSY', `'${rel.destination}' is off-line (${status.offline})`, { volume: rel.destination });
  if (takenOver(rel, status)) throw new SnapplaneError('INVALID', takenOverMessage(rel.destination, status.mirrorOf!), { volume: rel.destination });
  if (status.mirrorOf && status.mirrorOf.relationship !== rel.name) throw new SnapplaneError('INVALID', `'${rel.destination}' is the mirror of '${status.mirrorOf.source}' in relationship '${status.mirrorOf.relationship}'`, { volume: rel.destination });
}

/**
 * Refuses a full mirror's update (or its dry run) whose destination lacks what it builds on: the volume, or the base
 * snapshot; or, for a first copy (not a full resync's), is a volume that is not empty.
 */
function refuseWithoutBase(rel: RelationshipRecord, status: DestinationStatus, base: SnapshotEntry | null): void {
  if (base && !status.exists && !status.replacement) throw destinationGone(rel);
  if (base && !status.snapshots.some((s) => sameRef(s, refOf(base)))) {
    throw new SnapplaneError('NOT_FOUND', `'${rel.destination}' no longer has snapshot '${base.name}', the base of relationship '${rel.name}'; \`snapplane mirror resync ${rel.name}\` finds the newest common one`, { volume: rel.destination });
  }
  const replace = rel.replacing === true && !base;
  if (!base && !replace && status.exists && !status.empty && !(status.mirrorOf?.relationship === rel.name && status.resume)) {
    throw new SnapplaneError('EXISTS', `'${rel.destination}' is not empty; a mirror is initialized into a new volume`, { volume: rel.destination });
  }
}

/** The name (and sequence number) the relationship's next transfer snapshot takes: the next `mirror.<name>.<n>` free on the source. */
function nextTransferName(rel: RelationshipRecord, v: Volume): { name: string; seq: number } {
  let seq = rel.seq;
  let name: string;
  do name = `mirror.${rel.name}.${++seq}`;
  while (v.snapshots.has(name));
  return { name, seq };
}

/** A replica's update report from the replication it ran (or would run). */
function replicaReport(rel: RelationshipRecord, r: ReplicateReport): MirrorUpdateReport {
  return { name: rel.name, kind: rel.kind, transfer: r.kind, from: r.from, to: r.to, selection: r.kind === 'incremental' ? 'subtraction' : r.kind === 'full' ? 'full' : null, blocks: r.blocks, bytes: r.bytes, resumedFromVbn: r.resumedFromVbn, seconds: 0 };
}

/**
 * A relationship's authentication failure, naming the key file it used and how to point it at another (the
 * endpoint's key changed, or the file moved): the wire's own words speak of `--key-file`, which a scheduled
 * update was never given.
 */
function withKeyFileAdvice(e: unknown, rel: RelationshipRecord): unknown {
  if (!isSnapplaneError(e, 'AUTH') || !rel.keyFile || e.message.includes('mirror set')) return e;
  return new SnapplaneError('AUTH', `${e.message}; relationship '${rel.name}' uses key file ${rel.keyFile} (\`snapplane mirror set ${rel.name} --key-file <file>\` points it at another)`, { volume: e.volume ?? rel.destination, cause: e });
}

/** The settings of a relationship that `mirror set` changes (and transfers leave alone). */
function settingsOf(r: RelationshipRecord): Pick<RelationshipRecord, 'everyMs' | 'at' | 'limit' | 'keyFile'> {
  return { everyMs: r.everyMs, at: r.at ?? null, limit: r.limit, keyFile: r.keyFile };
}

/** A relationship's schedule in words, or null when it is updated on demand only. */
function describeSchedule(r: RelationshipRecord): string | null {
  const c = scheduleOf(r);
  return c ? describeCadence(c) : null;
}

/** A relationship's update schedule: every <interval>, or at HH:MM [on a weekday]; null: updated by hand. */
function scheduleOf(r: RelationshipRecord): Cadence | null {
  if (r.everyMs !== null) return { kind: 'every', everyMs: r.everyMs };
  return r.at ?? null;
}

/** How long one round of a schedule is (a time of day: a day, or a week on a weekday). */
function periodMs(c: Cadence): number {
  if (c.kind === 'every') return c.everyMs;
  return (c.weekday === undefined ? 1 : 7) * 86_400_000;
}

/**
 * When a scheduled relationship is next due: its interval after the last transfer, or the first time of day after
 * it (at once before the first transfer); after failures, a retry that backs off (1, 2, 4… minutes, up to the
 * schedule's period) so an unreachable host or a busy source is not tried, and logged, at every pass of the scheduler.
 */
function nextUpdateAt(r: RelationshipRecord, now: number): number {
  const schedule = scheduleOf(r);
  if (!schedule) return Infinity;
  const last = r.lastTransferAt === null ? null : Date.parse(r.lastTransferAt);
  const scheduled = last === null ? now : schedule.kind === 'every' ? last + schedule.everyMs : nextSlot(schedule, last);
  if (!r.lastError || !r.failures || !r.lastAttemptAt) return scheduled;
  return Date.parse(r.lastAttemptAt) + Math.min(periodMs(schedule), RETRY_MS * 2 ** Math.min(r.failures - 1, 20));
}

/**
 * A full or incremental mirror snapshots its source at every update, which a mirror (read-only until taken over)
 * cannot do; a replica of it can be made instead (it sends the master snapshots the mirror brought).
 */
async function refuseMirrorSource(source: string, kind: MirrorKind): Promise<void> {
  const m = await readMarker(source).catch(() => null);
  if (!m || m.brokenAt) return;
  throw new SnapplaneError('INVALID', `'${source}' is the mirror of '${m.source}' (relationship '${m.relationship}'): ${kind === 'incremental' ? 'an' : 'a'} ${kind} mirror takes a snapshot of its source at every update, and a mirror takes none of its own; mirror '${m.source}' instead, or make a replica of this mirror (\`--kind replica\`: it follows the master snapshots the mirror brings)`, { volume: source });
}

/** No relationship of that name: the error names the known ones. */
function notFound(name: string, st: ConsoleState): SnapplaneError {
  const known = Object.keys(st.relationships ?? {});
  return new SnapplaneError('NOT_FOUND', `no mirror relationship '${name}'${known.length ? ` (known: ${known.join(', ')})` : ''}`);
}

/** A full mirror or replica whose destination volume was deleted: only a whole copy brings it back. */
function destinationGone(rel: RelationshipRecord): SnapplaneError {
  const how = rel.kind === 'full' ? `\`snapplane mirror resync ${rel.name} --full\` recreates it (a whole copy of the source)` : `\`snapplane mirror update ${rel.name}\` recreates it (a whole copy of the newest master)`;
  return new SnapplaneError('NOT_FOUND', `destination volume '${rel.destination}' does not exist (any more): it was deleted or moved; ${how}`, { volume: rel.destination });
}

function splitSlow(slow: string): ['file' | 'tape', string] {
  const m = /^(file|tape):(.+)$/.exec(slow);
  if (!m) throw new SnapplaneError('INVALID', `bad slow medium '${slow}' (file:<path> or tape:<folder>)`);
  return [m[1] as 'file' | 'tape', m[2]];
}

/**
 * Deletes a relationship's own snapshot that it no longer needs, unless a transfer is sending it (a `send` of it,
 * another process's replication): then it stays as a stray, which the relationship's next update removes.
 */
async function deleteUnlessSent(v: Volume, name: string): Promise<void> {
  try {
    await v.deleteSnapshot(name, { releaseHold: true });
  } catch (e) {
    if (!isSnapplaneError(e, 'HELD')) throw e;
  }
}
