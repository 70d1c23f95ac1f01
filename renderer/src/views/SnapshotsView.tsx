/**
 * View 4: snapshots — a timeline and a list with unique sizes; create, delete, rename, hold, master; browse a
 * snapshot's tree and restore by click (back in place, or into a host folder, never outside it); diff two
 * snapshots; revert the volume after a confirmation that states what will be lost.
 */
import { useEffect, useState } from 'react';
import type { RevertPreview, SnapshotInfo } from '../../../core/api/index.js';
import { client } from '../client/current.js';
import { Modal, Notice } from '../components/common.js';
import { formatBytes, formatCount, formatDate } from '../format.js';
import { useSnapshots, type DeleteAsk, type RestoreAsk } from '../stores/snapshots.js';
import { useVolumes } from '../stores/volumes.js';

function Timeline({ snapshots }: { snapshots: SnapshotInfo[] }) {
  if (snapshots.length === 0) return null;
  const times = snapshots.map((s) => Date.parse(s.createdAt));
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const span = Math.max(1, t1 - t0);
  const maxUnique = Math.max(1, ...snapshots.map((s) => s.uniqueBytes));
  const browsing = useSnapshots.getState().browsing;
  return (
    <svg className="timeline" viewBox="0 0 1000 70" preserveAspectRatio="none" role="img" aria-label="snapshot timeline" data-testid="timeline">
      <line x1={10} x2={990} y1={40} y2={40} className="axis" />
      {snapshots.map((s, i) => {
        const x = 10 + (980 * (times[i] - t0)) / span;
        const r = 3 + 9 * Math.sqrt(s.uniqueBytes / maxUnique);
        return (
          <g key={s.name} className={`tick${browsing === s.name ? ' selected' : ''}`} onClick={() => void useSnapshots.getState().browse(s.name)}>
            <circle cx={x} cy={40} r={r} />
            <title>{`${s.name}: ${formatDate(s.createdAt)}, ${formatBytes(s.uniqueBytes)} held alone`}</title>
          </g>
        );
      })}
      <text x={10} y={66} className="label">
        {formatDate(snapshots[0].createdAt)}
      </text>
      <text x={990} y={66} className="label" textAnchor="end">
        {formatDate(snapshots[snapshots.length - 1].createdAt)}
      </text>
    </svg>
  );
}

function SnapshotRow({ s }: { s: SnapshotInfo }) {
  const [renaming, setRenaming] = useState<string | null>(null);
  const browsing = useSnapshots((x) => x.browsing);
  const st = useSnapshots.getState();
  const flags = [s.flags.hold ? 'hold' : '', s.flags.master ? 'master' : '', s.flags.shadow ? 'shadow' : '', s.flags.stale ? 'stale' : ''].filter(Boolean);
  return (
    <tr className={browsing === s.name ? 'selected' : ''} data-testid={`snap-${s.name}`}>
      <td>
        {renaming !== null ? (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              // Said here rather than by the contract's schema ("snapRename: to must not be empty").
              if (renaming.trim() === '') return useSnapshots.setState({ notice: { kind: 'error', text: `A snapshot needs a name: type the new name for ${s.name}, or press Escape to keep it.` } });
              if (renaming !== s.name) void st.rename(s.name, renaming);
              setRenaming(null);
            }}
          >
            <input value={renaming} onChange={(e) => setRenaming(e.target.value)} onKeyDown={(e) => e.key === 'Escape' && setRenaming(null)} autoFocus name="rename" />
          </form>
        ) : (
          <button className="link" onClick={() => void st.browse(s.name)} data-testid={`browse-${s.name}`}>
            {s.name}
          </button>
        )}
      </td>
      <td>{formatDate(s.createdAt)}</td>
      <td>{formatCount(s.blocks)}</td>
      <td>{formatBytes(s.uniqueBytes)}</td>
      <td>{flags.join(', ') || '—'}</td>
      <td className="actions">
        <button className="link" onClick={() => setRenaming(renaming === null ? s.name : null)}>
          rename
        </button>
        <button className="link" onClick={() => void st.hold(s.name, !s.flags.hold)}>
          {s.flags.hold ? 'release' : 'hold'}
        </button>
        {!s.flags.shadow ? (
          <button className="link" onClick={() => void st.master(s.name, !s.flags.master)}>
            {s.flags.master ? 'unmark master' : 'mark master'}
          </button>
        ) : null}
        <button className="link" onClick={() => void st.previewRevert(s.name)} data-testid={`revert-${s.name}`}>
          revert…
        </button>
        <button className="link danger" onClick={() => void st.askDelete(s.name)} data-testid={`delete-snap-${s.name}`}>
          delete…
        </button>
      </td>
    </tr>
  );
}

function CreateSnapshot() {
  const [name, setName] = useState('');
  const [shadow, setShadow] = useState(false);
  return (
    <form
      className="toolbar"
      onSubmit={(e) => {
        e.preventDefault();
        void useSnapshots
          .getState()
          .create(name, shadow)
          .then((ok) => ok && setName(''));
      }}
      data-testid="create-snapshot"
    >
      <input value={name} onChange={(e) => setName(e.target.value)} placeholder="snapshot name" required name="snapName" />
      <label>
        <input type="checkbox" checked={shadow} onChange={(e) => setShadow(e.target.checked)} /> shadow (never pins space)
      </label>
      <button type="submit">Take snapshot</button>
    </form>
  );
}

function RestoreToFolder({ path, onDone }: { path: string; onDone: () => void }) {
  const [folder, setFolder] = useState('');
  const [name, setName] = useState(path.split('/').pop() || 'root');
  useEffect(() => {
    void client()
      .pickFolder()
      .then((f) => f !== null && setFolder(f));
  }, []);
  return (
    <form
      className="card"
      onSubmit={(e) => {
        e.preventDefault();
        void useSnapshots
          .getState()
          .restoreToHost(path, folder, name)
          .then((r) => r && onDone());
      }}
      data-testid="restore-to-folder"
    >
      <h4>
        Restore <span className="mono">{path}</span> into a host folder
      </h4>
      <label>
        Folder <input value={folder} onChange={(e) => setFolder(e.target.value)} placeholder="/home/me/restored (absolute)" required name="folder" size={40} />
      </label>
      <label>
        As <input value={name} onChange={(e) => setName(e.target.value)} required name="name" />
      </label>
      <p className="muted">Nothing is written outside the folder and nothing there is overwritten.</p>
      <button type="submit">Restore</button>{' '}
      <button type="button" onClick={onDone}>
        Cancel
      </button>
    </form>
  );
}

function Browser() {
  const browsing = useSnapshots((s) => s.browsing);
  const path = useSnapshots((s) => s.path);
  const listing = useSnapshots((s) => s.listing);
  const [toFolder, setToFolder] = useState<string | null>(null);
  if (!browsing) return <p className="muted">Pick a snapshot to browse its files.</p>;
  const st = useSnapshots.getState();
  const parts = path.split('/').filter(Boolean);
  return (
    <section data-testid="browser">
      <h3>
        Browsing <b>{browsing}</b>:{' '}
        <button className="link" onClick={() => void st.browse(browsing, '/')}>
          /
        </button>
        {parts.map((p, i) => (
          <span key={i}>
            <button className="link" onClick={() => void st.browse(browsing, '/' + parts.slice(0, i + 1).join('/'))}>
              {p}
            </button>
            /
          </span>
        ))}
      </h3>
      {toFolder ? <RestoreToFolder path={toFolder} onDone={() => setToFolder(null)} /> : null}
      <table className="table">
        <tbody>
          {(listing?.entries ?? []).map((e) => (
            <tr key={e.name} data-testid={`entry-${e.name}`}>
              <td className="typ">{e.type === 'dir' ? 'dir' : e.type === 'symlink' ? 'link' : 'file'}</td>
              <td>
                {e.type === 'dir' ? (
                  <button className="link" onClick={() => void st.browse(browsing, e.path)}>
                    {e.name}
                  </button>
                ) : (
                  <span>{e.name}</span>
                )}
                {e.target !== undefined ? <span className="muted"> → {e.target}</span> : null}
              </td>
              <td>{e.type === 'file' ? formatBytes(e.size) : ''}</td>
              <td>{formatDate(e.mtime)}</td>
              <td className="actions">
                {browsing !== 'active' ? (
                  <button className="link" onClick={() => void st.askRestore(e.path)} title="put it back where it was in the live file system (no data copy)" data-testid={`restore-${e.name}`}>
                    restore
                  </button>
                ) : null}
                <button className="link" onClick={() => setToFolder(e.path)} data-testid={`restore-to-${e.name}`}>
                  restore to folder…
                </button>
              </td>
            </tr>
          ))}
          {listing && listing.entries.length === 0 ? (
            <tr>
              <td colSpan={5} className="muted">
                empty folder
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
      {listing && listing.total > listing.entries.length ? <p className="muted">showing {listing.entries.length} of {listing.total}</p> : null}
    </section>
  );
}

function Diff() {
  const snapshots = useVolumes((s) => s.snapshots);
  const diff = useSnapshots((s) => s.diff);
  const names = ['active', ...snapshots.map((s) => s.name)];
  const [older, setOlder] = useState('');
  const [newer, setNewer] = useState('');
  const o = older || snapshots[snapshots.length - 2]?.name || '';
  const n = newer || snapshots[snapshots.length - 1]?.name || '';
  return (
    <section data-testid="diff">
      <h3>Diff</h3>
      <form
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          void useSnapshots.getState().diffOf(o, n);
        }}
      >
        <select value={o} onChange={(e) => setOlder(e.target.value)} name="older">
          {names.map((x) => (
            <option key={x}>{x}</option>
          ))}
        </select>
        →
        <select value={n} onChange={(e) => setNewer(e.target.value)} name="newer">
          {names.map((x) => (
            <option key={x}>{x}</option>
          ))}
        </select>
        <button type="submit">Compare</button>
      </form>
      {diff ? (
        <div>
          <p className="muted">
            {diff.older} → {diff.newer}: {diff.added.length} added, {diff.changed.length} changed, {diff.removed.length} removed ({diff.sharedInodeBlocksSkipped} shared inode blocks skipped by comparing pointers)
          </p>
          <ul className="plain mono">
            {diff.added.map((p) => (
              <li key={`a${p}`} className="ok">
                + {p}
              </li>
            ))}
            {diff.changed.map((p) => (
              <li key={`c${p}`} className="warn">
                M {p}
              </li>
            ))}
            {diff.removed.map((p) => (
              <li key={`r${p}`} className="error">
                − {p}
              </li>
            ))}
          </ul>
        </div>
      ) : null}
    </section>
  );
}

const cancelRevert = (): void => void useSnapshots.getState().previewRevert(null);

function RevertConfirm() {
  const r = useSnapshots((s) => s.revert);
  if (!r) return null;
  return <RevertDialog r={r} />;
}

function RevertDialog({ r }: { r: RevertPreview }) {
  const lost = r.added.length + r.changed.length + r.removed.length;
  return (
    <Modal testId="revert-dialog" onCancel={cancelRevert}>
      <h3>Revert the volume to {r.snapshot}?</h3>
      <p>
        Everything done since <b>{r.snapshot}</b> is lost: {r.added.length} file(s) added, {r.changed.length} changed and {r.removed.length} removed go back to how they were,
        and {formatBytes(r.lostBytes)} that only the live file system holds is freed for good.
      </p>
      {lost > 0 ? (
        <ul className="plain mono scroll">
          {r.added.map((p) => (
            <li key={`a${p}`}>+ {p} (will disappear)</li>
          ))}
          {r.changed.map((p) => (
            <li key={`c${p}`}>M {p} (back to the old version)</li>
          ))}
          {r.removed.map((p) => (
            <li key={`r${p}`}>− {p} (comes back)</li>
          ))}
        </ul>
      ) : null}
      {r.laterSnapshots.length > 0 ? <p className="muted">Later snapshots stay: {r.laterSnapshots.join(', ')}.</p> : null}
      <button className="danger" onClick={() => void useSnapshots.getState().revertTo(r.snapshot)} data-testid="revert-confirm">
        Revert to {r.snapshot}
      </button>{' '}
      <button onClick={cancelRevert}>Cancel</button>
    </Modal>
  );
}

/** Asks before a restore by click replaces a live version that differs from the snapshot's. */
const answer = (choice: 'copy' | 'replace' | null): void => void useSnapshots.getState().answerRestore(choice);
const cancelRestore = (): void => answer(null);

function RestoreConfirm() {
  const r = useSnapshots((s) => s.restoreAsk);
  if (!r) return null;
  return <RestoreDialog r={r} />;
}

function RestoreDialog({ r }: { r: RestoreAsk }) {
  return (
    <Modal testId="restore-dialog" onCancel={cancelRestore}>
      <h3>
        Replace <span className="mono">{r.path}</span> with its version from {r.snapshot}?
      </h3>
      <p>
        <span className="mono">{r.path}</span> exists in the live file system and differs from the one in <b>{r.snapshot}</b>. Replacing it puts the current version away for
        good:{' '}
        {r.liveHeldBy ? (
          <>
            it stays only in snapshot <b>{r.liveHeldBy}</b>, which holds it as it is now.
          </>
        ) : (
          <b>no snapshot holds the current version, so it is lost.</b>
        )}
      </p>
      {r.lost.length > 0 ? (
        <div data-testid="restore-lost">
          <p>
            Replacing removes {r.lost.length === 1 ? 'this item' : `these ${r.lost.length} items`}, which the folder has now and {r.snapshot}&apos;s lacks:
          </p>
          <ul className="mono small">
            {r.lost.slice(0, 8).map((p) => (
              <li key={p}>{p}</li>
            ))}
            {r.lost.length > 8 ? <li>… and {r.lost.length - 8} more</li> : null}
          </ul>
        </div>
      ) : null}
      <p>
        A copy leaves the current version as it is and puts {r.snapshot}&apos;s beside it as <span className="mono">{r.copyTo}</span>.
      </p>
      <div className="toolbar">
        <button onClick={() => answer('copy')} data-testid="restore-as-copy" autoFocus>
          Restore as a copy
        </button>
        <button className="danger" onClick={() => answer('replace')} data-testid="restore-replace">
          Replace
        </button>
        <button onClick={() => answer(null)}>Cancel</button>
      </div>
    </Modal>
  );
}

/** Asks before a snapshot delete: what it frees, and which destinations or relationships depend on the snapshot. */
const cancelDelete = (): void => void useSnapshots.getState().askDelete(null);

function DeleteConfirm() {
  const d = useSnapshots((s) => s.deleteAsk);
  if (!d) return null;
  return <DeleteDialog d={d} />;
}

function DeleteDialog({ d }: { d: DeleteAsk }) {
  const st = useSnapshots.getState();
  return (
    <Modal testId="delete-dialog" onCancel={cancelDelete}>
      <h3>Delete snapshot {d.name}?</h3>
      <p data-testid="delete-frees">
        {d.freedBytes > 0 ? (
          <>
            Frees {formatBytes(d.freedBytes)}: the blocks only <b>{d.name}</b> holds. The files as they were in it are gone for good.
          </>
        ) : (
          <>Frees nothing: every block of {d.name} is also held by the live file system or another snapshot. Only the point in time goes.</>
        )}
      </p>
      {d.neededBy.length > 0 ? (
        <p className="warn" data-testid="delete-needed-by">
          {d.name} is a master snapshot that {d.neededBy.join(', ')} {d.neededBy.length === 1 ? 'has' : 'have'} not moved past yet: the next replication to{' '}
          {d.neededBy.length === 1 ? 'it' : 'them'} starts from it.
        </p>
      ) : null}
      {d.relationships.length > 0 ? (
        <p className="warn" data-testid="delete-relationships">
          Relationship {d.relationships.join(', ')} {d.relationships.length === 1 ? 'uses' : 'use'} it as the last snapshot in common with the mirror: without it the next update
          needs a full copy.
        </p>
      ) : null}
      {d.held ? <p className="muted">It has a hold: release it first (the “release” button in its row) to delete it.</p> : null}
      {d.error ? (
        <Notice kind="error" onClose={() => useSnapshots.setState({ deleteAsk: { ...d, error: null } })}>
          {d.error}
        </Notice>
      ) : null}
      <div className="toolbar">
        <button className="danger" onClick={() => void st.remove(d.name)} data-testid="delete-confirm">
          Delete {d.name}
        </button>
        <button onClick={cancelDelete} autoFocus>
          Cancel
        </button>
      </div>
    </Modal>
  );
}

export function SnapshotsView() {
  const snapshots = useVolumes((s) => s.snapshots);
  const volume = useVolumes((s) => s.current);
  const notice = useSnapshots((s) => s.notice);
  if (!volume) return <p className="muted">Open a volume first (Volumes).</p>;
  return (
    <div className="view">
      <h1>Snapshots</h1>
      <Timeline snapshots={snapshots} />
      <CreateSnapshot />
      {notice ? (
        <Notice kind={notice.kind} onClose={() => useSnapshots.getState().dismiss()}>
          {notice.text}
        </Notice>
      ) : null}
      <table className="table" data-testid="snapshot-list">
        <thead>
          <tr>
            <th>Snapshot</th>
            <th>Taken</th>
            <th>Blocks</th>
            <th>Held alone</th>
            <th>Flags</th>
            <th />
          </tr>
        </thead>
        <tbody>
          <tr>
            <td>
              <button className="link" onClick={() => void useSnapshots.getState().browse('active')}>
                active
              </button>
            </td>
            <td colSpan={5} className="muted">
              the live file system
            </td>
          </tr>
          {snapshots.map((s) => (
            <SnapshotRow key={s.name} s={s} />
          ))}
        </tbody>
      </table>
      <Browser />
      <Diff />
      <RevertConfirm />
      <RestoreConfirm />
      <DeleteConfirm />
    </div>
  );
}
