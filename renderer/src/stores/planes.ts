/**
 * The bit-plane grid's state: zoom level and position, the selected column, the hover and its block details, and
 * the tiles the engine sent for the visible range (fetched on demand, a few at a time, never whole planes).
 */
import { create } from 'zustand';
import type { BlockInfo, PlaneInfo } from '../../../core/api/index.js';
import { errorText } from '../client/client.js';
import { client } from '../client/current.js';
import { TILE_ROWS, clampTop, fitLevel, maxLevel, MIN_ZOOM, vbnAt, visibleTiles, zoomAround, zoomOf, type Zoom } from '../grid/geometry.js';
import { TileCache, tileFrom, tileKey, type Tile } from '../grid/tile-cache.js';
import { selectColumns, useVolumes } from './volumes.js';

export interface Hover {
  /** First block of the hovered row, and how many blocks the row covers. */
  vbn: number;
  count: number;
  /** Column index (into the grid's columns), or null over the image column / outside. */
  column: number | null;
  x: number;
  y: number;
}

export interface PlanesState {
  level: number;
  topVbn: number;
  width: number;
  height: number;
  /** The volume (and data version) the position belongs to; a new volume starts fitted. */
  fittedFor: string | null;
  selectedPlane: number | null;
  hover: Hover | null;
  hoverInfo: BlockInfo | null;
  hoverError: string | null;
  /** The storage image drawn as an extra column (set by the image composer). */
  highlight: string | null;
  /** Bumped when a tile arrives. */
  tilesVersion: number;
  tileError: string | null;
  /** Why the highlighted image is not drawn (the planes are). */
  imageError: string | null;
  setSize(width: number, height: number): void;
  zoomBy(steps: number, anchorY?: number): void;
  setLevel(level: number, anchorY?: number): void;
  panPixels(dy: number): void;
  goTo(vbn: number): void;
  fit(): void;
  selectPlane(plane: number | null): void;
  hoverAt(x: number, y: number, column: number | null): void;
  clearHover(): void;
  setHighlight(expression: string | null): void;
  ensureTiles(): void;
}

export const tileCache = new TileCache();
const MAX_IN_FLIGHT = 4;
let hoverTimer: ReturnType<typeof setTimeout> | null = null;
let hoverSeq = 0;

/** The columns the grid shows for the current volume. */
export function gridColumns(): PlaneInfo[] {
  return selectColumns(useVolumes.getState());
}

/** Identifies the data a tile shows: volume, data version, columns, highlighted image. */
export function tileScope(highlight: string | null): string {
  const v = useVolumes.getState();
  return `${v.current}|${v.version}|${gridColumns()
    .map((p) => p.plane)
    .join(',')}|${highlight ?? ''}`;
}

export function currentZoom(s: Pick<PlanesState, 'level'>): Zoom {
  return zoomOf(s.level);
}

/** The cached tile at `index` for the current scope and zoom, if it arrived. */
export function tileAt(s: Pick<PlanesState, 'level' | 'highlight'>, index: number): Tile | undefined {
  return tileCache.get(tileKey(tileScope(s.highlight), zoomOf(s.level).blocksPerRow, index));
}

export const usePlanes = create<PlanesState>()((set, get) => {
  const blockCount = (): number => useVolumes.getState().info?.blockCount ?? 0;
  const reposition = (level: number, topVbn: number): void => {
    const lv = Math.max(MIN_ZOOM, Math.min(maxLevel(blockCount()), level));
    set({ level: lv, topVbn: clampTop(topVbn, blockCount(), zoomOf(lv), get().height) });
    get().ensureTiles();
    // A wheel zoom or pan moves other blocks under the resting pointer: the details follow them.
    const h = get().hover;
    if (h) get().hoverAt(h.x, h.y, h.column);
  };
  return {
    level: 0,
    topVbn: 0,
    width: 800,
    height: 600,
    fittedFor: null,
    selectedPlane: null,
    hover: null,
    hoverInfo: null,
    hoverError: null,
    highlight: null,
    tilesVersion: 0,
    tileError: null,
    imageError: null,

    setSize(width, height) {
      if (width === get().width && height === get().height) return;
      set({ width, height });
      const cur = useVolumes.getState().current;
      if (get().fittedFor !== cur && blockCount() > 0) get().fit();
      else get().ensureTiles();
    },

    zoomBy(steps, anchorY) {
      get().setLevel(get().level + steps, anchorY);
    },

    setLevel(level, anchorY) {
      const s = get();
      const y = anchorY ?? s.height / 2;
      const to = Math.max(MIN_ZOOM, Math.min(maxLevel(blockCount()), level));
      reposition(to, zoomAround(s.topVbn, y, zoomOf(s.level), zoomOf(to)));
    },

    panPixels(dy) {
      const s = get();
      const z = zoomOf(s.level);
      reposition(s.level, s.topVbn + (dy / z.rowHeight) * z.blocksPerRow);
    },

    goTo(vbn) {
      reposition(get().level, vbn);
    },

    fit() {
      const n = blockCount();
      set({ fittedFor: useVolumes.getState().current });
      reposition(fitLevel(n, get().height), 0);
    },

    selectPlane(plane) {
      set({ selectedPlane: plane });
    },

    hoverAt(x, y, column) {
      const s = get();
      const z = zoomOf(s.level);
      const vbn = vbnAt(y, s.topVbn, z);
      const n = blockCount();
      if (vbn < 0 || vbn >= n) {
        get().clearHover();
        return;
      }
      const count = Math.min(z.blocksPerRow, n - vbn);
      const prev = s.hover;
      set({ hover: { vbn, count, column, x, y } });
      if (prev && prev.vbn === vbn && prev.count === count) return;
      // Block details (owner, planes, member) come from the engine once the pointer rests.
      set({ hoverInfo: null, hoverError: null });
      if (hoverTimer) clearTimeout(hoverTimer);
      const seq = ++hoverSeq;
      hoverTimer = setTimeout(() => {
        const volume = useVolumes.getState().current;
        if (!volume) return;
        client()
          .call('blockInfo', { volume, vbn, count })
          .then(
            (info) => {
              if (seq === hoverSeq) set({ hoverInfo: info });
            },
            (e: unknown) => {
              if (seq === hoverSeq) set({ hoverError: errorText(e) });
            },
          );
      }, 120);
    },

    clearHover() {
      if (hoverTimer) clearTimeout(hoverTimer);
      hoverSeq++;
      set({ hover: null, hoverInfo: null, hoverError: null });
    },

    setHighlight(expression) {
      set({ highlight: expression, imageError: null });
      get().ensureTiles();
    },

    ensureTiles() {
      const s = get();
      const vol = useVolumes.getState();
      const volume = vol.current;
      const n = blockCount();
      if (!volume || n === 0 || vol.planes.length === 0) return;
      const z = zoomOf(s.level);
      const scope = tileScope(s.highlight);
      const planes = gridColumns().map((p) => p.plane);
      const wanted = visibleTiles(s.topVbn, s.height, z, n);
      // One tile beyond each end, so a pan finds its next rows ready.
      const lastTile = Math.floor((Math.ceil(n / z.blocksPerRow) - 1) / TILE_ROWS);
      if (wanted.length > 0) {
        if (wanted[0] > 0) wanted.push(wanted[0] - 1);
        if (wanted[wanted.length - 1] < lastTile) wanted.push(wanted[wanted.length - 1] + 1);
      }
      for (const index of wanted) {
        if (tileCache.loading >= MAX_IN_FLIGHT) break;
        const key = tileKey(scope, z.blocksPerRow, index);
        if (tileCache.get(key) || tileCache.isLoading(key)) continue;
        tileCache.markLoading(key);
        const args = { volume, firstVbn: index * TILE_ROWS * z.blocksPerRow, blocksPerRow: z.blocksPerRow, rows: TILE_ROWS, planes, ...(s.highlight ? { expression: s.highlight } : {}) };
        client()
          .call('planeTiles', args)
          .then(
            (t) => {
              tileCache.put(tileFrom(key, index, t));
              set({ tilesVersion: get().tilesVersion + 1, tileError: null, imageError: t.imageError ?? null });
              get().ensureTiles();
            },
            (e: unknown) => {
              tileCache.failed(key);
              set({ tileError: errorText(e) });
            },
          );
      }
    },
  };
});

// A new data version (a change on the volume) drops the tiles of older versions and fetches the view again.
useVolumes.subscribe((v, prev) => {
  if (v.version !== prev.version || v.current !== prev.current) {
    if (v.current !== prev.current) {
      tileCache.clear();
      // The composer's image is made of another volume's snapshots: it goes with the switch.
      usePlanes.setState({ selectedPlane: null, hover: null, hoverInfo: null, fittedFor: null, highlight: null, imageError: null });
    }
    const p = usePlanes.getState();
    if (p.fittedFor !== v.current && v.info) p.fit();
    else p.ensureTiles();
  }
});
