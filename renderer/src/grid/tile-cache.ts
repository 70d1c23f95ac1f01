/**
 * Tiles of the grid, fetched from the engine (aggregated densities for a tile's rows and every column's plane) and
 * kept per zoom level; each tile is drawn once into a small bitmap (one pixel per column and row) that the canvas
 * scales into place, so a frame costs a few drawImage calls whatever the zoom.
 */
import type { PlaneTiles } from '../../../core/api/index.js';
import { TILE_ROWS } from './geometry.js';

export interface Tile {
  key: string;
  blocksPerRow: number;
  index: number;
  rows: number;
  validRows: number;
  planes: number[];
  /** Plane-major densities. */
  densities: Uint8Array;
  image: Uint8Array | null;
  bitmap: CanvasImageSource | null;
}

export function decodeBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function tileKey(scope: string, blocksPerRow: number, index: number): string {
  return `${scope}|${blocksPerRow}|${index}`;
}

export function tileFrom(key: string, index: number, t: PlaneTiles): Tile {
  return {
    key,
    blocksPerRow: t.blocksPerRow,
    index,
    rows: t.rows,
    validRows: t.validRows,
    planes: t.planes,
    densities: decodeBase64(t.densities),
    image: t.image === null ? null : decodeBase64(t.image),
    bitmap: null,
  };
}

/** Density of plane column `k` at `row` of a tile. */
export function densityAt(tile: Tile, k: number, row: number): number {
  return tile.densities[k * tile.rows + row] ?? 0;
}

/** A bounded map of tiles, least recently used dropped first. */
export class TileCache {
  private readonly tiles = new Map<string, Tile>();
  private readonly inflight = new Set<string>();
  constructor(private readonly limit = 512) {}

  get(key: string): Tile | undefined {
    const t = this.tiles.get(key);
    if (t) {
      this.tiles.delete(key);
      this.tiles.set(key, t);
    }
    return t;
  }

  put(tile: Tile): void {
    this.tiles.set(tile.key, tile);
    this.inflight.delete(tile.key);
    while (this.tiles.size > this.limit) this.tiles.delete(this.tiles.keys().next().value as string);
  }

  isLoading(key: string): boolean {
    return this.inflight.has(key);
  }

  markLoading(key: string): void {
    this.inflight.add(key);
  }

  failed(key: string): void {
    this.inflight.delete(key);
  }

  get loading(): number {
    return this.inflight.size;
  }

  clear(): void {
    this.tiles.clear();
    this.inflight.clear();
  }
}

export { TILE_ROWS };
