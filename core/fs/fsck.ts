/**
 * fsck: walks every tree of the committed state and of every snapshot and checks the invariants: each block
 * the active state uses is referenced exactly once and set in the active plane (no leak, no double use), every
 * checksum is valid, snapshot planes hold every block their trees use, the summary is the OR of the regular
 * snapshot planes, and both fsinfo copies agree.
 */
import type { FsckIssue, FsckReport } from '../api/types.js';
import { BLOCK_SIZE } from '../common/units.js';
import { SnapplaneError } from '../common/errors.js';
import { WORDS_PER_CHUNK } from '../planes/bit-plane.js';
import { SparsePlane } from '../planes/sparse-plane.js';
import {
  FSINFO_VBNS,
  INODES_PER_BLOCK,
  INODE_SIZE,
  InodeType,
  RESERVED_BLOCKS,
  SnapshotFlag,
  decodeDirectoryBlock,
  decodeFsinfo,
  decodeInode,
  type BlockPointer,
  type Inode,
  type StoredDirEntry,
} from './format.js';
import { InodeTable } from './inode-table.js';
import { walkTree } from './walk.js';
import type { Volume } from './volume.js';
import type { BlockMap } from './block-map.js';
import { cloneInode } from './format.js';

const MAX_ISSUES = 1000;
/** Blocks a snapshot plane may hold beyond its walkable trees: the snapshot table of its CP (≤ 64 leaves + indirects). */
const SNAPSHOT_TABLE_SLACK = 70;

interface Walked {
  plane: SparsePlane;
  files: number;
  dirs: number;
  symlinks: number;
}

/** Checks the volume; the report is machine-readable and `clean` only when no issue was found. */
export async function checkVolume(volume: Volume): Promise<FsckReport> {
  const issues: FsckIssue[] = [];
  const report = (i: FsckIssue): void => {
    if (issues.length < MAX_ISSUES) issues.push(i);
  };
  const blockCount = volume.fsinfo.blockCount;
  // A damaged block map leaves the planes unknown; every tree is still walked and its checksums checked.
  let map: BlockMap | null = null;
  try {
    map = await volume.planeMap();
  } catch (e) {
    if (!(e instanceof SnapplaneError) || (e.code !== 'CHECKSUM' && e.code !== 'IO')) throw e;
    report({ kind: e.code === 'CHECKSUM' ? 'checksum' : 'structure', message: `planes not checked: ${e.message}`, ...(e.vbn === undefined ? {} : { vbn: e.vbn }), path: 'block map' });
  }
  let unreadable = 0;

  // fsinfo copies
  const raw = await volume.device.readBlocks(FSINFO_VBNS[0], 2);
  const copies = [0, 1].map((k) => {
    try {
      return decodeFsinfo(raw.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE));
    } catch {
      return null;
    }
  });
  copies.forEach((c, k) => {
    if (!c) report({ kind: 'fsinfo', message: `fsinfo copy at VBN ${FSINFO_VBNS[k]} is unreadable (bad magic or checksum)`, vbn: FSINFO_VBNS[k] });
  });
  if (copies[0] && copies[1] && copies[0].generation !== copies[1].generation) {
    report({ kind: 'fsinfo', message: `fsinfo copies disagree: generation ${copies[0].generation} at VBN 0, ${copies[1].generation} at VBN 1` });
  }

  const walkState = async (name: string, inodeFile: Inode, inodeCount: number, verifyData: (vbn: number) => boolean): Promise<Walked> => {
    const plane = new SparsePlane();
    const w: Walked = { plane, files: 0, dirs: 0, symlinks: 0 };
    const visit = (label: string) => (p: BlockPointer) => {
      if (p.vbn < RESERVED_BLOCKS || p.vbn >= blockCount) {
        report({ kind: 'out-of-range', message: `${label} points at VBN ${p.vbn}, outside the volume`, vbn: p.vbn, path: label });
        return;
      }
      if (!plane.set(p.vbn)) report({ kind: 'double-use', message: `VBN ${p.vbn} is used twice in ${name} (again by ${label})`, vbn: p.vbn, path: label });
    };
    const onError = (label: string) => (e: SnapplaneError, p: BlockPointer) => {
      unreadable++;
      report({ kind: 'checksum', message: `${e.message}`, vbn: p.vbn, path: label });
    };
    const table = new InodeTable(cloneInode(inodeFile), inodeCount, volume.ctx, `inode file of ${name}`);
    await walkTree(inodeFile, volume.ctx, `inode file of ${name}`, visit(`inode file of ${name}`), { readData: true, onError: onError(`inode file of ${name}`) });
    const paths = new Map<number, string>([[1, '/']]);
    const blocks = Math.ceil(inodeCount / INODES_PER_BLOCK);
    for (let b = 0; b < blocks; b++) {
      let data: Buffer | null;
      try {
        data = await table.tree.readBlock(b);
      } catch {
        continue; // reported by the walk above
      }
      if (!data) continue;
      for (let r = 0; r < INODES_PER_BLOCK; r++) {
        const ino = b * INODES_PER_BLOCK + r;
        if (ino === 0 || ino >= inodeCount) continue;
        const inode = decodeInode(data, r * INODE_SIZE);
        if (inode.type === InodeType.Free) continue;
        if (inode.type === InodeType.Dir) w.dirs++;
        else if (inode.type === InodeType.Symlink) w.symlinks++;
        else if (inode.type === InodeType.File) w.files++;
        else {
          report({ kind: 'structure', message: `inode ${ino} in ${name} has unknown type ${inode.type}` });
          continue;
        }
        const label = paths.get(ino) ?? `inode ${ino}`;
        await walkTree(inode, volume.ctx, label, visit(label), { readData: true, skipData: (v) => !verifyData(v), onError: onError(label) });
        if (inode.type === InodeType.Dir) {
          try {
            const tree = await table.fileTree(ino, label);
            const entries: StoredDirEntry[] = [];
            for (const blk of await tree.readBlocks(0, tree.blockLength)) decodeDirectoryBlock(blk, entries);
            for (const e of entries) paths.set(e.inode, `${label === '/' ? '' : label}/${e.name}`);
          } catch (e) {
            if (!(e instanceof SnapplaneError && e.code === 'CHECKSUM')) {
              report({ kind: 'structure', message: `folder ${label} in ${name}: ${(e as Error).message}`, path: label });
            }
          }
        }
      }
    }
    return w;
  };

  // The committed active state, plus the block map file and the snapshot table.
  const active = await walkState('the active file system', volume.fsinfo.inodeFile, volume.fsinfo.inodeCount, () => true);
  for (let v = 0; v < RESERVED_BLOCKS; v++) active.plane.set(v);
  const metaVisit = (label: string) => (p: BlockPointer) => {
    if (p.vbn < RESERVED_BLOCKS || p.vbn >= blockCount) {
      report({ kind: 'out-of-range', message: `${label} points at VBN ${p.vbn}`, vbn: p.vbn });
      return;
    }
    if (!active.plane.set(p.vbn)) report({ kind: 'double-use', message: `VBN ${p.vbn} is used twice (again by ${label})`, vbn: p.vbn, path: label });
  };
  for (const [label, inode] of [
    ['block map', volume.fsinfo.blockMap],
    ['snapshot table', volume.fsinfo.snapshotTable],
  ] as const) {
    await walkTree(inode, volume.ctx, label, metaVisit(label), {
      readData: true,
      onError: (e, p) => {
        unreadable++;
        report({ kind: 'checksum', message: e.message, vbn: p.vbn, path: label });
      },
    });
  }
  if (!map) return finish(0);

  // Planes on disk against what the trees use, chunk by chunk (snapshot planes are never loaded whole).
  const zero = new Uint32Array(WORDS_PER_CHUNK);
  const chunkOf = async (plane: number, c: number): Promise<Uint32Array> => {
    const b = await map.readChunk(plane, c);
    return b ? new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + 4096)) : zero;
  };
  const chunks = map.active.chunks;
  // Under a block that cannot be read, the blocks it points at are not reached: set in the plane, used by no tree
  // that was read. Those are one finding, not one leak each.
  const hidden: number[] = [];
  const onLeak = unreadable > 0 ? (vbn: number) => hidden.push(vbn) : null;
  for (let c = 0; c < chunks; c++) {
    const used = active.plane.chunk(c) ?? zero;
    const onDisk = await chunkOf(0, c);
    if (used === zero && onDisk === zero) continue;
    compareChunk(c, used, onDisk, 'active', 0, report, onLeak);
  }
  if (hidden.length > 0) {
    report({ kind: 'leak', message: `${hidden.length} blocks (VBN ${hidden[0]}${hidden.length > 1 ? ` to ${hidden[hidden.length - 1]}` : ''}) are set in the active plane but no tree that could be read uses them: most likely the blocks under the unreadable block${unreadable > 1 ? 's' : ''} above`, vbn: hidden[0], plane: 0 });
  }

  // Snapshots: every block a snapshot's trees use is set in its plane; few others are.
  // A damaged snapshot table (reported by the walk above) leaves the snapshots unknown: only the active state is checked.
  const damage = volume.snapshots.damage;
  if (damage) report({ kind: 'structure', message: `snapshots not checked: ${damage.message}` });
  const regular = damage ? [] : volume.snapshots.list().filter((e) => !(e.flags & SnapshotFlag.shadow)); // shadows may lose blocks by design
  let snapshotsChecked = 0;
  for (const e of regular) {
    snapshotsChecked++;
    const walked = await walkState(`snapshot ${e.name}`, e.inodeFile, e.inodeCount, (v) => !active.plane.has(v));
    await walkTree(e.blockMap, volume.ctx, `block map of snapshot ${e.name}`, (p) => walked.plane.set(p.vbn), {
      onError: (err, p) => report({ kind: 'checksum', message: err.message, vbn: p.vbn }),
    });
    for (let v = 0; v < RESERVED_BLOCKS; v++) walked.plane.set(v);
    let missing = 0;
    let extra = 0;
    for (let c = 0; c < chunks; c++) {
      const need = walked.plane.chunk(c) ?? zero;
      if (need === zero && map.summary.chunkPopulation[c] === 0) continue;
      const have = await chunkOf(e.plane, c);
      for (let i = 0; i < WORDS_PER_CHUNK; i++) {
        if ((need[i] & ~have[i]) !== 0) {
          missing++;
          if (missing <= 5) {
            report({ kind: 'snapshot', message: `snapshot ${e.name}: blocks near VBN ${(c * WORDS_PER_CHUNK + i) * 32} are used by its trees but clear in its plane`, vbn: (c * WORDS_PER_CHUNK + i) * 32, plane: e.plane });
          }
        }
        let x = have[i] & ~need[i];
        while (x !== 0) {
          extra++;
          x &= x - 1;
        }
      }
    }
    if (extra > SNAPSHOT_TABLE_SLACK) {
      report({ kind: 'leak', message: `snapshot ${e.name}: ${extra} blocks set in its plane are not reachable from it`, plane: e.plane });
    }
  }

  // The summary is the OR of the regular snapshot planes.
  const or = new Uint32Array(WORDS_PER_CHUNK);
  for (let c = 0; c < chunks && !damage; c++) {
    const onDisk = await chunkOf(256, c);
    or.fill(0);
    for (const e of regular) {
      const w = await chunkOf(e.plane, c);
      if (w !== zero) for (let i = 0; i < WORDS_PER_CHUNK; i++) or[i] |= w[i];
    }
    for (let i = 0; i < WORDS_PER_CHUNK; i++) {
      if (or[i] !== onDisk[i]) {
        report({ kind: 'summary', message: `summary plane differs from the OR of snapshot planes in VBNs ${c * 32768}..${(c + 1) * 32768 - 1}`, vbn: c * 32768, plane: 256 });
        break;
      }
    }
  }

  return finish(snapshotsChecked);

  function finish(snapshotsChecked: number): FsckReport {
    return {
      volume: volume.label,
      clean: issues.length === 0,
      generation: volume.fsinfo.generation,
      issues,
      stats: {
        files: active.files,
        dirs: active.dirs,
        symlinks: active.symlinks,
        blocksReferenced: active.plane.count,
        planesChecked: map ? 2 + volume.snapshots.count : 0,
        snapshotsChecked,
      },
    };
  }
}

function compareChunk(c: number, used: Uint32Array, plane: Uint32Array, name: string, planeIndex: number, report: (i: FsckIssue) => void, onLeak: ((vbn: number) => void) | null = null): void {
  const base = c * WORDS_PER_CHUNK;
  for (let k = 0; k < WORDS_PER_CHUNK; k++) {
    if (used[k] === plane[k]) continue;
    const i = base + k;
    let leak = plane[k] & ~used[k];
    let missing = used[k] & ~plane[k];
    while (leak !== 0) {
      const t = leak & -leak;
      const vbn = i * 32 + (31 - Math.clz32(t));
      if (onLeak) onLeak(vbn);
      else report({ kind: 'leak', message: `VBN ${vbn} is set in the ${name} plane but no tree uses it`, vbn, plane: planeIndex });
      leak ^= t;
    }
    while (missing !== 0) {
      const t = missing & -missing;
      const vbn = i * 32 + (31 - Math.clz32(t));
      report({ kind: 'missing-in-plane', message: `VBN ${vbn} is used but clear in the ${name} plane`, vbn, plane: planeIndex });
      missing ^= t;
    }
  }
}
