/** The contract's data shapes: what the service facade returns to every front end (plain JSON-able objects). */

export type FileType = 'file' | 'dir' | 'symlink';

export interface MemberInfo {
  index: number;
  path: string;
  role: 'data' | 'parity' | 'single';
  state: 'ok' | 'missing' | 'failed' | 'rebuilding';
  /** Why a failed member was failed (a read error, a lost label, `raid fail`, missed writes; kept in the group's labels), or why a missing one is out (no image, a stale or cut-short one); absent when unknown. */
  failure?: string;
}

export interface VolumeInfo {
  path: string;
  uuid: string;
  formatVersion: number;
  blockSize: number;
  blockCount: number;
  sizeBytes: number;
  /** CP generation of the state shown. */
  generation: number;
  lastCpAt: string;
  /** Blocks in the active file system (plane 0). */
  activeBlocks: number;
  activeBytes: number;
  /** Blocks held only by snapshots (not in the active plane). */
  snapshotOnlyBlocks: number;
  snapshotOnlyBytes: number;
  freeBlocks: number;
  freeBytes: number;
  snapshotCount: number;
  /** Set when the snapshot table cannot be read: only the active file system is, read-only (snapshotCount is 0). */
  damage?: string;
  inodeCount: number;
  device: { kind: 'image' | 'raid4'; degraded: boolean; members: MemberInfo[] };
  /**
   * How this service has the volume open: for reading only (the first change opens it for writing; another
   * process may be its writer), always so at a snapshot. Not whether it can be written: see `mirrorOf`.
   */
  readOnly: boolean;
  /** Set when the volume was opened at a snapshot (`vol@snap`); the capacity figures above stay the volume's. */
  snapshot?: string;
  /** At a snapshot: when it was taken, the blocks it holds, and those only it holds (what deleting it frees). */
  snapshotFigures?: { createdAt: string; blocks: number; bytes: number; uniqueBlocks: number; uniqueBytes: number };
  /** The volume's mirror marker (a mirror destination, or one taken over on this host), or null; unset at a snapshot. */
  mirrorOf?: MirrorMarker | null;
  /** A full resync's copy being received beside the mirror to replace it (STREAM.md §5.6), or null; unset at a snapshot. */
  replacement?: { relationship: string; started: string; swapAsked?: string } | null;
}

export interface SnapshotFlags {
  shadow: boolean;
  master: boolean;
  hold: boolean;
  /** A shadow snapshot some of whose blocks were reused: no longer consistent, kept only as a record. */
  stale: boolean;
}

export interface SnapshotInfo {
  id: number;
  name: string;
  plane: number;
  createdAt: string;
  generation: number;
  flags: SnapshotFlags;
  /** Blocks set in this snapshot's plane. */
  blocks: number;
  /** Blocks set in this plane and in no other plane (active included): what deleting it alone frees. */
  uniqueBlocks: number;
  uniqueBytes: number;
}

export interface DirEntryInfo {
  name: string;
  path: string;
  type: FileType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: string;
  inode: number;
  /** Symbolic link target. */
  target?: string;
}

export interface SnapshotDiff {
  older: string;
  newer: string;
  added: string[];
  removed: string[];
  changed: string[];
  /** Inode-file blocks skipped because their pointers were equal in both snapshots. */
  sharedInodeBlocksSkipped: number;
  inodeBlocksCompared: number;
}

export interface FsckIssue {
  kind:
    | 'fsinfo'
    | 'checksum'
    | 'leak'
    | 'double-use'
    | 'missing-in-plane'
    | 'out-of-range'
    | 'structure'
    | 'snapshot'
    | 'summary';
  message: string;
  vbn?: number;
  path?: string;
  plane?: number;
}

export interface FsckReport {
  volume: string;
  clean: boolean;
  generation: number;
  issues: FsckIssue[];
  stats: {
    files: number;
    dirs: number;
    symlinks: number;
    blocksReferenced: number;
    planesChecked: number;
    snapshotsChecked: number;
  };
  /**
   * RAID-4: blocks whose copy on a member failed its checksum while fsck read them and were rebuilt from parity,
   * per member (rewritten there only when the volume was open for writing); absent when none. They do not make the
   * volume unclean (every block read back right), but that member holds bad copies until `raid scrub` rewrites them.
   */
  rebuiltFromParity?: { member: number; path: string; blocks: number; rewritten: boolean }[];
}

export interface PlaneInfo {
  plane: number;
  name: string;
  kind: 'active' | 'snapshot' | 'shadow';
  blocks: number;
  /** Blocks set only in this plane among active + all snapshot planes. */
  uniqueBlocks: number;
}

export interface CopySummary {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  /** Sockets, FIFOs and devices a put found and did not copy (they have no contents), and the first of them. */
  skipped?: number;
  firstSkipped?: string;
}

export interface ProgressEvent {
  phase: string;
  done: number;
  total: number;
  unit: 'blocks' | 'bytes' | 'files' | 'items';
}

/** A running transfer's latest progress as another process sees it, and when it was written. */
export interface TransferProgress extends ProgressEvent {
  at: string;
}

export interface RaidScrubReport {
  volume: string;
  stripes: number;
  /** Stripes whose parity was checked: those holding data (parity of a stripe with none is not kept up). */
  stripesChecked: number;
  /** Blocks whose copy on their member failed its checksum and were rebuilt from parity and rewritten. */
  dataBlocksRepaired: number;
  /** Stripes whose parity did not match their data and was rewritten. */
  parityStripesRepaired: number;
  /** Blocks that neither their member nor parity could give back intact. */
  unrepairable: { vbn: number; path: string; message: string }[];
  clean: boolean;
  degraded: boolean;
}

export interface SpaceReport {
  /** Snapshots whose deletion was evaluated. */
  deleting: string[];
  /** Blocks set in some plane of the set and in no other snapshot plane nor the active plane. */
  freedBlocks: number;
  freedBytes: number;
  perSnapshot: { name: string; uniqueBlocks: number; uniqueBytes: number }[];
  /** For each snapshot after the first: blocks in it that the previous snapshot did not hold. */
  writtenBetween: { older: string; newer: string; blocks: number; bytes: number }[];
}

export interface ScheduleInfo {
  label: string;
  /** "every 1h", "at 00:00", "at 00:00 on sunday". */
  cadence: string;
  keep: number;
  /** Its current slot has no snapshot yet: the next `schedule run` (or scheduler pass) takes one. */
  due: boolean;
  /** When the next snapshot is due: the start of the current slot when it has none yet (so in the past), else of the next one. */
  nextAt: string;
}

export interface ScheduleRunReport {
  volume: string;
  at: string;
  dryRun: boolean;
  /** Snapshots taken (or, in a dry run, that would be). */
  take: string[];
  /** Snapshots pruned (or that would be). */
  prune: string[];
  /** Snapshots retention would prune but a hold or guard keeps, with the reason. */
  kept: { name: string; reason: string }[];
  /** Exact bytes pruning frees, from the planes. */
  freedBytes: number;
}

/** `image eval`: what an expression selects. */
export interface ImageEvalReport {
  volume: string;
  /** The expression in canonical form. */
  expression: string;
  /** Blocks (and bytes) a stream of the image carries: the image's blocks less the fsinfo copies. */
  blocks: number;
  bytes: number;
  /** The fsinfo copies (VBN 0 and 1) the image holds, left out of `blocks`: no stream carries them (the receiver writes its own). */
  fsinfoBlocks: number;
  /** Each name of the expression and the plane it resolved to (`master` shows the snapshot it points at). */
  planes: { name: string; plane: number; snapshot: string | null }[];
  /** Whether the image can be streamed (a sum of snapshots minus at most one), and why not. */
  streamable: boolean;
  reason?: string;
  kind?: 'full' | 'incremental';
}

/** What both ends of a transfer report about the stream. */
export interface StreamSummary {
  volume: string;
  streamId: string;
  kind: 'full' | 'incremental';
  expression: string;
  base: string | null;
  /** Snapshots the stream carries, oldest first; `current` becomes the destination's state. */
  snapshots: string[];
  current: string;
  resumedFromVbn: number | null;
}

/** `send --dry-run` and the summary of a send: sizes are exact, from the planes. */
export interface SendReport extends StreamSummary {
  order: 'vbn' | 'raid' | 'tape';
  codec: 'none' | 'lz4';
  blocks: number;
  dataBytes: number;
  /** Bytes of the stream (exact without compression; with lz4, the uncompressed size on a dry run). */
  streamBytes: number;
  /** Stream bytes beyond the data, as a fraction of the data. */
  overhead: number;
  dryRun: boolean;
  target?: string;
}

export interface ReceiveReport extends StreamSummary {
  blocks: number;
  bytes: number;
  generation: number;
  created?: boolean;
  /** A restore that goes on: the volume had this backup's snapshots already, so nothing was received from it. */
  alreadyThere?: boolean;
  /** Snapshots the destination deleted before receiving because the source no longer has them. */
  dropped?: string[];
  /** A full resync: the snapshots of the mirror the whole copy took the place of. */
  replaced?: string[];
  /** A full resync of a mirror that replicates further (a cascade): whether each destination's base came through. */
  downstream?: DownstreamBase[];
}

/**
 * A destination a replaced mirror replicates to: its newest master (the base of its next incremental), and whether
 * the whole copy brought that master, so the next replication there is still incremental (if not, the copy no
 * longer holds anything for it: it needs a full copy into a new, empty volume).
 */
export interface DownstreamBase {
  destination: string;
  base: string | null;
  kept: boolean;
}

export interface BackupCheck {
  file: string;
  kind: 'full' | 'incremental';
  expression: string;
  base: string | null;
  snapshots: string[];
  sourceVolume: string;
  blocks: number;
  bytes: number;
  ok: boolean;
  error?: string;
}

/**
 * `verify`: each backup's check, and the chain's. `chain` is the chain fault (null when there is none);
 * `chainStatus` says whether the chain was checked: `restorable`; `broken` (the fault in `chain`); or `not-checked`
 * (it starts with an incremental, so only its own order was checked, or a backup failed), with why in `chainNote`.
 */
export interface VerifyReport {
  ok: boolean;
  chain: string | null;
  chainStatus: 'restorable' | 'broken' | 'not-checked';
  chainNote: string | null;
  backups: BackupCheck[];
}

/** A backup policy: one cadence per level, level 0 the rarest. */
export interface LevelPolicy {
  levels: { level: number; every: string; everyMs: number }[];
}

/** One backup point of a plan: a snapshot whose level-N image is backed up. */
export interface BackupPoint {
  snapshot: string;
  at: string;
  level: number;
  /** e.g. `June5 + June4 - June3` */
  expression: string;
  base: string | null;
  snapshots: string[];
  /** Exact, from the planes: what the stream's block records carry. */
  blocks: number;
  bytes: number;
}

/** `image plan`: the points, sizes per level and, for a date, the chain that restores it. */
export interface BackupPlan {
  volume: string;
  policy: LevelPolicy;
  points: BackupPoint[];
  /** Snapshots after the newest point: the next point will carry them. */
  unplanned: string[];
  totals: { level: number; points: number; bytes: number }[];
  restore?: { at: string; snapshot: string | null; chain: string[]; bytes: number };
}

/** A snapshot as both ends of a replication know it: the same name, CP generation and creation time. */
export interface SnapshotRef {
  id: number;
  name: string;
  generation: number;
  createdAtMs: number;
}

/** What a destination tells a source before a transfer (the seed's update request: its newest master). */
export interface DestinationStatus {
  volume: string;
  exists: boolean;
  uuid: string | null;
  blockCount: number | null;
  /** No snapshots and no files: a full stream may land here. */
  empty: boolean;
  snapshots: (SnapshotRef & { master: boolean })[];
  newestMaster: SnapshotRef | null;
  /** An interrupted receive: its token and the expression of its stream. */
  resume: { token: string; expression: string } | null;
  /** Set while the volume is the read-only destination of a mirror relationship (or was, until taken over on its host). */
  mirrorOf: MirrorMarker | null;
  /** A destination being updated from a shadow master is off-line (SPEC §2, the seed's shadow masters). */
  offline: string | null;
  /**
   * A full resync's whole copy being received beside the mirror (and its resume point, if it was interrupted);
   * absent from endpoints older than full resyncs that keep the old mirror.
   */
  replacement?: { resume: { token: string; expression: string } | null } | null;
  /**
   * The destination however its address is spelled (core/transfer/destination-identity.ts): `<endpoint id>/<name>`
   * from a serve endpoint, the real path of a local volume; absent from older endpoints.
   */
  id?: string | null;
}

/** The sidecar that keeps a mirror destination read-only until the relationship is broken. */
export interface MirrorMarker {
  relationship: string;
  source: string;
  sourceUuid: string;
  since: string;
  /**
   * When the mirror was taken over on its own host (`mirror break <volume>` there, where the relationship is not
   * known): the volume is writable, and the relationship's updates are refused until a resync.
   */
  brokenAt?: string;
}

/** `master list`: master snapshots, oldest first, with the destinations that still need each. */
export interface MasterInfo {
  name: string;
  createdAt: string;
  generation: number;
  shadow: boolean;
  /** The newest master: what the `master` named pointer resolves to. */
  pointer: boolean;
  /** Known destinations that have not moved past it; while any is listed, it cannot be deleted or unmarked. */
  neededBy: string[];
}

/** A destination the source has replicated to, with the newest master it holds. */
export interface KnownDestination {
  /** The address it was last reached by. */
  destination: string;
  /** Its identity (DestinationStatus.id), when its endpoint tells one: another spelling of it is the same record. */
  id?: string;
  master: SnapshotRef | null;
  updatedAt: string;
}

/** `replicate`: what was decided and sent. */
export interface ReplicateReport {
  source: string;
  destination: string;
  /** `none`: the destination already has the source's newest master. */
  kind: 'full' | 'incremental' | 'none';
  from: string | null;
  to: string;
  /** Why a full copy was chosen, or why nothing was sent. */
  reason: string;
  resumedFromVbn: number | null;
  blocks: number;
  bytes: number;
  /** Bytes that went over the wire (frames included; 0 for a local destination). */
  wireBytes: number;
  seconds: number;
  /** Set when the base was a shadow master: the destination was off-line during the update (STREAM.md §5.4). */
  offline?: string;
  /**
   * Master snapshots the destination deleted first because the source no longer has them; in a dry run, the ones
   * it would delete (unless held there or needed by its own destinations, which only it knows).
   */
  dropped?: string[];
  /** A dry run: what would be sent; nothing was. */
  dryRun?: true;
  /** A dry run: the exact size of the stream that would go (records included, wire frames not). */
  streamBytes?: number;
}

export type MirrorKind = 'full' | 'incremental' | 'replica';
export type MirrorState = 'uninitialized' | 'idle' | 'transferring' | 'lagging' | 'broken' | 'failed';

/** A relationship: source, destination, kind, schedule and state (`mirror status`). */
export interface MirrorInfo {
  name: string;
  kind: MirrorKind;
  source: string;
  destination: string;
  /** Incremental mirrors: where the base image lives (`file:<path>` or `tape:<folder>`). */
  slow: string | null;
  /** Its update schedule in words ("every 15m", "at 02:00", "at 03:30 on sunday"); null: updated by hand. */
  every: string | null;
  state: MirrorState;
  /** The newest snapshot both sides have. */
  lastCommon: string | null;
  lastTransferAt: string | null;
  lastTransferBytes: number;
  /** Why the last update failed, or what is wrong now (a source volume that no longer exists). */
  lastError: string | null;
  /** Time since the last common snapshot was taken, and blocks written on the source since. */
  lagSeconds: number | null;
  lagBlocks: number | null;
  /** How the last incremental chose its blocks: the mark-on-allocate images, or subtraction when they could not. */
  lastSelection: 'marks' | 'subtraction' | 'full' | null;
  nextAt: string | null;
  /** A full resync is under way: the next update copies the source whole beside the old mirror, which it then replaces. */
  replacing: boolean;
  /** --limit: bytes per second into the destination, or null for none. */
  limit: number | null;
  /** The pre-shared key file of a remote destination (null for a local one). */
  keyFile: string | null;
  /** While transferring: how far it got (written by the transferring process at most once a second), when known. */
  progress: TransferProgress | null;
}

/** A setting of a relationship `mirror set` changes: its schedule, bandwidth limit or key file. */
export type MirrorSetting = 'schedule' | 'limit' | 'keyFile';

/**
 * `mirror set`: the relationship as it is now, and each setting that changed with its value before and after
 * (schedule: in words as MirrorInfo.every, null for on demand; limit: bytes per second, null for none; keyFile: a path).
 */
export interface MirrorSetReport {
  mirror: MirrorInfo;
  changed: { setting: MirrorSetting; from: string | number | null; to: string | number | null }[];
  /** With --key-file for a remote destination: whether its endpoint took the key, or why it was not checked. */
  keyCheck?: { checked: boolean; message: string };
}

/** `mirror resync`: the update it ran, the common snapshot it rolled back to, and what the roll back discarded. */
export interface MirrorResyncReport extends MirrorUpdateReport {
  /** Null for a full resync (nothing in common: the source is copied whole). */
  common: string | null;
  /** The destination's snapshots newer than the common one. */
  discarded: string[];
  /** Blocks the destination had written after the common snapshot (not set by a full resync). */
  discardedBlocks?: number;
}

/** Options of `mirror resync`. */
export interface MirrorResyncOptions {
  /** Swap the direction: the old source becomes the mirror of the volume that took over. */
  reverse?: boolean;
  /** Copy the source whole beside the mirror, which the copy replaces (nothing in common any more). */
  full?: boolean;
  /** Roll back even what only the destination holds (otherwise refused with DIVERGED). */
  discard?: boolean;
}

/** `mirror update`: one transfer of a relationship. */
export interface MirrorUpdateReport {
  name: string;
  kind: MirrorKind;
  transfer: 'full' | 'incremental' | 'none';
  from: string | null;
  to: string;
  selection: 'marks' | 'subtraction' | 'full' | null;
  blocks: number;
  bytes: number;
  resumedFromVbn: number | null;
  seconds: number;
  /** Full mirrors: the snapshots this update brought to the mirror besides `to`, oldest first. */
  carried?: string[];
  /** Full mirrors: snapshots the mirror deleted because the source had deleted them. */
  dropped?: string[];
  /**
   * The snapshot of an interrupted update this one finished first (resuming what had landed), before sending what
   * is newer up to `to`; `from`, `blocks`, `bytes` and `resumedFromVbn` cover both.
   */
  finished?: string;
  /** A full resync's copy took the old mirror's place: the old mirror's snapshots, which went with it. */
  replaced?: string[];
  /** ... and the destinations the mirror replicates to, with whether their base came through. */
  downstream?: DownstreamBase[];
  /** Incremental mirrors: blocks and bytes the sparse incremental structure holds after the update. */
  deltaBlocks?: number;
  deltaBytes?: number;
  /**
   * `mirror update --dry-run`: what an update would send now (its snapshot `to` not taken yet: the source as of its
   * last CP stands in); nothing was taken, sent or recorded.
   */
  dryRun?: true;
}
