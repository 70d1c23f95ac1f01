/**
 * Which transfers go around the page cache (O_DIRECT; the aligned memory is core/common/aligned-buffers.ts). Only
 * bulk ones: a small one (an hourly incremental) may find its blocks cached, and its receive reads back the
 * metadata it just wrote. Measured on this project's test machine: bench/RESULTS.md, 2026-12-01 17:17 and after.
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

/** True when a receive of `blocks` blocks in `runs` runs writes them around the page cache. */
export function writesAroundPageCache(blocks: number, runs: number, bulkBlocks = BULK_TRANSFER_BLOCKS): boolean {
  return blocks >= bulkBlocks && runs > 0 && blocks / runs >= MIN_DIRECT_RUN;
}
