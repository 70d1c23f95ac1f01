/** The current state a receive commits: which blocks the newest received snapshot's files use. */
import { RESERVED_BLOCKS, cloneInode, type Inode } from '../fs/format.js';
import { collectChangedState, collectState } from '../fs/restore.js';
import { InodeTable } from '../fs/inode-table.js';
import { Namespace } from '../fs/namespace.js';
import { BitPlane, WORDS_PER_CHUNK } from '../planes/bit-plane.js';
import type { SparsePlane } from '../planes/sparse-plane.js';
import type { Volume } from '../fs/volume.js';
import type { StreamSnapshot } from './format.js';

/**
 * The blocks of the received snapshot `top` (its inode file at `topInodeFile`), for the destination's active
 * plane. After an incremental (`baseFiles`: the blocks the base's files used), those the new snapshot's plane
 * still holds are kept and only the new tree parts (blocks of `image`) are walked; a full stream's tree is walked
 * whole. Throws when the received tree does not read back.
 */
export async function receivedState(volume: Volume, top: StreamSnapshot, topInodeFile: Inode, topPlane: Map<number, Uint32Array>, baseFiles: BitPlane | null, image: SparsePlane): Promise<BitPlane> {
  const inodes = new InodeTable(cloneInode(topInodeFile), top.inodeCount, volume.ctx);
  const state = new BitPlane(volume.blockMap!.blockCount);
  for (let v = 0; v < RESERVED_BLOCKS; v++) state.set(v);
  const view = { name: top.name, inodes, ns: new Namespace(inodes, volume.label), entry: null };
  if (!baseFiles) {
    await collectState(volume, view, state);
    return state;
  }
  for (let c = 0; c < baseFiles.chunks; c++) {
    if (baseFiles.chunkPopulation[c] === 0) continue;
    const t = topPlane.get(c);
    if (!t) continue;
    const b = baseFiles.chunkWords(c);
    const im = image.chunk(c);
    const w = state.chunkWords(c);
    for (let i = 0; i < WORDS_PER_CHUNK; i++) w[i] |= b[i] & t[i] & ~(im ? im[i] : 0);
    state.recount(c, false);
  }
  await collectChangedState(volume, view, state, (v) => image.has(v));
  return state;
}
