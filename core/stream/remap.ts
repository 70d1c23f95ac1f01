/**
 * Copying to a volume of another size: image blocks whose VBN does not exist on the destination move to free
 * VBNs there, and every pointer to them is rewritten, bottom-up, so each parent's checksum matches its child's new
 * contents. Shared subtrees (snapshots share blocks) are fixed once: the result depends only on the block.
 */
import { SnapplaneError } from '../common/errors.js';
import { blockChecksum } from '../common/checksum.js';
import { BITS_PER_CHUNK, forEachSetBit } from '../planes/bit-plane.js';
import { SparsePlane } from '../planes/sparse-plane.js';
import { INODES_PER_BLOCK, INODE_SIZE, InodeType, POINTERS_PER_BLOCK, RESERVED_BLOCKS, cloneInode, decodeInode, encodeInode, readPointer, writePointer, type BlockPointer, type Inode } from '../fs/format.js';
import type { BlockDevice } from '../device/block-device.js';

/** Source VBN → destination VBN for the blocks that move; every other VBN keeps its number. */
export type Remap = Map<number, number>;

/**
 * Chooses new homes below `blockCount` for image blocks at or above it, among VBNs that are neither in the image,
 * nor reserved, nor `avoid`ed; keeps `spare` blocks free for the destination's own metadata.
 */
export function planRemap(image: SparsePlane, blockCount: number, avoid: (vbn: number) => boolean, spare: number, volume: string): Remap {
  const moving: number[] = [];
  for (const c of image.chunkIndexes()) {
    if ((c + 1) * BITS_PER_CHUNK <= blockCount) continue;
    forEachSetBit(image.chunk(c)!, c * BITS_PER_CHUNK, (v) => {
      if (v >= blockCount) moving.push(v);
    });
  }
  const map: Remap = new Map();
  let cursor = RESERVED_BLOCKS;
  for (const v of moving) {
    while (cursor < blockCount && (image.has(cursor) || avoid(cursor))) cursor++;
    if (cursor >= blockCount) break;
    map.set(v, cursor++);
  }
  let free = 0;
  for (let v = cursor; v < blockCount && free < spare; v++) if (!image.has(v) && !avoid(v)) free++;
  if (map.size < moving.length || free < spare) {
    throw new SnapplaneError('LIMIT', `'${volume}' has ${blockCount} blocks: too few for the ${image.count} blocks of this image plus room for its metadata`, { volume });
  }
  return map;
}

/** A plane in destination coordinates. */
export function remapPlane(plane: SparsePlane | Map<number, Uint32Array>, map: Remap): SparsePlane {
  const out = new SparsePlane();
  const chunks = plane instanceof SparsePlane ? plane.chunkIndexes().map((c) => [c, plane.chunk(c)!] as const) : [...plane.entries()];
  for (const [c, w] of chunks) forEachSetBit(w, c * BITS_PER_CHUNK, (v) => out.set(map.get(v) ?? v));
  return out;
}

/** Rewrites pointers under roots after the image's blocks landed at their destination VBNs. */
export class PointerFixer {
  private readonly memo = new Map<number, BlockPointer>();

  constructor(
    private readonly device: BlockDevice,
    private readonly map: Remap,
    private readonly volume: string,
  ) {}

  private async read(vbn: number, checksum: number): Promise<Buffer> {
    const b = Buffer.from(await this.device.readBlocks(vbn, 1));
    if (blockChecksum(b) !== checksum) throw new SnapplaneError('BAD_STREAM', `block at VBN ${vbn} does not match its pointer's checksum while remapping`, { volume: this.volume, vbn });
    return b;
  }

  /** The pointer to a block of a tree of `kind`, after its subtree moved; `level` 0 is a data block. */
  async pointer(p: BlockPointer, level: number, kind: 'file' | 'inodes'): Promise<BlockPointer> {
    if (p.vbn === 0) return p;
    const vbn = this.map.get(p.vbn) ?? p.vbn;
    if (level === 0 && kind === 'file') return { vbn, checksum: p.checksum };
    const done = this.memo.get(p.vbn);
    if (done) return done;
    const block = await this.read(vbn, p.checksum);
    let changed = false;
    if (level > 0) {
      for (let s = 0; s < POINTERS_PER_BLOCK; s++) {
        const child = readPointer(block, s);
        if (child.vbn === 0) continue;
        const fixed = await this.pointer(child, level - 1, kind);
        if (fixed.vbn !== child.vbn || fixed.checksum !== child.checksum) {
          writePointer(block, s, fixed);
          changed = true;
        }
      }
    } else {
      // An inode-file block: every inode's own tree.
      for (let r = 0; r < INODES_PER_BLOCK; r++) {
        const inode = decodeInode(block, r * INODE_SIZE);
        if (inode.type === InodeType.Free) continue;
        const fixed = await this.inode(inode, 'file');
        if (fixed.pointers.some((q, j) => q.vbn !== inode.pointers[j].vbn || q.checksum !== inode.pointers[j].checksum)) {
          encodeInode(fixed, block, r * INODE_SIZE);
          changed = true;
        }
      }
    }
    if (changed) await this.device.writeBlocks(vbn, block);
    const result = { vbn, checksum: changed ? blockChecksum(block) : p.checksum };
    this.memo.set(p.vbn, result);
    return result;
  }

  /** An inode whose tree moved: its top pointers rewritten. */
  async inode(inode: Inode, kind: 'file' | 'inodes'): Promise<Inode> {
    const out = cloneInode(inode);
    for (let j = 0; j < out.pointers.length; j++) out.pointers[j] = await this.pointer(inode.pointers[j], inode.height, kind);
    return out;
  }
}
