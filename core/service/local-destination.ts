/**
 * A destination volume on this host, and the request handler of `snapplane serve`, which answers a remote source's
 * requests with the same object, so a local and a remote destination behave alike.
 */
import { pathExists } from '../common/path-exists.js';
import { join } from 'node:path';
import { SnapplaneError } from '../common/errors.js';
import { FIRST_FREE_INODE, SnapshotFlag, type SnapshotEntry } from '../fs/format.js';
import type { Volume } from '../fs/volume.js';
import { readResumeState } from '../stream/receive.js';
import { Raid4Device } from '../raid/raid4-device.js';
import { askSwap, endReplacement, readReplacement, replacementOf, startReplacement } from '../transfer/replacement.js';
import { replacementWaits } from '../fs/sidecar.js';
import { neededMasters, readDestinations, readMarker, readOffline, takenOverMessage, writeDestinations, writeMarker, writeOffline } from '../transfer/sidecars.js';
import type { Destination, ReceiveRequest, RolledBack } from '../transfer/destination.js';
import { blocksWrittenSince } from '../image/written-since.js';
import { BLOCK_SIZE, formatBytes } from '../common/units.js';
import { checkServedName } from './volume-names.js';
import { localIdentity, servedIdentity } from '../transfer/destination-identity.js';
import { RateLimit, receiveStreamBytes, throttled } from '../net/pump.js';
import { ALIVE_MS, type WireConnection, type WireMessage } from '../net/wire.js';
import type { DestinationStatus, DownstreamBase, MirrorMarker, ProgressEvent, ReceiveReport, SnapshotRef } from '../api/types.js';

/** What a destination needs from the engine host (the service facade's internals). */
export interface EngineAccess {
  /** `offlineUpdate`: opens a volume that is off-line, for the update that took it off-line. */
  openVolume(path: string, write: boolean, mirrorWrite?: boolean, offlineUpdate?: boolean): Promise<Volume>;
  closeVolume(path: string): Promise<void>;
  /** Closes at once where `closeVolume` may keep the volume open a while (after a failed request). */
  closeVolumeNow?(path: string): Promise<void>;
  receiveInto(path: string, source: AsyncIterable<Buffer>, options: { force?: boolean; raid?: number; mirrorWrite?: boolean; overwriteBase?: boolean; resumeHint?: string }, onProgress: ((p: ProgressEvent) => void) | undefined, signal: { cancelled: boolean }): Promise<ReceiveReport>;
  /** Deletes a volume with its sidecars (closing it first). */
  deleteVolume(path: string): Promise<void>;
  /** Puts the volume at `replacement` in place of the one at `path`, which is deleted (closing both first). */
  replaceVolume(path: string, replacement: string): Promise<void>;
}

/** The identity both ends compare. */
export function refOf(e: SnapshotEntry): SnapshotRef {
  return { id: e.id, name: e.name, generation: e.generation, createdAtMs: e.createdAtMs };
}

/** Same snapshot on two volumes: same name, CP generation and creation time. */
export function sameRef(a: SnapshotRef, b: SnapshotRef): boolean {
  return a.name === b.name && a.generation === b.generation && a.createdAtMs === b.createdAtMs;
}

export class LocalDestination implements Destination {
  readonly remote = false;
  constructor(
    private readonly engine: EngineAccess,
    readonly label: string,
    private readonly signal: { cancelled: boolean } = { cancelled: false },
    /** --limit: as a remote destination's socket is throttled, so is what lands here (the disk is shared too). */
    private readonly limit: RateLimit | null = null,
  ) {}

  async status(): Promise<DestinationStatus> {
    // A receive under way finishes its own swap; another connection's status must not race it.
    if (!isReceiving(this.label)) await this.finishSwap();
    const replacement = (await readReplacement(this.label)) && (await replacementWaits(this.label)) ? { resume: await readResumeState(replacementOf(this.label)) } : null;
    const id = await localIdentity(this.label);
    const empty: DestinationStatus = { volume: this.label, exists: false, uuid: null, blockCount: null, empty: true, snapshots: [], newestMaster: null, resume: null, mirrorOf: null, offline: null, replacement, id };
    if (!(await pathExists(this.label))) return { ...empty, resume: await readResumeState(this.label) };
    const offline = await readOffline(this.label);
    const mirrorOf = await readMarker(this.label);
    const resume = await readResumeState(this.label);
    // An off-line volume's snapshot table and planes are intact (only an interrupted update's blocks are not):
    // its source needs them to finish the update.
    const v = await this.engine.openVolume(this.label, false, false, offline !== null);
    try {
      const entries = v.snapshots.list().sort((a, b) => a.generation - b.generation);
      const masters = entries.filter((e) => e.flags & SnapshotFlag.master);
      return {
        volume: this.label,
        exists: true,
        uuid: v.fsinfo.uuid,
        blockCount: v.fsinfo.blockCount,
        empty: entries.length === 0 && v.fsinfo.inodeCount <= FIRST_FREE_INODE,
        snapshots: entries.map((e) => ({ ...refOf(e), master: (e.flags & SnapshotFlag.master) !== 0 })),
        newestMaster: masters.length > 0 ? refOf(masters[masters.length - 1]) : null,
        resume,
        mirrorOf,
        offline,
        replacement,
        id,
      };
    } finally {
      await this.engine.closeVolume(this.label);
    }
  }

  async receive(stream: AsyncIterable<Buffer>, request: ReceiveRequest, onProgress?: (p: ProgressEvent) => void): Promise<ReceiveReport> {
    await this.finishSwap();
    const current = request.marker ? await readMarker(this.label) : null;
    // Checked here too, not only by the sender: a break between its status and this request, or an older sender.
    if (current?.brokenAt && current.relationship === request.marker!.relationship) throw new SnapplaneError('INVALID', takenOverMessage(this.label, current), { volume: this.label });
    if (request.replace) return this.receiveReplacement(stream, request, current, onProgress);
    const mirrorWrite = request.marker !== undefined && (current === null || current.relationship === request.marker.relationship);
    if (request.marker && !mirrorWrite) {
      const m = current!;
      throw new SnapplaneError('INVALID', `'${this.label}' is already the mirror of '${m.source}' in relationship '${m.relationship}'`, { volume: this.label });
    }
    const existed = await pathExists(this.label);
    // An update from a shadow master overwrites its base in place (the seed's off-line update): the volume is
    // off-line from before the first block lands until the update commits.
    const offline = request.offline !== undefined && existed;
    const dropped = existed && (request.sourceMasters || request.sourceSnapshots) ? await this.dropObsolete(request, mirrorWrite, offline) : [];
    if (offline) {
      // Opened first, so the off-line flag keeps out everyone but this update.
      await this.engine.openVolume(this.label, true, mirrorWrite, true);
      await writeOffline(this.label, request.offline!);
    }
    let landed = false;
    let committed = false;
    try {
      const report = await this.engine.receiveInto(this.label, this.limit ? throttled(stream, this.limit) : stream, { force: request.force, raid: request.raid, mirrorWrite, overwriteBase: offline, resumeHint: 'the next replication or mirror update of this destination resumes from them' }, (p) => {
        if (p.done > 0) landed = true;
        onProgress?.(p);
      }, this.signal);
      committed = true;
      // A takeover during this update stands: what landed is kept, and the volume stays writable.
      if (request.marker && !(await readMarker(this.label))?.brokenAt) await writeMarker(this.label, request.marker);
      // Best effort: a snapshot left here is deleted by the next update (the source deletes it too, so it drops).
      if (request.retire?.length) await this.retire(await this.writable(mirrorWrite), request.retire).catch(() => undefined);
      return dropped.length > 0 ? { ...report, dropped } : report;
    } finally {
      // Once blocks landed, the base may be partly overwritten: off-line until a replication finishes the update.
      if (offline && (committed || !landed)) await writeOffline(this.label, null);
      else if (offline) await writeOffline(this.label, `${request.offline}, interrupted: its base may be partly overwritten; it comes back on-line when a replication finishes the update`);
      await this.engine.closeVolume(this.label);
    }
  }

  /**
   * A full resync: the whole copy lands beside the mirror and takes its place once committed; until then the old
   * mirror stays as it was (and stays if the copy fails). Only a mirror of the same relationship is replaced.
   */
  private async receiveReplacement(stream: AsyncIterable<Buffer>, request: ReceiveRequest, current: MirrorMarker | null, onProgress?: (p: ProgressEvent) => void): Promise<ReceiveReport> {
    if (!request.marker) throw new SnapplaneError('INVALID', 'a full resync\'s copy is received for a relationship: the request needs its marker', { volume: this.label });
    const relationship = request.marker.relationship;
    let raid = request.raid;
    let replaced: string[] | undefined;
    if (await pathExists(this.label)) {
      if (current?.relationship !== relationship) throw this.notOurs(relationship, current);
      const v = await this.engine.openVolume(this.label, false);
      try {
        replaced = v.snapshots.list().sort((a, b) => a.generation - b.generation).map((e) => e.name);
        // The copy keeps the mirror's layout: a RAID-4 group stays one, with as many data members.
        raid ??= v.device instanceof Raid4Device ? v.device.dataMembers : undefined;
      } finally {
        await this.engine.closeVolume(this.label);
      }
    }
    const repl = replacementOf(this.label);
    const record = await readReplacement(this.label);
    if (await replacementWaits(this.label)) {
      // Only a copy this relationship started is ever deleted or continued; anything else there is left alone.
      if (record?.relationship !== relationship) {
        throw new SnapplaneError('EXISTS', `'${repl}' is in the way: a full resync of '${this.label}' receives its copy there, and that is no copy relationship '${relationship}' started; move it away`, { volume: this.label });
      }
      // Without a resume point nothing of it is worth keeping: it failed early, or committed before its swap was asked.
      if (!(await readResumeState(repl))) await this.engine.deleteVolume(repl);
    }
    if (record?.relationship !== relationship) await startReplacement(this.label, relationship);
    const report = await new LocalDestination(this.engine, repl, this.signal, this.limit).receive(stream, { raid, marker: request.marker }, onProgress);
    // Taken over on this host while the copy landed: the volume is its users' now, and the copy goes.
    const after = await readMarker(this.label);
    if (await this.takenFrom(relationship, after)) {
      await this.deleteReplacement();
      throw new SnapplaneError('INVALID', after?.brokenAt ? takenOverMessage(this.label, after) : `'${this.label}' stopped being the mirror in relationship '${relationship}' while its copy was received; the copy is deleted`, { volume: this.label });
    }
    const downstream = await this.carryDestinations(repl);
    await askSwap(this.label, (await readReplacement(this.label)) ?? { relationship, started: new Date().toISOString() });
    try {
      await this.finishSwap();
    } catch (e) {
      if (!(e instanceof SnapplaneError)) throw e;
      throw new SnapplaneError(e.code, `the whole copy landed beside '${this.label}' but could not take its place: ${e.message}; the next update (or any request for this volume) puts it there`, { volume: this.label, cause: e });
    }
    return { ...report, ...(replaced ? { replaced } : {}), ...(downstream.length ? { downstream } : {}) };
  }

  /**
   * Says whose base (newest master) the replacement has, so whose next replication stays incremental. Those
   * destinations go over to it (their masters stay held there as long as they need them); the others are
   * forgotten, since nothing held for them could serve them any more (they need a full copy).
   */
  private async carryDestinations(repl: string): Promise<DownstreamBase[]> {
    const known = await readDestinations(this.label);
    if (known.length === 0) return [];
    const v = await this.engine.openVolume(repl, false);
    let downstream: DownstreamBase[];
    try {
      const have = v.snapshots.list().map(refOf);
      downstream = known.map((k) => ({ destination: k.destination, base: k.master?.name ?? null, kept: k.master !== null && have.some((h) => sameRef(h, k.master!)) }));
    } finally {
      await this.engine.closeVolume(repl);
    }
    await writeDestinations(repl, known.filter((k, i) => k.master === null || downstream[i].kept));
    return downstream;
  }

  /**
   * Finishes a swap that was asked for (by the receive that asked, or after a crash, by the next request), unless
   * the volume was taken over on this host since: then the copy goes instead.
   */
  private async finishSwap(): Promise<void> {
    const record = await readReplacement(this.label);
    if (!record?.swapAsked) return;
    if (await this.takenFrom(record.relationship, await readMarker(this.label))) return this.deleteReplacement();
    await this.engine.replaceVolume(this.label, replacementOf(this.label));
    await endReplacement(this.label);
  }

  /** True when the volume exists and is no longer the relationship's mirror (taken over, or marked for another). */
  private async takenFrom(relationship: string, marker: MirrorMarker | null): Promise<boolean> {
    return (await pathExists(this.label)) && marker !== null && (marker.brokenAt !== undefined || marker.relationship !== relationship);
  }

  private async deleteReplacement(): Promise<void> {
    if (await replacementWaits(this.label)) await this.engine.deleteVolume(replacementOf(this.label));
    await endReplacement(this.label);
  }

  /** Deletes an unfinished replacement no relationship will finish (the mirror was released or rolled back). */
  private async dropReplacement(): Promise<void> {
    if (isReceiving(this.label) && (await readReplacement(this.label))) {
      throw new SnapplaneError('BUSY', `a full resync's copy of '${this.label}' is being received from another connection; stop it first`, { volume: this.label });
    }
    await this.finishSwap();
    if (await readReplacement(this.label)) await this.deleteReplacement();
  }

  private notOurs(relationship: string, m: MirrorMarker | null): SnapplaneError {
    return new SnapplaneError('INVALID', `'${this.label}' is not the mirror in relationship '${relationship}' (${m ? `it is the mirror in '${m.relationship}'` : 'it is no mirror'}); refusing to replace it`, { volume: this.label });
  }

  /** The volume open for writing, its own metadata placed at the top, where the source's next blocks are not. */
  private async writable(mirrorWrite: boolean, offlineUpdate = false): Promise<Volume> {
    const v = await this.engine.openVolume(this.label, true, mirrorWrite, offlineUpdate);
    v.blockMap!.placement = 'top';
    return v;
  }

  /**
   * Deletes what the source no longer has (its blocks may come back in the stream): master snapshots for a
   * replication, every regular snapshot for a mirror; never a held one or a master this volume's destinations need.
   */
  private async dropObsolete(request: ReceiveRequest, mirrorWrite: boolean, offlineUpdate: boolean): Promise<string[]> {
    const v = await this.writable(mirrorWrite, offlineUpdate);
    const kept = request.sourceSnapshots ?? request.sourceMasters!;
    const entries = v.snapshots.list();
    const candidates = request.sourceSnapshots ? entries.filter((e) => !(e.flags & SnapshotFlag.shadow)) : entries.filter((e) => e.flags & SnapshotFlag.master);
    const needed = neededMasters(entries.filter((e) => e.flags & SnapshotFlag.master), await readDestinations(this.label));
    const dropped: string[] = [];
    for (const e of candidates) {
      if (kept.some((m) => sameRef(m, refOf(e))) || e.flags & SnapshotFlag.hold || needed.has(e.name)) continue;
      await v.deleteSnapshot(e.name);
      dropped.push(e.name);
    }
    return dropped;
  }

  /** Deletes the relationship's old snapshots (the request of clients from before `retire`). */
  async deleteSnapshots(names: string[]): Promise<void> {
    try {
      await this.retire(await this.writable(true), names);
    } finally {
      await this.engine.closeVolume(this.label);
    }
  }

  private async retire(v: Volume, names: string[]): Promise<void> {
    for (const n of names) {
      if (!v.snapshots.has(n)) continue;
      // The relationship's own snapshot: a hold it got as the source's copy does not bind the mirror.
      await v.deleteSnapshot(n, { releaseHold: true });
    }
  }

  async rollBack(common: string, guard?: { relationship: string }): Promise<RolledBack> {
    // First: a committed replacement takes the volume's place (what is checked below is then that copy).
    await this.dropReplacement();
    const v = await this.writable(true);
    try {
      const base = v.snapshots.byName(common, this.label);
      const newer = v.snapshots.list().filter((e) => e.generation > base.generation);
      const discarded = newer.map((e) => e.name);
      const discardedBlocks = await blocksWrittenSince(v, common);
      if (guard) {
        // What only this volume has: writes after its newest snapshot (a mirror's active file system is its newest
        // received state until someone writes it), and snapshots newer than the common one that are not the
        // relationship's own (those are copies of the source's states).
        const newest = newer.length ? newer.reduce((a, b) => (b.generation > a.generation ? b : a)) : base;
        const written = await blocksWrittenSince(v, newest.name);
        const theirs = newer.filter((e) => !e.name.startsWith(`mirror.${guard.relationship}.`)).map((e) => e.name);
        if (written > 0 || theirs.length > 0) {
          const what = [written > 0 ? `${written} block${written === 1 ? '' : 's'} (${formatBytes(written * BLOCK_SIZE)}) written since its newest snapshot '${newest.name}'` : null, theirs.length ? `snapshot${theirs.length > 1 ? 's' : ''} ${theirs.join(', ')}, newer than '${common}'` : null].filter(Boolean).join(', and ');
          throw new SnapplaneError('DIVERGED', `'${this.label}' holds what its source does not: ${what}; rolling it back to '${common}' would discard that`, { volume: this.label });
        }
      }
      await v.revertToSnapshot(common);
      for (const e of newer) {
        if (e.flags & SnapshotFlag.hold) await v.setSnapshotFlags(e.name, { hold: false });
        await v.deleteSnapshot(e.name);
      }
      return { discarded, discardedBlocks };
    } finally {
      await this.engine.closeVolume(this.label);
    }
  }

  async setMarker(marker: MirrorMarker | null): Promise<void> {
    if (!marker) await this.dropReplacement();
    await writeMarker(this.label, marker);
  }

  wireBytes(): number {
    return 0;
  }

  async close(): Promise<void> {
    await this.engine.closeVolume(this.label);
  }
}

/** A roll back's guard as a request carries it (none when absent). */
function guardOf(g: unknown): { relationship: string } | undefined {
  if (g === undefined) return undefined;
  const relationship = typeof g === 'object' && g !== null ? (g as { relationship?: unknown }).relationship : undefined;
  if (typeof relationship !== 'string') throw new SnapplaneError('INVALID', 'rollBack: a guard names its relationship');
  return { relationship };
}

/** The path of a volume a remote names under the server's root (core/service/volume-names.ts says which names). */
function volumeUnder(root: string, name: unknown): string {
  return join(root, checkServedName(name));
}

function closeNow(engine: EngineAccess, path: string): Promise<void> {
  return engine.closeVolumeNow ? engine.closeVolumeNow(path) : engine.closeVolume(path);
}

/** Volumes receiving right now in this process (one receive per volume at a time). */
const busy = new Set<string>();

/** True while a connection of this process receives into the volume at `path`. */
export function isReceiving(path: string): boolean {
  return busy.has(path);
}

/**
 * Serves one authenticated connection: requests until the peer closes it. `endpointId` (destination-identity.ts)
 * names its volumes to sources however they spell the endpoint's address.
 */
export async function serveConnection(engine: EngineAccess, root: string, conn: WireConnection, log?: (line: string) => void, endpointId: string | null = null): Promise<void> {
  for (;;) {
    let req: WireMessage;
    try {
      req = await conn.nextMessage();
    } catch {
      return;
    }
    const op = req.op;
    let path: string | null = null;
    try {
      path = volumeUnder(root, req.volume);
      const dest = new LocalDestination(engine, path);
      switch (op) {
        case 'status':
          await conn.send({ status: { ...(await dest.status()), volume: String(req.volume), id: endpointId ? servedIdentity(endpointId, String(req.volume)) : null } });
          break;
        case 'receive': {
          if (busy.has(path)) throw new SnapplaneError('BUSY', `volume '${String(req.volume)}' is receiving from another connection`, { volume: String(req.volume) });
          busy.add(path);
          // While blocks land and while it commits: the client's idle timeout must not take a busy server for a dead one.
          const alive = setInterval(() => void conn.send({ alive: true }).catch(() => undefined), ALIVE_MS);
          try {
            await conn.send({ ready: true });
            let last = 0;
            const report = await dest.receive(
              receiveStreamBytes(conn),
              {
                force: req.force === true,
                raid: typeof req.raid === 'number' ? req.raid : undefined,
                marker: (req.marker as MirrorMarker | undefined) ?? undefined,
                offline: typeof req.offline === 'string' ? req.offline : undefined,
                sourceMasters: Array.isArray(req.sourceMasters) ? (req.sourceMasters as SnapshotRef[]) : undefined,
                sourceSnapshots: Array.isArray(req.sourceSnapshots) ? (req.sourceSnapshots as SnapshotRef[]) : undefined,
                retire: Array.isArray(req.retire) ? req.retire.filter((n): n is string => typeof n === 'string') : undefined,
                replace: req.replace === true,
              },
              (p) => {
                const now = performance.now();
                if (now - last < 200 && p.done < p.total) return;
                last = now;
                void conn.send({ progress: p }).catch(() => undefined);
              },
            );
            await conn.send({ result: { ...report, volume: String(req.volume) } });
            log?.(`received ${report.kind} ${report.expression} into ${String(req.volume)}: ${report.blocks} blocks`);
          } finally {
            clearInterval(alive);
            busy.delete(path);
          }
          break;
        }
        case 'deleteSnapshots':
          await dest.deleteSnapshots(Array.isArray(req.names) ? req.names.filter((n): n is string => typeof n === 'string') : []);
          await conn.send({ ok: true });
          break;
        case 'rollBack':
          if (typeof req.common !== 'string') throw new SnapplaneError('INVALID', 'rollBack needs the common snapshot');
          await conn.send({ rolledBack: await dest.rollBack(req.common, guardOf(req.guard)) });
          break;
        case 'setMarker':
          await dest.setMarker((req.marker as MirrorMarker | null) ?? null);
          // A break hands the volume to local writers: closed before the answer, not kept for the next request.
          await closeNow(engine, path);
          await conn.send({ ok: true });
          break;
        default:
          throw new SnapplaneError('INVALID', `unknown request ${JSON.stringify(op)}`);
      }
    } catch (e) {
      log?.(`${String(op)} ${String(req.volume)}: ${(e as Error).message}`);
      if (path) await closeNow(engine, path).catch(() => undefined);
      await conn.sendError(e);
      if (op === 'receive') {
        // The peer may still be sending stream bytes; the connection cannot carry another request.
        await conn.end();
        return;
      }
    } finally {
      if (path) await engine.closeVolume(path).catch(() => undefined);
    }
  }
}
