/** How much of a volume's active file system was written since one of its snapshots. */
import type { Volume } from '../fs/volume.js';
import { parseImageExpr, quoteName } from './expression.js';
import { bindNames, evaluateBound } from './evaluate.js';

/**
 * Blocks of `active - <snapshot>`, leaving out the volume's bookkeeping (its block map and snapshot table, which
 * every CP that changes a plane or a snapshot rewrites): the blocks its files gained or rewrote since the snapshot.
 */
export async function blocksWrittenSince(v: Volume, snapshot: string): Promise<number> {
  const expr = parseImageExpr(`active - ${quoteName(snapshot)}`);
  const image = await v.exclusive(async () => evaluateBound(expr, bindNames(expr, '', v.snapshots.list(), v.label), await v.planeMap()));
  try {
    const bookkeeping = (await v.bookkeepingBlocks()).filter((vbn) => image.plane.has(vbn)).length;
    return image.blocks - bookkeeping;
  } finally {
    image.plane.release();
  }
}
