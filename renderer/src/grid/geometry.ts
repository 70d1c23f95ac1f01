/**
 * Grid geometry: zoom levels, rows and tiles. Rows are blocks (or block ranges): zoom level z < 0 draws one block
 * per row, 2^-z pixels tall; z ≥ 0 draws 2^z blocks per one-pixel row (each pixel the density of its range).
 */

/** Rows per tile: the engine is asked for tiles of this many rows at one zoom level. */
export const TILE_ROWS = 256;
export const MIN_ZOOM = -4;

export interface Zoom {
  blocksPerRow: number;
  rowHeight: number;
}

export function zoomOf(level: number): Zoom {
  return level < 0 ? { blocksPerRow: 1, rowHeight: 2 ** -level } : { blocksPerRow: 2 ** level, rowHeight: 1 };
}

/** The smallest zoom level (closest view) at which the whole volume fits `height` pixels. */
export function fitLevel(blockCount: number, height: number): number {
  for (let z = MIN_ZOOM; z < 60; z++) {
    const { blocksPerRow, rowHeight } = zoomOf(z);
    if ((Math.ceil(blockCount / blocksPerRow) * rowHeight) <= Math.max(1, height)) return z;
  }
  return 60;
}

/** Largest useful zoom level: the whole volume in one row's worth or less. */
export function maxLevel(blockCount: number): number {
  return Math.max(0, Math.ceil(Math.log2(Math.max(1, blockCount))));
}

/** Keeps the top of the view inside the volume (a little slack past the end is allowed). */
export function clampTop(topVbn: number, blockCount: number, zoom: Zoom, height: number): number {
  const visibleBlocks = (height / zoom.rowHeight) * zoom.blocksPerRow;
  const max = Math.max(0, blockCount - visibleBlocks * 0.5);
  return Math.min(Math.max(0, topVbn), max);
}

/** The VBN at pixel row `y` of the view. */
export function vbnAt(y: number, topVbn: number, zoom: Zoom): number {
  const row = Math.floor(topVbn / zoom.blocksPerRow + y / zoom.rowHeight);
  return row * zoom.blocksPerRow;
}

/** The tiles a view of `height` pixels needs at its zoom, first to last. */
export function visibleTiles(topVbn: number, height: number, zoom: Zoom, blockCount: number): number[] {
  const firstRow = Math.floor(topVbn / zoom.blocksPerRow);
  const lastRow = Math.min(Math.ceil(blockCount / zoom.blocksPerRow) - 1, Math.floor(topVbn / zoom.blocksPerRow + height / zoom.rowHeight));
  const out: number[] = [];
  for (let t = Math.floor(firstRow / TILE_ROWS); t <= Math.floor(lastRow / TILE_ROWS); t++) if (t >= 0) out.push(t);
  return out;
}

/** Zooming to `level` keeps the block under pixel row `anchorY` where it is. */
export function zoomAround(topVbn: number, anchorY: number, from: Zoom, to: Zoom): number {
  const anchorVbn = topVbn + (anchorY / from.rowHeight) * from.blocksPerRow;
  return anchorVbn - (anchorY / to.rowHeight) * to.blocksPerRow;
}
