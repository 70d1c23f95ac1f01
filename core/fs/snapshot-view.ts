/** Read-only views of a snapshot's (or the committed active) file system: its inode table and namespace. */
import { SnapplaneError } from '../common/errors.js';
import { InodeTable } from './inode-table.js';
import { Namespace } from './namespace.js';
import { SnapshotFlag, cloneInode, type SnapshotEntry } from './format.js';
import type { Volume } from './volume.js';

export interface TreeView {
  name: string;
  inodes: InodeTable;
  ns: Namespace;
  entry: SnapshotEntry | null;
}

/** A view of snapshot `name`, or of the last committed active state for `active`. */
export function openView(volume: Volume, name: string): TreeView {
  if (name === 'active') {
    const inodes = new InodeTable(cloneInode(volume.fsinfo.inodeFile), volume.fsinfo.inodeCount, volume.ctx);
    return { name, inodes, ns: new Namespace(inodes, volume.label), entry: null };
  }
  const entry = volume.snapshots.byName(name, volume.label);
  if (entry.flags & SnapshotFlag.stale) {
    throw new SnapplaneError('INVALID', `shadow snapshot '${name}' is no longer consistent (its blocks were reused)`, { volume: volume.label, snapshot: name });
  }
  const inodes = new InodeTable(cloneInode(entry.inodeFile), entry.inodeCount, volume.ctx);
  return { name, inodes, ns: new Namespace(inodes, volume.label), entry };
}
