/**
 * Which transfers go around the page cache (O_DIRECT; the aligned memory is core/common/aligned-buffers.ts). Bulk
 * ones, and receives of 16 MiB or more that keep copies of their metadata for reading their tree back: a small
 * send may find its blocks cached. Measured on this project's test machine: bench/RESULTS.md, 2026-12-01 17:17
 * and after.
 */

/** Transfers of at least this many blocks (256 MiB) are bulk. */
export const BULK_TRANSFER_BLOCKS = 65536;

/**
 * Shortest average run (in blocks) a receive writes around the page cache: an aged volume's image is many short
 * runs, and each short direct write waits for the disk where the cache would merge them (an aged 4 GiB image:
 * 31 s written around the cache, 14 s through it).
 */
const MIN_DIRECT_RUN = 32;

/**
 * True when a send of `blocks` blocks reads them around the page cache. Whatever its runs: its reads are merged
 * across small gaps and kept 8 in flight (an aged 4 GiB source: 17-21 s through the cache, 14 s around it).
 */
export function readsAroundPageCache(blocks: number, bulkBlocks = BULK_TRANSFER_BLOCKS): boolean {
  return blocks >= bulkBlocks;
}

/**
 * A smaller receive of at least this many blocks (16 MiB) writes around the page cache too when it keeps copies of
 * the blocks that can be metadata (core/fs/landed-blocks.ts), so reading its tree back costs no disk read: its
 * final flush then has almost nothing left to write (a 1% incremental of 4 GiB, 50 MiB in 52 runs: 23-27 ms
 * through the cache, 2-5 ms around it).
 */
const KEPT_DIRECT_BLOCKS = 4096;

/**
 * True when a receive of `blocks` blocks in `runs` runs writes them around the page cache; `kept`: it keeps copies
 * of those that can be metadata, so reading its tree back costs no disk read.
 */
export function writesAroundPageCache(blocks: number, runs: number, kept: boolean, bulkBlocks = BULK_TRANSFER_BLOCKS): boolean {
  if (runs === 0 || blocks / runs < MIN_DIRECT_RUN) return false;
  return blocks >= bulkBlocks || (kept && blocks >= Math.min(bulkBlocks, KEPT_DIRECT_BLOCKS));
}
