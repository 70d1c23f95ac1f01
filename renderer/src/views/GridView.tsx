/** View 2: the bit-plane grid. Columns are planes (active, then snapshots oldest first), rows are blocks. */
import { useEffect, useRef, useState, type KeyboardEvent, type MouseEvent as ReactMouseEvent, type WheelEvent } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { axisStep, columnColor, columnWidth, drawFrame, COLORS } from '../grid/draw.js';
import { zoomOf } from '../grid/geometry.js';
import { formatCount } from '../format.js';
import { gridColumns, tileAt, usePlanes } from '../stores/planes.js';
import { dataMembers, selectColumns, useVolumes } from '../stores/volumes.js';
import { useUi } from '../stores/ui.js';
import { useSnapshots } from '../stores/snapshots.js';
import { densityAt } from '../grid/tile-cache.js';
import { TILE_ROWS } from '../grid/geometry.js';

function makeCanvas(w: number, h: number): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

/** The planes that hold blocks in the hovered row, from the tile already on screen. */
function planesInRow(vbn: number): string[] {
  const p = usePlanes.getState();
  const z = zoomOf(p.level);
  const row = Math.floor(vbn / z.blocksPerRow);
  const tile = tileAt(p, Math.floor(row / TILE_ROWS));
  if (!tile) return [];
  const cols = gridColumns();
  return cols.filter((_, k) => densityAt(tile, k, row % TILE_ROWS) > 0).map((c) => c.name);
}

function GridCanvas() {
  const wrap = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const frame = useRef(0);
  const drag = useRef<{ y: number; moved: boolean } | null>(null);
  const [size, setSize] = useState({ w: 800, h: 600 });

  // Size: the canvas fills its box.
  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const measure = (): void => {
      const w = Math.max(100, Math.floor(el.clientWidth));
      const h = Math.max(100, Math.floor(el.clientHeight));
      setSize({ w, h });
      usePlanes.getState().setSize(w, h);
    };
    measure();
    if (typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // Draw on every change of the view, the data or the tiles, at most once per animation frame.
  useEffect(() => {
    const schedule = (): void => {
      if (frame.current) return;
      frame.current = requestAnimationFrame(() => {
        frame.current = 0;
        const c = canvas.current;
        const ctx = c?.getContext('2d');
        if (!c || !ctx) return;
        const p = usePlanes.getState();
        const v = useVolumes.getState();
        const columns = gridColumns();
        const dpr = window.devicePixelRatio || 1;
        ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
        const missing = drawFrame(ctx, {
          width: p.width,
          height: p.height,
          blockCount: v.info?.blockCount ?? 0,
          blockSize: v.info?.blockSize ?? 4096,
          topVbn: p.topVbn,
          zoom: zoomOf(p.level),
          columns,
          withImage: p.highlight !== null,
          selectedColumn: p.selectedPlane === null ? null : columns.findIndex((x) => x.plane === p.selectedPlane),
          hoverVbn: p.hover?.vbn ?? null,
          tile: (i) => tileAt(p, i),
          makeCanvas,
        });
        c.dataset.missingTiles = String(missing);
        c.dataset.frames = String(Number(c.dataset.frames ?? '0') + 1);
        if (missing > 0) p.ensureTiles();
      });
    };
    schedule();
    const offP = usePlanes.subscribe(schedule);
    const offV = useVolumes.subscribe(schedule);
    return () => {
      offP();
      offV();
      if (frame.current) cancelAnimationFrame(frame.current);
      frame.current = 0;
    };
  }, [size]);

  const p = usePlanes(useShallow((s) => ({ level: s.level, topVbn: s.topVbn, highlight: s.highlight, selectedPlane: s.selectedPlane })));
  const columns = useVolumes(useShallow(selectColumns));
  const z = zoomOf(p.level);
  const ncol = columns.length + (p.highlight ? 1 : 0);
  const colW = columnWidth(size.w, ncol);
  const dpr = typeof window === 'undefined' ? 1 : window.devicePixelRatio || 1;

  const columnAt = (x: number): number | null => {
    const k = Math.floor(x / colW);
    return k >= 0 && k < columns.length ? k : null;
  };
  const local = (e: ReactMouseEvent | WheelEvent): { x: number; y: number } => {
    const r = (e.currentTarget as HTMLElement).getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  };

  // The wheel scrolls, as in every long list; Ctrl (or Cmd) + wheel zooms about the pointer, as a touchpad's pinch
  // does (browsers send a pinch as a wheel event with ctrlKey).
  const onWheel = (e: WheelEvent): void => {
    const { y } = local(e);
    if (e.ctrlKey || e.metaKey) usePlanes.getState().zoomBy(e.deltaY > 0 ? 1 : -1, y);
    else usePlanes.getState().panPixels(e.deltaMode === 1 ? e.deltaY * 16 : e.deltaMode === 2 ? e.deltaY * size.h : e.deltaY);
  };
  const onMouseDown = (e: ReactMouseEvent): void => {
    drag.current = { y: e.clientY, moved: false };
  };
  const onMouseMove = (e: ReactMouseEvent): void => {
    const { x, y } = local(e);
    if (drag.current && e.buttons === 1) {
      const dy = drag.current.y - e.clientY;
      if (Math.abs(dy) > 0) {
        drag.current = { y: e.clientY, moved: true };
        usePlanes.getState().panPixels(dy);
      }
      return;
    }
    usePlanes.getState().hoverAt(x, y, columnAt(x));
  };
  const onMouseUp = (e: ReactMouseEvent): void => {
    const d = drag.current;
    drag.current = null;
    if (d && !d.moved) {
      const k = columnAt(local(e).x);
      if (k !== null) usePlanes.getState().selectPlane(columns[k].plane);
    }
  };
  const onKey = (e: KeyboardEvent): void => {
    const s = usePlanes.getState();
    const page = s.height * 0.9;
    const handled = (() => {
      switch (e.key) {
        case '+':
        case '=':
          s.zoomBy(-1);
          return true;
        case '-':
        case '_':
          s.zoomBy(1);
          return true;
        case 'ArrowDown':
          s.panPixels(page / 10);
          return true;
        case 'ArrowUp':
          s.panPixels(-page / 10);
          return true;
        case 'PageDown':
          s.panPixels(page);
          return true;
        case 'PageUp':
          s.panPixels(-page);
          return true;
        case 'Home':
          s.goTo(0);
          return true;
        case 'End':
          s.goTo(Number.MAX_SAFE_INTEGER);
          return true;
        case '0':
          s.fit();
          return true;
        case 'ArrowLeft':
        case 'ArrowRight': {
          const i = columns.findIndex((c) => c.plane === s.selectedPlane);
          const next = e.key === 'ArrowLeft' ? Math.max(0, i - 1) : Math.min(columns.length - 1, i + 1);
          if (columns[next]) s.selectPlane(columns[next].plane);
          return true;
        }
        default:
          return false;
      }
    })();
    if (handled) e.preventDefault();
  };

  return (
    <div className="grid-area">
      <div className="grid-header" style={{ width: colW * ncol }}>
        {columns.map((c) => (
          <button
            key={c.plane}
            className={`grid-col${p.selectedPlane === c.plane ? ' selected' : ''}`}
            style={{ width: colW, borderTopColor: `rgb(${columnColor(c).join(',')})` }}
            title={`${c.name}: ${formatCount(c.blocks)} blocks, ${formatCount(c.uniqueBlocks)} held alone`}
            onClick={() => usePlanes.getState().selectPlane(c.plane)}
            data-testid={`grid-col-${c.name}`}
          >
            {colW >= 14 ? c.name : ''}
          </button>
        ))}
        {p.highlight ? (
          <span className="grid-col image" style={{ width: colW, borderTopColor: `rgb(${COLORS.image.join(',')})` }} title={`storage image: ${p.highlight}`}>
            {colW >= 14 ? 'image' : ''}
          </span>
        ) : null}
      </div>
      <div
        className="grid-canvas-wrap"
        ref={wrap}
        tabIndex={0}
        onKeyDown={onKey}
        onWheel={onWheel}
        onMouseDown={onMouseDown}
        onMouseMove={onMouseMove}
        onMouseUp={onMouseUp}
        onMouseLeave={() => {
          drag.current = null;
          usePlanes.getState().clearHover();
        }}
        data-testid="grid"
        aria-label="bit-plane grid: the wheel, arrows and PageUp/PageDown scroll, Ctrl+wheel and + and - zoom, 0 fits, left/right select a column"
      >
        <canvas
          ref={canvas}
          width={size.w * dpr}
          height={size.h * dpr}
          style={{ width: size.w, height: size.h }}
          data-testid="grid-canvas"
          data-level={p.level}
          data-top-vbn={p.topVbn}
          data-blocks-per-row={z.blocksPerRow}
          data-row-height={z.rowHeight}
          data-col-width={colW}
          data-axis-step={axisStep(z)}
          data-columns={JSON.stringify(columns.map((c) => c.name))}
        />
        <HoverTip />
      </div>
    </div>
  );
}

function HoverTip() {
  const hover = usePlanes((s) => s.hover);
  const info = usePlanes((s) => s.hoverInfo);
  if (!hover) return null;
  const vbns = hover.count > 1 ? `VBN ${formatCount(hover.vbn)}–${formatCount(hover.vbn + hover.count - 1)}` : `VBN ${formatCount(hover.vbn)}`;
  return (
    <div className="grid-tip" style={{ left: hover.x + 16, top: hover.y + 12 }} data-testid="grid-tip">
      <div>{vbns}</div>
      <div className="muted">{info ? (info.owner ? ownerText(info.owner) : 'free (no plane holds it)') : 'looking up…'}</div>
    </div>
  );
}

function ownerText(o: { kind: string; path: string | null; indirect: boolean; state: string }): string {
  const what = o.kind === 'file' || o.kind === 'dir' || o.kind === 'symlink' ? `${o.path ?? '(unreachable)'} (${o.kind}${o.indirect ? ', pointer block' : ''})` : `${o.kind}${o.indirect ? ' (pointer block)' : ''}`;
  return `${what}${o.state !== 'active' ? ` in ${o.state}` : ''}`;
}

function BlockPanel() {
  const hover = usePlanes((s) => s.hover);
  const info = usePlanes((s) => s.hoverInfo);
  const error = usePlanes((s) => s.hoverError);
  const vinfo = useVolumes((s) => s.info);
  if (!hover) return <p className="muted">Point at a row to see its blocks: VBN, member and stripe, the planes that hold it and the file that owns it.</p>;
  const n = dataMembers(vinfo);
  const target = info?.vbn ?? hover.vbn;
  return (
    <dl className="facts" data-testid="block-panel">
      <dt>VBN</dt>
      <dd>{hover.count > 1 ? `${formatCount(hover.vbn)} – ${formatCount(hover.vbn + hover.count - 1)} (${formatCount(hover.count)} blocks; ${info && info.planes.length === 0 ? 'none used' : `details of ${formatCount(target)}, the first used`})` : formatCount(hover.vbn)}</dd>
      <dt>Member</dt>
      <dd>{n > 0 ? `data member ${target % n}, stripe ${formatCount(Math.floor(target / n))}` : `single image, disk block ${formatCount(target)}`}</dd>
      <dt>Planes</dt>
      <dd data-testid="block-planes">{info ? info.planes.map((p) => p.name).join(', ') || 'none (free)' : planesInRow(hover.vbn).join(', ') || 'none'}</dd>
      <dt>Owner</dt>
      <dd data-testid="block-owner">{error ? <span className="error">{error}</span> : info ? (info.owner ? ownerText(info.owner) : 'free') : '…'}</dd>
    </dl>
  );
}

function SelectedColumn() {
  const plane = usePlanes((s) => s.selectedPlane);
  const snapshots = useVolumes((s) => s.snapshots);
  const planes = useVolumes((s) => s.planes);
  const p = planes.find((x) => x.plane === plane);
  if (!p) return <p className="muted">Click a column to select its plane.</p>;
  const snap = snapshots.find((s) => s.plane === plane);
  return (
    <div data-testid="selected-column">
      <h3>{p.name}</h3>
      <p>
        {formatCount(p.blocks)} blocks, {formatCount(p.uniqueBlocks)} held by it alone{snap ? `; taken ${snap.createdAt.slice(0, 16).replace('T', ' ')}` : ''}
      </p>
      {snap ? (
        <button
          onClick={() => {
            void useSnapshots.getState().browse(snap.name);
            useUi.getState().show('snapshots');
          }}
        >
          Browse {snap.name}
        </button>
      ) : null}
    </div>
  );
}

export function GridView() {
  const info = useVolumes((s) => s.info);
  const level = usePlanes((s) => s.level);
  const highlight = usePlanes((s) => s.highlight);
  const tileError = usePlanes((s) => s.tileError);
  const imageError = usePlanes((s) => s.imageError);
  const z = zoomOf(level);
  const [vbnError, setVbnError] = useState<string | null>(null);
  if (!info) return <p className="muted">Open a volume first (Volumes).</p>;
  return (
    <div className="grid-view">
      <div className="toolbar">
        <h1 className="inline">Bit-plane grid</h1>
        <button onClick={() => usePlanes.getState().zoomBy(-1)} title="zoom in (+, or Ctrl+wheel)" data-testid="zoom-in">
          +
        </button>
        <button onClick={() => usePlanes.getState().zoomBy(1)} title="zoom out (-, or Ctrl+wheel)" data-testid="zoom-out">
          −
        </button>
        <button onClick={() => usePlanes.getState().fit()} title="whole volume (0)">
          Fit
        </button>
        <span className="muted" data-testid="zoom-label">
          {z.blocksPerRow === 1 ? `1 block per row, ${z.rowHeight} px` : `${formatCount(z.blocksPerRow)} blocks per pixel row`} · {formatCount(info.blockCount)} blocks
        </span>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const text = String(new FormData(e.currentTarget).get('vbn') ?? '').trim();
            // A VBN is a whole number below the volume's block count: anything else is said, not guessed at.
            const v = /^\d+$/.test(text) ? Number(text) : NaN;
            if (!(v < info.blockCount)) {
              setVbnError(`'${text}' is not a VBN of this volume (0 to ${formatCount(info.blockCount - 1)})`);
              return;
            }
            setVbnError(null);
            usePlanes.getState().goTo(v);
          }}
        >
          <input name="vbn" placeholder="go to VBN" size={10} data-testid="goto-vbn" onChange={() => setVbnError(null)} />
          {vbnError ? (
            <span className="error" role="alert" data-testid="goto-vbn-error">
              {' '}
              {vbnError}
            </span>
          ) : null}
        </form>
        {highlight ? (
          <span className="chip image-chip" title="the composer's storage image is the orange column">
            image: {highlight}{' '}
            <button className="link" onClick={() => usePlanes.getState().setHighlight(null)}>
              hide
            </button>
          </span>
        ) : null}
        {highlight && imageError ? (
          <span className="error" data-testid="image-error">
            image not drawn: {imageError}
          </span>
        ) : null}
        {tileError ? <span className="error">{tileError}</span> : null}
      </div>
      <div className="grid-body">
        <GridCanvas />
        <aside className="grid-side">
          <h3>Block</h3>
          <BlockPanel />
          <h3>Column</h3>
          <SelectedColumn />
          <h3>Legend</h3>
          <ul className="legend">
            <li>
              <i style={{ background: `rgb(${COLORS.active.join(',')})` }} /> active file system
            </li>
            <li>
              <i style={{ background: `rgb(${COLORS.snapshot.join(',')})` }} /> snapshot
            </li>
            <li>
              <i style={{ background: `rgb(${COLORS.shadow.join(',')})` }} /> shadow snapshot
            </li>
            <li>
              <i style={{ background: `rgb(${COLORS.image.join(',')})` }} /> storage image (composer)
            </li>
            <li className="muted">brighter = more of the row's blocks set</li>
          </ul>
        </aside>
      </div>
    </div>
  );
}
