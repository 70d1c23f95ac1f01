/**
 * View 3: the image composer. Snapshot chips are dragged (or clicked) into an expression with +, - and &; the
 * engine evaluates it live (blocks, bytes, streamable or why not); the grid shows it as an orange column; an
 * expression can be saved, and "Send…" starts a transfer job of it.
 */
import { useEffect, useState, type DragEvent } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { Notice } from '../components/common.js';
import { formatBytes, formatCount } from '../format.js';
import { chipsToText, selectExpression, useImages, type Chip } from '../stores/images.js';
import { useJobs } from '../stores/jobs.js';
import { usePlanes } from '../stores/planes.js';
import { useUi } from '../stores/ui.js';
import { useVolumes } from '../stores/volumes.js';

const CHIP_TYPE = 'application/x-snapplane-chip';

function chipLabel(c: Chip): string {
  return c.kind === 'name' ? c.name : c.op;
}

const OP_TITLES = { '+': 'union', '-': 'difference', '&': 'intersection', '(': 'group', ')': 'group' } as const;

/** A chip of the palette: dragged, clicked, or reached with Tab and added with Enter or Space. */
function PaletteChip({ chip, testId, title }: { chip: Chip; testId: string; title: string }) {
  const add = (): void => useImages.getState().addChip(chip);
  return (
    <span
      className={`chip ${chip.kind}`}
      role="button"
      tabIndex={0}
      draggable
      onDragStart={(e: DragEvent) => {
        e.dataTransfer.setData(CHIP_TYPE, JSON.stringify(chip));
        e.dataTransfer.effectAllowed = 'copy';
      }}
      onClick={add}
      onKeyDown={(e) => {
        if (e.key !== 'Enter' && e.key !== ' ') return;
        e.preventDefault();
        add();
      }}
      data-testid={testId}
      title={title}
    >
      {chipLabel(chip)}
    </span>
  );
}

function Palette() {
  const snapshots = useVolumes((s) => s.snapshots);
  const names: Chip[] = [{ kind: 'name', name: 'active' }, ...snapshots.map((s): Chip => ({ kind: 'name', name: s.name }))];
  const ops = (['+', '-', '&', '(', ')'] as const).map((op) => ({ kind: 'op' as const, op }));
  return (
    <div className="palette" data-testid="palette">
      <div>
        {names.map((c) => (
          <PaletteChip key={chipLabel(c)} chip={c} testId={`chip-${chipLabel(c)}`} title="drag into the expression, click, or press Enter" />
        ))}
      </div>
      <div>
        {ops.map((c) => (
          <PaletteChip key={c.op} chip={c} testId={`op-${c.op}`} title={OP_TITLES[c.op]} />
        ))}
      </div>
    </div>
  );
}

function Expression() {
  const chips = useImages((s) => s.chips);
  const error = useImages((s) => s.error);
  const text = chipsToText(chips);
  const [editing, setEditing] = useState<string | null>(null);
  const drop = (at: number) => (e: DragEvent) => {
    e.preventDefault();
    e.stopPropagation();
    const raw = e.dataTransfer.getData(CHIP_TYPE);
    if (!raw) return;
    try {
      useImages.getState().addChip(JSON.parse(raw) as Chip, at);
    } catch {
      // not one of our chips
    }
  };
  return (
    <div>
      <div className="dropzone" onDragOver={(e) => e.preventDefault()} onDrop={drop(chips.length)} data-testid="expression-drop">
        {chips.length === 0 ? <span className="muted">Drag snapshot chips here (or click them)</span> : null}
        {chips.map((c, i) => (
          <span key={i} className={`chip ${c.kind}`} onDragOver={(e) => e.preventDefault()} onDrop={drop(i)}>
            {chipLabel(c)}
            <button className="link" onClick={() => useImages.getState().removeChip(i)} aria-label={`remove ${chipLabel(c)}`}>
              ×
            </button>
          </span>
        ))}
      </div>
      <label className="block">
        Expression{' '}
        <input
          className="mono wide"
          value={editing ?? text}
          onChange={(e) => setEditing(e.target.value)}
          onBlur={() => {
            if (editing !== null) useImages.getState().setText(editing);
            setEditing(null);
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && editing !== null) {
              useImages.getState().setText(editing);
              setEditing(null);
            }
          }}
          data-testid="expression-text"
        />
      </label>
      {error ? (
        <div className="notice error" role="alert" data-testid="expression-error">
          <div>{error.message}</div>
          {error.column !== null ? (
            <pre className="mono caret">
              {text}
              {'\n'}
              {' '.repeat(Math.max(0, error.column - 1))}^
            </pre>
          ) : null}
        </div>
      ) : null}
    </div>
  );
}

function Result() {
  const r = useImages((s) => s.result);
  const evaluating = useImages((s) => s.evaluating);
  const highlight = usePlanes((s) => s.highlight);
  if (!r) return evaluating ? <p className="muted">evaluating…</p> : null;
  return (
    <div className="result" data-testid="image-result">
      <div className="big" data-testid="image-blocks" data-blocks={r.blocks}>
        {formatCount(r.blocks)} blocks · {formatBytes(r.bytes)}
      </div>
      {r.fsinfoBlocks > 0 ? (
        <div className="muted" data-testid="image-fsinfo">
          as a stream carries it: the {r.fsinfoBlocks} fsinfo block{r.fsinfoBlocks === 1 ? '' : 's'} (VBN 0 and 1) left out, the receiver writes its own; the grid&apos;s column shows them
        </div>
      ) : null}
      <div className="muted">
        {r.expression} —{' '}
        {r.streamable ? `streamable as ${r.kind === 'incremental' ? 'an incremental' : 'a full'} image` : <span className="warn">not streamable: {r.reason}</span>}
      </div>
      <div className="muted">{r.planes.map((p) => `${p.name} → plane ${p.plane}${p.snapshot && p.snapshot !== p.name ? ` (${p.snapshot})` : ''}`).join(', ')}</div>
      <label>
        <input type="checkbox" checked={highlight === r.expression} onChange={(e) => usePlanes.getState().setHighlight(e.target.checked ? r.expression : null)} data-testid="highlight" /> show on the grid
      </label>{' '}
      <button
        className="link"
        onClick={() => {
          usePlanes.getState().setHighlight(r.expression);
          useUi.getState().show('grid');
        }}
      >
        open the grid
      </button>
    </div>
  );
}

function Saved() {
  const saved = useImages((s) => s.saved);
  const error = useImages((s) => s.savedError);
  const [name, setName] = useState('');
  const canSave = useImages((s) => s.result !== null);
  return (
    <section>
      <h3>Saved images</h3>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void useImages
            .getState()
            .save(name)
            .then((ok) => ok && setName(''));
        }}
      >
        <input value={name} onChange={(e) => setName(e.target.value)} placeholder="name" required name="imageName" /> <button disabled={!canSave}>Save the expression</button>
      </form>
      {error ? <Notice kind="error">{error}</Notice> : null}
      <ul className="plain">
        {saved.map((s) => (
          <li key={s.name}>
            <b>{s.name}</b> <span className="mono">{s.expression}</span>{' '}
            <button className="link" onClick={() => useImages.getState().setText(s.expression)}>
              load
            </button>{' '}
            <button className="link" onClick={() => void useImages.getState().remove(s.name)}>
              delete
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

function Send() {
  const r = useImages((s) => s.result);
  const expression = useImages(useShallow(selectExpression));
  const volume = useVolumes((s) => s.current);
  const [open, setOpen] = useState(false);
  const [kind, setKind] = useState<'backup' | 'copy'>('backup');
  const [target, setTarget] = useState('');
  const [started, setStarted] = useState<string | null>(null);
  const error = useJobs((s) => s.error);
  if (!r || !volume) return null;
  return (
    <section>
      <button disabled={!r.streamable} onClick={() => setOpen(!open)} title={r.streamable ? '' : r.reason} data-testid="send-open">
        Send…
      </button>
      {open ? (
        <form
          className="card"
          onSubmit={(e) => {
            e.preventDefault();
            void useJobs
              .getState()
              .start(kind === 'backup' ? { kind: 'backup', volume, expression, file: target } : { kind: 'copy', source: volume, destination: target, expression })
              .then((j) => {
                if (j) {
                  setStarted(`job ${j.id} started: ${j.title}`);
                  setOpen(false);
                }
              });
          }}
          data-testid="send-form"
        >
          <label>
            To{' '}
            <select value={kind} onChange={(e) => setKind(e.target.value as 'backup' | 'copy')} name="kind">
              <option value="backup">a backup file</option>
              <option value="copy">another volume (copy)</option>
            </select>
          </label>
          <label>
            {kind === 'backup' ? 'File' : 'Volume'} <input value={target} onChange={(e) => setTarget(e.target.value)} required placeholder={kind === 'backup' ? '/backups/june.level0' : '/data/copy.img'} name="target" />
          </label>
          <button type="submit">Start</button>
        </form>
      ) : null}
      {started ? (
        <Notice kind="ok" onClose={() => setStarted(null)}>
          {started}{' '}
          <button className="link" onClick={() => useUi.getState().show('jobs')}>
            see Jobs
          </button>
        </Notice>
      ) : null}
      {error ? <Notice kind="error">{error}</Notice> : null}
    </section>
  );
}

export function ComposerView() {
  const volume = useVolumes((s) => s.current);
  useEffect(() => {
    void useImages.getState().loadSaved();
  }, [volume]);
  if (!volume) return <p className="muted">Open a volume first (Volumes).</p>;
  return (
    <div className="view">
      <h1>Image composer</h1>
      <p className="muted">
        <b>+</b> union, <b>-</b> difference, <b>&amp;</b> intersection; <code>active</code> is the live file system. An image to stream is a sum of snapshots minus at most one snapshot.
      </p>
      <Palette />
      <Expression />
      <Result />
      <Send />
      <Saved />
    </div>
  );
}
