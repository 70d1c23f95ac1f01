/**
 * Where a replication or mirror transfer lands: a volume of this host, or a volume under a remote `snapplane serve`.
 * Both answer the same requests, so choosing and sending the image is written once.
 */
import { stat } from 'node:fs/promises';
import { SnapplaneError } from '../common/errors.js';
import type { DestinationStatus, MirrorMarker, ProgressEvent, ReceiveReport, SnapshotRef } from '../api/types.js';

export interface ReceiveRequest {
  force?: boolean;
  /** A volume created by a full stream: this many data members plus parity. */
  raid?: number;
  /** Receive into a mirror destination (its marker makes it read-only to everything else) and keep it marked. */
  marker?: MirrorMarker;
  /** Take the destination off-line during the update (the base is a shadow master). */
  offline?: string;
  /**
   * Replication: the source's master snapshots. The destination first deletes master snapshots the source no
   * longer has (their blocks may be reused by the incoming stream), unless held or needed by its own destinations.
   */
  sourceMasters?: SnapshotRef[];
  /**
   * Mirror: the source's regular snapshots. The destination first deletes every regular snapshot the source no
   * longer has, so the mirror keeps the source's set (same exceptions as for `sourceMasters`).
   */
  sourceSnapshots?: SnapshotRef[];
  /**
   * Mirror: snapshots to delete once the stream has committed (the relationship's previous common snapshot), in
   * the same request rather than a round trip and a reopen after it.
   */
  retire?: string[];
  /**
   * Full resync: a full stream that replaces the mirror (marked for the same relationship) once it has committed;
   * received beside it, so the old mirror stays until then.
   */
  replace?: boolean;
}

/** What a roll back discarded: the snapshots newer than the common one, and the blocks written since it. */
export interface RolledBack {
  discarded: string[];
  discardedBlocks: number;
}

export interface Destination {
  /** How users name it: a path, or host:port/name. */
  readonly label: string;
  readonly remote: boolean;
  status(): Promise<DestinationStatus>;
  /** Applies a stream (atomically: on any failure the destination stays at its base and may keep a resume token). */
  receive(stream: AsyncIterable<Buffer>, request: ReceiveRequest, onProgress?: (p: ProgressEvent) => void): Promise<ReceiveReport>;
  /**
   * Resync: revert to the common snapshot and delete the destination's snapshots newer than it; says what was
   * discarded. With `guard`, refuses (DIVERGED) instead when that would discard what only the destination holds
   * (blocks written after its newest snapshot, or snapshots newer than the common one not the relationship's own).
   */
  rollBack(common: string, guard?: { relationship: string }): Promise<RolledBack>;
  /** Sets or removes the mirror marker (removing it also deletes an unfinished replacement). */
  setMarker(marker: MirrorMarker | null): Promise<void>;
  /** Bytes that crossed the network so far. */
  wireBytes(): number;
  close(): Promise<void>;
}

/** Parses `host:port/name` (a remote volume); null for a local path. */
export function parseRemote(dest: string): { host: string; port: number; name: string } | null {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/(.+)$/.exec(dest);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1].replace(/^\[|\]$/g, ''), port, name: m[3] };
}

/**
 * Refuses a destination a user gave that is neither a remote volume (`host:port/name`) nor plainly a path of this
 * host: text whose first component holds a ':' (`host:port`, `host:port/`, `host:notaport/x`) is taken for an
 * address, unless something exists at that path or it starts as a path does (`/`, `./`, `../`, a drive letter).
 * A `--key-file` (`keyFile`) is only for a remote volume.
 */
export async function checkDestination(dest: string, keyFile?: string | null): Promise<void> {
  if (parseRemote(dest)) return;
  const exists = await stat(dest).then(() => true, () => false);
  const address = /^(\[[^\]]*\]|[^/:]*):([^/]*)(?:\/.*)?$/s.exec(dest);
  if (address && !exists && !/^(\.{0,2}[\\/]|[A-Za-z]:[\\/])/.test(dest)) {
    const [, host, port] = address;
    const goodHost = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)$/.test(host);
    const goodPort = /^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535;
    const example = `${goodHost ? host : '<host>'}:${goodPort ? port : '<port>'}/<name> (a local path with ':' in it: start it with ./)`;
    if (!goodHost) throw new SnapplaneError('INVALID', `bad host '${host}' in destination '${dest}': a remote volume is ${example}`);
    if (!goodPort) throw new SnapplaneError('INVALID', `bad port '${port}' in destination '${dest}': a number from 1 to 65535, as in ${example}`);
    throw new SnapplaneError('INVALID', `destination '${dest}' names a server but no volume on it: give a volume name: ${example}`);
  }
  if (keyFile) throw new SnapplaneError('INVALID', `a key file (--key-file) is for a remote destination (host:port/name); '${dest}' is a path on this host`);
}
