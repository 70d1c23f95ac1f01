/** View 7: relationships — mirrors and replicas as a topology (sources → destinations, cascades), lag, state, actions. */
import { useEffect, useState } from 'react';
import { describeTransferProgress, type MirrorInfo } from '../../../core/api/index.js';
import { Confirm, Notice } from '../components/common.js';
import { KeyFileWarning } from '../components/KeyFileWarning.js';
import { RelationshipSettings } from '../components/RelationshipSettings.js';
import { WeekdaySelect } from '../components/WeekdaySelect.js';
import { formatBytes, formatCount, formatDate } from '../format.js';
import { topology, useRelationships } from '../stores/relationships.js';
import { useVolumes } from '../stores/volumes.js';

/** Why a relationship's actions are greyed out while it transfers (the engine refuses them BUSY then). */
const BUSY_TITLE = 'a transfer of this relationship is under way: wait for it to end, or cancel it under Jobs';

function ago(seconds: number | null): string {
  if (seconds === null) return '—';
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function short(path: string): string {
  const parts = path.split('/');
  return parts.length > 2 ? `…/${parts.slice(-2).join('/')}` : path;
}

/** `text`, cut in the middle to at most `max` characters (the box has a fixed width; the full path is its title). */
function fit(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, 8)}…${text.slice(text.length - (max - 9))}`;
}

function Topology({ mirrors }: { mirrors: MirrorInfo[] }) {
  const { nodes, edges } = topology(mirrors);
  if (nodes.length === 0) return null;
  const W = 250;
  const H = 56;
  const GAP = 190; // room for an edge's label between two columns
  const pos = new Map(nodes.map((n) => [n.id, { x: 10 + n.depth * (W + GAP), y: 10 + n.row * (H + 24) }]));
  const width = Math.max(...[...pos.values()].map((p) => p.x)) + W + 10;
  const height = Math.max(...[...pos.values()].map((p) => p.y)) + H + 10;
  return (
    <svg className="topology" width={width} height={height} role="img" aria-label="relationship topology" data-testid="topology">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
          <path d="M0,0 L10,5 L0,10 z" className="arrowhead" />
        </marker>
      </defs>
      {edges.map((m) => {
        const a = pos.get(m.source)!;
        const b = pos.get(m.destination)!;
        return (
          <g key={m.name} className={`edge ${m.state}`}>
            <line x1={a.x + W} y1={a.y + H / 2} x2={b.x} y2={b.y + H / 2} markerEnd="url(#arrow)" />
            <text x={(a.x + W + b.x) / 2} y={(a.y + b.y) / 2 + H / 2 - 8} textAnchor="middle">
              {fit(`${m.name} (${m.kind}) · ${m.state}`, 30)}
            </text>
          </g>
        );
      })}
      {nodes.map((n) => {
        const p = pos.get(n.id)!;
        return (
          <g key={n.id} className="node">
            <rect x={p.x} y={p.y} width={W} height={H} rx={6} />
            <text x={p.x + 10} y={p.y + 22}>
              {fit(short(n.id), 36)}
            </text>
            <text x={p.x + 10} y={p.y + 42} className="muted">
              {n.depth === 0 ? 'source' : `destination${n.depth > 1 ? ' (cascade)' : ''}`}
            </text>
            <title>{n.id}</title>
          </g>
        );
      })}
    </svg>
  );
}

function CreateForm() {
  const known = useVolumes((s) => s.known);
  const current = useVolumes((s) => s.current);
  const [name, setName] = useState('');
  const [source, setSource] = useState(current ?? '');
  const [destination, setDestination] = useState('');
  const [kind, setKind] = useState<'full' | 'incremental' | 'replica'>('full');
  const [every, setEvery] = useState('');
  const [at, setAt] = useState('');
  const [on, setOn] = useState('');
  const [slow, setSlow] = useState('');
  const [keyFile, setKeyFile] = useState('');
  const [limit, setLimit] = useState('');
  return (
    <form
      className="card"
      onSubmit={(e) => {
        e.preventDefault();
        void useRelationships.getState().create({
          name,
          source: source || current || '',
          destination,
          kind,
          ...(every ? { every } : {}),
          ...(at ? { at } : {}),
          ...(at && on ? { on } : {}),
          ...(kind === 'incremental' && slow ? { slow } : {}),
          ...(keyFile ? { keyFile } : {}),
          ...(kind !== 'incremental' && Number(limit) > 0 ? { limit: Math.round(Number(limit) * 2 ** 20) } : {}),
        });
      }}
      data-testid="mirror-create"
    >
      <h3>New relationship</h3>
      <label>
        Name <input value={name} onChange={(e) => setName(e.target.value)} required name="name" />
      </label>
      <label>
        Source{' '}
        <select value={source || current || ''} onChange={(e) => setSource(e.target.value)} name="source">
          {known.map((k) => (
            <option key={k.path}>{k.path}</option>
          ))}
        </select>
      </label>
      <label>
        Destination <input value={destination} onChange={(e) => setDestination(e.target.value)} placeholder="/data/mirror.img or host:port/name" required name="destination" />
      </label>
      <label>
        Kind{' '}
        <select value={kind} onChange={(e) => setKind(e.target.value as typeof kind)} name="kind">
          <option value="full">full mirror</option>
          <option value="incremental">incremental mirror (slow base + fast deltas)</option>
          <option value="replica">replica (master snapshots)</option>
        </select>
      </label>
      {kind === 'incremental' ? (
        <label>
          Base image <input value={slow} onChange={(e) => setSlow(e.target.value)} placeholder="file:/slow/base or tape:/slow/tapes" required name="slow" />
        </label>
      ) : null}
      <label>
        Key file <input value={keyFile} onChange={(e) => setKeyFile(e.target.value)} placeholder="for host:port/name destinations" name="keyFile" />
      </label>
      <KeyFileWarning keyFile={keyFile} />
      <label>
        Update every <input value={every} onChange={(e) => setEvery(e.target.value)} placeholder="e.g. 1h (blank: on demand)" size={8} name="every" />
      </label>
      <label>
        or at <input type="time" value={at} onChange={(e) => setAt(e.target.value)} name="at" />
      </label>
      <label>
        on{' '}
        <WeekdaySelect value={on} at={at} onChange={setOn} />
      </label>
      {kind !== 'incremental' ? (
        <label>
          Limit <input value={limit} onChange={(e) => setLimit(e.target.value)} placeholder="blank: none" size={8} name="limit" /> MiB/s
        </label>
      ) : null}
      <button type="submit">Create</button>
    </form>
  );
}

/** Asks before a full resync: the mirror's snapshots go once the whole copy has landed beside it and replaced it. */
function FullResyncConfirm({ mirrors }: { mirrors: MirrorInfo[] }) {
  const name = useRelationships((s) => s.askingFullResync);
  const m = mirrors.find((x) => x.name === name);
  if (!m) return null;
  const st = useRelationships.getState();
  // A cascade: relationships of this host that take the mirror as their source.
  const further = mirrors.filter((x) => x.source === m.destination);
  return (
    <Confirm testId="full-resync-confirm" action="Copy whole and replace" onConfirm={() => void st.resyncFull(m.name)} onCancel={() => st.askFullResync(null)}>
      Copy <span className="mono">{m.source}</span> whole again and replace the mirror <span className="mono">{m.destination}</span> and its snapshots with that
      copy? The old mirror stays readable until the copy has landed beside it (its host needs room for both meanwhile); if the copy stops, the next update
      resumes it. Meant for when the two have no snapshot in common any more (a plain resync says so); only this relationship&apos;s mirror is ever replaced.
      {further.length > 0 ? (
        <>
          {' '}
          {further.map((x) => x.name).join(', ')} {further.length > 1 ? 'take' : 'takes'} this mirror as source: a replica stays incremental only if the copy brings its newest
          master (the job&apos;s report says), a mirror of it needs a full resync too.
        </>
      ) : null}
    </Confirm>
  );
}

/** Asks before a resync that rolls back even what only the mirror holds (a plain resync refuses that: DIVERGED). */
function DiscardResyncConfirm({ mirrors }: { mirrors: MirrorInfo[] }) {
  const name = useRelationships((s) => s.askingDiscardResync);
  const m = mirrors.find((x) => x.name === name);
  if (!m) return null;
  const st = useRelationships.getState();
  return (
    <Confirm testId="discard-resync-confirm" action="Discard and resync" onConfirm={() => void st.resyncDiscarding(m.name)} onCancel={() => st.askDiscardResync(null)}>
      Roll <span className="mono">{m.destination}</span> back to the newest snapshot it has in common with <span className="mono">{m.source}</span>, and mirror
      again, even though it holds what the source does not (files written there after a break or takeover, snapshots taken there)? Those are lost. A plain resync
      refuses in that case and says how much it would discard.
    </Confirm>
  );
}

/** Asks before a relationship is deleted: what stays (snapshots, the mirror volume) and what goes with it. */
function DeleteConfirm({ mirrors }: { mirrors: MirrorInfo[] }) {
  const name = useRelationships((s) => s.askingDelete);
  const m = mirrors.find((x) => x.name === name);
  if (!m) return null;
  const st = useRelationships.getState();
  return (
    <Confirm testId="delete-mirror-confirm" action={`Delete ${m.name}`} onConfirm={() => void st.remove(m.name)} onCancel={() => st.askDelete(null)} focus>
      Delete relationship <b>{m.name}</b>? What stays: the snapshots on <span className="mono">{m.source}</span> and the {m.kind === 'replica' ? 'replica' : 'mirror'}{' '}
      volume <span className="mono">{m.destination}</span> with its snapshots{m.kind === 'incremental' ? ' and the base image' : ''}; the mirror is made writable where it can be
      reached. What goes: its schedule ({m.every ? `updates ${m.every}` : 'updates on demand'}), its state (last common snapshot {m.lastCommon ?? 'none'}, lag, last
      transfer); the holds it put on the source&apos;s snapshots are released.
    </Confirm>
  );
}

/**
 * The engine's messages name the CLI's commands (scripts and logs read them too); next to the row's buttons the
 * console says which button does the same.
 */
function consoleAdvice(error: string): string | null {
  const buttons: string[] = [];
  if (/`snapplane mirror resync \S+`/.test(error)) buttons.push('“resync”');
  if (/--full`|resync \S+ --full/.test(error)) buttons.push('“full resync…”');
  if (/resync \S+ --discard`/.test(error)) buttons.push('“resync, discarding…”');
  if (/`snapplane mirror set \S+ --key-file/.test(error)) buttons.push('“settings…”');
  if (buttons.length === 0) return null;
  return `Here: the ${buttons.join(' and ')} ${buttons.length > 1 ? 'buttons do' : 'button does'} what the message says.`;
}

export function RelationshipsView() {
  const mirrors = useRelationships((s) => s.mirrors);
  const masters = useRelationships((s) => s.masters);
  const error = useRelationships((s) => s.error);
  const notice = useRelationships((s) => s.notice);
  const releasing = useRelationships((s) => s.releasing);
  const volume = useVolumes((s) => s.current);
  useEffect(() => {
    void useRelationships.getState().refresh();
  }, [volume]);
  // Transfers other processes run (the daemon, a shell) send this console no events: looked at again while shown,
  // often while one is under way (its progress), now and then otherwise (one that started).
  const transferring = mirrors.some((m) => m.state === 'transferring');
  useEffect(() => {
    const timer = setInterval(() => void useRelationships.getState().refresh(true), transferring ? 2000 : 10_000);
    return () => clearInterval(timer);
  }, [transferring]);
  const st = useRelationships.getState();
  return (
    <div className="view">
      <h1>Relationships</h1>
      {error ? <Notice kind="error" onClose={() => useRelationships.setState({ error: null })}>{error}</Notice> : null}
      {notice ? <Notice kind="ok" onClose={() => useRelationships.setState({ notice: null })}>{notice}</Notice> : null}
      {mirrors.length === 0 ? <p className="muted">No mirrors or replicas yet.</p> : <Topology mirrors={mirrors} />}
      <FullResyncConfirm mirrors={mirrors} />
      <DiscardResyncConfirm mirrors={mirrors} />
      <DeleteConfirm mirrors={mirrors} />
      <RelationshipSettings mirrors={mirrors} />
      <table className="table" data-testid="mirror-list">
        <thead>
          <tr>
            <th>Name</th>
            <th>Kind</th>
            <th>State</th>
            <th>Last common</th>
            <th>Lag</th>
            <th>Last transfer</th>
            <th>Schedule</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {mirrors.map((m) => (
            <tr key={m.name} data-testid={`mirror-${m.name}`}>
              <td>
                <b>{m.name}</b>
                <div className="muted mono">
                  {short(m.source)} → {short(m.destination)}
                </div>
              </td>
              <td className="nowrap">{m.kind}</td>
              <td className={m.state === 'failed' || m.state === 'broken' ? 'error' : m.state === 'lagging' ? 'warn' : ''}>
                <span className="nowrap">{m.state}</span>
                {m.progress ? (
                  <div className="muted small nowrap" data-testid={`progress-${m.name}`}>
                    {describeTransferProgress(m.progress, formatBytes)}
                  </div>
                ) : null}
                {m.replacing ? <div className="muted small">full resync under way: the old mirror stays until the whole copy lands</div> : null}
                {m.lastError ? <div className="error small">{m.lastError}</div> : null}
                {m.lastError && consoleAdvice(m.lastError) ? <div className="muted small" data-testid={`advice-${m.name}`}>{consoleAdvice(m.lastError)}</div> : null}
              </td>
              <td>{m.lastCommon ?? '—'}</td>
              <td>
                {ago(m.lagSeconds)}
                {m.lagBlocks !== null ? `, ${formatCount(m.lagBlocks)} blocks` : ''}
              </td>
              <td>{m.lastTransferAt ? `${formatDate(m.lastTransferAt)}, ${formatBytes(m.lastTransferBytes)}${m.lastSelection ? ` (${m.lastSelection})` : ''}` : '—'}</td>
              <td data-testid={`schedule-${m.name}`}>
                {m.every ?? 'on demand'}
                {m.nextAt ? <div className="muted small">next {formatDate(m.nextAt)}</div> : null}
              </td>
              <td className="actions wrap">
                <button className="link" onClick={() => void st.update(m.name)} disabled={m.state === 'broken' || m.state === 'transferring'} title={m.state === 'transferring' ? BUSY_TITLE : undefined}>
                  update
                </button>
                <button className="link" onClick={() => void st.breakOff(m.name)} disabled={m.state === 'broken' || m.state === 'transferring'} title={m.state === 'transferring' ? BUSY_TITLE : undefined}>
                  break
                </button>
                <button className="link" onClick={() => void st.resync(m.name)} disabled={m.kind === 'incremental' || m.state === 'transferring'} title={m.state === 'transferring' ? BUSY_TITLE : undefined}>
                  resync
                </button>
                {m.kind !== 'incremental' ? (
                  <button className="link danger" onClick={() => st.askDiscardResync(m.name)} disabled={m.state === 'transferring'} title={m.state === 'transferring' ? BUSY_TITLE : 'when a plain resync refuses: the mirror holds what the source does not'} data-testid={`discard-resync-${m.name}`}>
                    resync, discarding…
                  </button>
                ) : null}
                {m.kind === 'full' ? (
                  <button className="link danger" onClick={() => st.askFullResync(m.name)} disabled={m.state === 'transferring'} title={m.state === 'transferring' ? BUSY_TITLE : 'when the two have no snapshot in common any more'} data-testid={`full-resync-${m.name}`}>
                    full resync…
                  </button>
                ) : null}
                {/* Not greyed out while it transfers: the engine changes the settings then too (the transfer keeps its own). */}
                <button className="link" onClick={() => st.askSettings(m.name)} title="schedule, bandwidth limit, key file" data-testid={`settings-${m.name}`}>
                  settings…
                </button>
                <button className="link danger" onClick={() => st.askDelete(m.name)} disabled={m.state === 'transferring'} title={m.state === 'transferring' ? BUSY_TITLE : undefined} data-testid={`delete-mirror-${m.name}`}>
                  delete…
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <CreateForm />
      {volume ? (
        <section>
          <h3>Master snapshots of the current volume</h3>
          {releasing ? (
            <Confirm testId="release-confirm" action="Forget it" onConfirm={() => void st.release(releasing)} onCancel={() => st.askRelease(null)}>
              Forget destination <span className="mono">{releasing}</span>? The master snapshots only it still needs are no longer held for it; if it ever comes back after they
              are deleted, it needs a full copy.
            </Confirm>
          ) : null}
          <table className="table" data-testid="masters">
            <tbody>
              {masters.map((m) => (
                <tr key={m.name}>
                  <td>
                    {m.name}
                    {m.pointer ? ' (master →)' : ''}
                  </td>
                  <td>{formatDate(m.createdAt)}</td>
                  <td>
                    {m.neededBy.length > 0
                      ? m.neededBy.map((d) => (
                          <div key={d} className="nowrap">
                            needed by <span className="mono">{short(d)}</span>{' '}
                            <button className="link" onClick={() => st.askRelease(d)} title="forget this destination: it will not come back" data-testid={`release-${d}`}>
                              release
                            </button>
                          </div>
                        ))
                      : 'no destination needs it'}
                  </td>
                </tr>
              ))}
              {masters.length === 0 ? (
                <tr>
                  <td className="muted">No master snapshots (mark one under Snapshots).</td>
                </tr>
              ) : null}
            </tbody>
          </table>
        </section>
      ) : null}
    </div>
  );
}
