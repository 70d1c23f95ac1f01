/** Drawing the grid: tile bitmaps (one pixel per column and row) scaled into place, column gaps, selection, hover. */
import type { PlaneInfo } from '../../../core/api/index.js';
import { TILE_ROWS, visibleTiles, type Zoom } from './geometry.js';
import type { Tile } from './tile-cache.js';
import { formatBytes, formatCount } from '../format.js';

export const COLORS = {
  background: [16, 23, 34],
  pastEnd: [34, 28, 40],
  empty: [22, 31, 45],
  active: [77, 163, 255],
  snapshot: [63, 201, 126],
  shadow: [154, 165, 177],
  image: [255, 159, 67],
  loading: [28, 36, 50],
} as const satisfies Record<string, readonly [number, number, number]>;

export type Rgb = readonly [number, number, number];

/** The color of a cell of density `d` (1..255) in a column of color `full`; 255 is `full` exactly. */
export function cellColor(d: number, full: Rgb): Rgb {
  if (d <= 0) return COLORS.empty;
  const f = 0.3 + (0.7 * d) / 255;
  const base = COLORS.empty;
  return [Math.round(base[0] + (full[0] - base[0]) * f), Math.round(base[1] + (full[1] - base[1]) * f), Math.round(base[2] + (full[2] - base[2]) * f)];
}

export function columnColor(p: PlaneInfo): Rgb {
  return p.kind === 'active' ? COLORS.active : p.kind === 'shadow' ? COLORS.shadow : COLORS.snapshot;
}

/** Pixels kept right of the columns for the VBN axis (its ticks and labels). */
export const AXIS_WIDTH = 132;
/** Fewest pixels between two labelled ticks of the axis. */
const TICK_SPACING = 48;

/** Pixel width of a column for `columns` columns in a view `width` pixels wide (the axis keeps its room). */
export function columnWidth(width: number, columns: number): number {
  return Math.max(2, Math.min(64, Math.floor((width - AXIS_WIDTH) / Math.max(1, columns))));
}

/**
 * Blocks between two ticks of the VBN axis at `zoom`: a power of two (so ticks fall on round sizes, 1 MiB = 256
 * blocks) at least TICK_SPACING pixels apart.
 */
export function axisStep(zoom: Zoom): number {
  const fewest = (TICK_SPACING * zoom.blocksPerRow) / zoom.rowHeight;
  return 2 ** Math.max(0, Math.ceil(Math.log2(Math.max(1, fewest))));
}

/**
 * An axis label: the VBN, and the byte offset it starts at when `withBytes` (ticks a whole number of MiB apart:
 * finer ones would repeat the same rounded offset).
 */
export function axisLabel(vbn: number, blockSize: number, withBytes: boolean): string {
  return withBytes ? `${formatCount(vbn)} · ${formatBytes(vbn * blockSize)}` : formatCount(vbn);
}

/** Renders a tile into a bitmap: column k is pixel x = k, row r is pixel y = r. */
export function tileBitmap(tile: Tile, columns: PlaneInfo[], withImage: boolean, makeCanvas: (w: number, h: number) => HTMLCanvasElement): HTMLCanvasElement {
  const ncol = columns.length + (withImage ? 1 : 0);
  const canvas = makeCanvas(ncol, tile.rows);
  const ctx = canvas.getContext('2d');
  if (!ctx) return canvas;
  const img = ctx.createImageData(ncol, tile.rows);
  const px = img.data;
  for (let r = 0; r < tile.rows; r++) {
    for (let k = 0; k < ncol; k++) {
      let c: Rgb;
      if (r >= tile.validRows) c = COLORS.pastEnd;
      else if (k < columns.length) c = cellColor(tile.densities[k * tile.rows + r], columnColor(columns[k]));
      else c = cellColor(tile.image ? tile.image[r] : 0, COLORS.image);
      const o = (r * ncol + k) * 4;
      px[o] = c[0];
      px[o + 1] = c[1];
      px[o + 2] = c[2];
      px[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

export interface Frame {
  width: number;
  height: number;
  blockCount: number;
  /** Bytes per block (the axis gives byte offsets too). */
  blockSize: number;
  topVbn: number;
  zoom: Zoom;
  columns: PlaneInfo[];
  withImage: boolean;
  selectedColumn: number | null;
  hoverVbn: number | null;
  tile(index: number): Tile | undefined;
  makeCanvas(w: number, h: number): HTMLCanvasElement;
}

function rgb(c: Rgb): string {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Draws one frame; returns how many visible tiles were missing. */
export function drawFrame(ctx: CanvasRenderingContext2D, f: Frame): number {
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = rgb(COLORS.background);
  ctx.fillRect(0, 0, f.width, f.height);
  const ncol = f.columns.length + (f.withImage ? 1 : 0);
  if (ncol === 0 || f.blockCount === 0) return 0;
  const colW = columnWidth(f.width, ncol);
  const gridW = colW * ncol;
  const rowTop = f.topVbn / f.zoom.blocksPerRow;
  let missing = 0;
  for (const t of visibleTiles(f.topVbn, f.height, f.zoom, f.blockCount)) {
    const y = (t * TILE_ROWS - rowTop) * f.zoom.rowHeight;
    const tile = f.tile(t);
    if (!tile) {
      missing++;
      ctx.fillStyle = rgb(COLORS.loading);
      ctx.fillRect(0, y, gridW, TILE_ROWS * f.zoom.rowHeight);
      continue;
    }
    tile.bitmap ??= tileBitmap(tile, f.columns, f.withImage, f.makeCanvas);
    ctx.drawImage(tile.bitmap, 0, 0, ncol, tile.rows, 0, y, gridW, tile.rows * f.zoom.rowHeight);
  }
  // Past the end of the volume.
  const endY = (Math.ceil(f.blockCount / f.zoom.blocksPerRow) - rowTop) * f.zoom.rowHeight;
  if (endY < f.height) {
    ctx.fillStyle = rgb(COLORS.background);
    ctx.fillRect(0, Math.max(0, endY), f.width, f.height - Math.max(0, endY));
  }
  // Column gaps (one pixel at the left edge of each column, when columns are wide enough).
  if (colW >= 4) {
    ctx.fillStyle = rgb(COLORS.background);
    for (let k = 0; k <= ncol; k++) ctx.fillRect(k * colW, 0, 1, Math.min(f.height, endY));
  }
  if (f.withImage) {
    ctx.fillStyle = rgb(COLORS.image);
    ctx.fillRect(f.columns.length * colW, 0, 1, Math.min(f.height, endY));
  }
  if (f.selectedColumn !== null && f.selectedColumn < f.columns.length) {
    ctx.strokeStyle = '#ffffff';
    ctx.lineWidth = 1;
    ctx.strokeRect(f.selectedColumn * colW + 0.5, 0.5, colW - 1, Math.min(f.height, endY) - 1);
  }
  drawAxis(ctx, f, gridW, rowTop, endY);
  if (f.hoverVbn !== null) {
    const y = (f.hoverVbn / f.zoom.blocksPerRow - rowTop) * f.zoom.rowHeight;
    ctx.strokeStyle = 'rgba(255,255,255,0.7)';
    ctx.strokeRect(0.5, Math.floor(y) - 0.5, gridW - 1, Math.max(1, f.zoom.rowHeight) + 1);
  }
  return missing;
}

/**
 * The VBN axis right of the columns: a tick and label every axisStep blocks, and the volume's end, so a position
 * on the grid reads without pointing at it.
 */
function drawAxis(ctx: CanvasRenderingContext2D, f: Frame, gridW: number, rowTop: number, endY: number): void {
  const x = gridW + 4;
  const step = axisStep(f.zoom);
  const bytes = (step * f.blockSize) % (1 << 20) === 0;
  const yOf = (vbn: number): number => (vbn / f.zoom.blocksPerRow - rowTop) * f.zoom.rowHeight;
  ctx.font = '11px system-ui, sans-serif';
  ctx.textBaseline = 'middle';
  ctx.fillStyle = 'rgb(120,134,152)';
  ctx.fillRect(x, 0, 1, Math.max(0, Math.min(f.height, endY)));
  const first = Math.ceil(f.topVbn / step) * step;
  for (let v = first; v < f.blockCount; v += step) {
    const y = Math.floor(yOf(v));
    if (y > f.height) break;
    // No label crowding the end's.
    if (endY - y < 14 && endY <= f.height) break;
    ctx.fillRect(x, y, 6, 1);
    ctx.fillText(axisLabel(v, f.blockSize, bytes), x + 9, Math.max(6, y + 0.5));
  }
  if (endY >= 0 && endY <= f.height) {
    ctx.fillRect(x, Math.floor(endY) - 1, 6, 1);
    ctx.fillText(`${axisLabel(f.blockCount, f.blockSize, true)} end`, x + 9, Math.min(f.height - 6, endY));
  }
}
