/** Small shared pieces: notices, the capacity bar, a progress bar, a measured width, modal questions closed by Escape. */
import { useEffect, useState, type ReactNode } from 'react';
import { formatBytes, percent } from '../format.js';
import type { VolumeInfo } from '../../../core/api/index.js';

export function Notice({ kind, children, onClose }: { kind: 'ok' | 'error'; children: ReactNode; onClose?: () => void }) {
  return (
    <div className={`notice ${kind}`} role={kind === 'error' ? 'alert' : 'status'} data-testid={`notice-${kind}`}>
      <span>{children}</span>
      {onClose ? (
        <button className="link" onClick={onClose} aria-label="dismiss">
          ×
        </button>
      ) : null}
    </div>
  );
}

export function CapacityBar({ info }: { info: VolumeInfo }) {
  const total = info.blockCount;
  const parts = [
    { label: 'active', blocks: info.activeBlocks, bytes: info.activeBytes, cls: 'cap-active' },
    { label: 'held only by snapshots', blocks: info.snapshotOnlyBlocks, bytes: info.snapshotOnlyBytes, cls: 'cap-snap' },
    { label: 'free', blocks: info.freeBlocks, bytes: info.freeBytes, cls: 'cap-free' },
  ];
  return (
    <div data-testid="capacity">
      <div className="capbar">
        {parts.map((p) => (
          <div key={p.label} className={p.cls} style={{ width: `${percent(p.blocks, total)}%` }} title={`${p.label}: ${formatBytes(p.bytes)}`} />
        ))}
      </div>
      <ul className="caplegend">
        {parts.map((p) => (
          <li key={p.label}>
            <i className={p.cls} /> {p.label}: {formatBytes(p.bytes)} ({percent(p.blocks, total).toFixed(1)}%)
          </li>
        ))}
      </ul>
    </div>
  );
}

export function ProgressBar({ value, label }: { value: number; label?: string }) {
  return (
    <div className="progress" role="progressbar" aria-valuenow={Math.round(value)} aria-valuemin={0} aria-valuemax={100} aria-label={label}>
      <div style={{ width: `${Math.min(100, Math.max(0, value))}%` }} />
    </div>
  );
}

/** The width of an element (ResizeObserver where there is one); pass the returned callback as its `ref`. */
export function useWidth(fallback = 640): [(el: HTMLElement | null) => void, number] {
  const [el, setEl] = useState<HTMLElement | null>(null);
  const [w, setW] = useState(fallback);
  useEffect(() => {
    if (!el) return;
    const measure = (): void => setW(Math.max(200, el.clientWidth || fallback));
    measure();
    if (typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, [el, fallback]);
  return [setEl, w];
}

/** Calls `onEscape` when Escape is pressed anywhere while the calling component (a dialog) is shown. */
export function useEscape(onEscape: () => void): void {
  useEffect(() => {
    const key = (e: KeyboardEvent): void => {
      if (e.key === 'Escape') onEscape();
    };
    document.addEventListener('keydown', key);
    return () => document.removeEventListener('keydown', key);
  }, [onEscape]);
}

/** A modal question: its card over the page; Escape answers it with `onCancel`. */
export function Modal({ testId, onCancel, children }: { testId: string; onCancel: () => void; children: ReactNode }) {
  useEscape(onCancel);
  return (
    <div className="modal" role="dialog" aria-modal="true" data-testid={testId}>
      <div className="card">{children}</div>
    </div>
  );
}

/**
 * A question in a view's flow (a notice, not a modal): its words, the one action that answers yes (a dangerous one),
 * any milder answers (`extra`) and Cancel; Escape cancels too.
 */
export function Confirm({ testId, action, onConfirm, onCancel, focus = false, extra, children }: { testId: string; action: string; onConfirm: () => void; onCancel: () => void; focus?: boolean; extra?: ReactNode; children: ReactNode }) {
  useEscape(onCancel);
  return (
    <div className="notice confirm" role="alertdialog" data-testid={testId}>
      {children}{' '}
      <button className="danger" onClick={onConfirm} autoFocus={focus}>
        {action}
      </button>{' '}
      {extra ? <>{extra} </> : null}
      <button onClick={onCancel}>Cancel</button>
    </div>
  );
}
