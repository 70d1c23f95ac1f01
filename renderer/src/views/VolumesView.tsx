/** View 1: volumes — the known list, create (image or RAID-4) and open, members and health, capacity, CP status, files. */
import { useEffect, useState, type FormEvent } from 'react';
import { MAX_UPLOAD_BYTES, type DirEntryInfo, type VolumeInfo } from '../../../core/api/index.js';
import { errorText } from '../client/client.js';
import { client } from '../client/current.js';
import { CapacityBar, Confirm, Notice } from '../components/common.js';
import { formatBytes, formatCount, formatDate } from '../format.js';
import { useVolumes } from '../stores/volumes.js';

function VolumeList() {
  const known = useVolumes((s) => s.known);
  const current = useVolumes((s) => s.current);
  return (
    <table className="table" data-testid="volume-list">
      <thead>
        <tr>
          <th>Volume</th>
          <th>Device</th>
          <th>Size</th>
          <th>Snapshots</th>
          <th>Health</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {known.map((k) => (
          <tr key={k.path} className={k.path === current ? 'selected' : ''} onClick={() => void useVolumes.getState().select(k.path)}>
            <td className="mono">{k.path}</td>
            <td>{k.info ? (k.info.device.kind === 'raid4' ? `RAID-4, ${k.info.device.members.length} members` : 'image') : '—'}</td>
            <td>{k.info ? formatBytes(k.info.sizeBytes) : '—'}</td>
            <td>{k.info ? (k.info.damage ? <span className="error">unreadable</span> : k.info.snapshotCount) : '—'}</td>
            <td>
              {k.error ? (
                <span className="error">{k.error.message}</span>
              ) : k.info?.damage ? (
                <span className="error" data-testid="health-damaged">
                  damaged: read-only{k.info.device.degraded ? ', degraded' : ''}
                </span>
              ) : k.info?.device.degraded ? (
                <span className="warn">degraded</span>
              ) : (
                'ok'
              )}
              {k.info?.mirrorOf && !k.info.mirrorOf.brokenAt ? <span className="muted"> · mirror, read-only</span> : null}
            </td>
            <td>
              <button
                className="link"
                onClick={(e) => {
                  e.stopPropagation();
                  void useVolumes.getState().forget(k.path);
                }}
              >
                forget
              </button>
            </td>
          </tr>
        ))}
        {known.length === 0 ? (
          <tr>
            <td colSpan={6} className="muted">
              No volumes yet: create one or open an existing image below.
            </td>
          </tr>
        ) : null}
      </tbody>
    </table>
  );
}

/** A volume holds fewer than 2^32 blocks of 4 KiB: below 16 TiB (the engine's limit, said before it is asked). */
const MAX_MIB = 16 * 2 ** 20;

/** What is wrong with a create form's size (MiB) and data-member count, in the form's own terms, or null. */
export function sizeProblem(size: string, members: string | null): string | null {
  const mib = Number(size);
  if (size.trim() === '' || !Number.isFinite(mib)) return 'Size: give a number of MiB, e.g. 256.';
  if (mib < 1) return 'Size: a volume needs at least 1 MiB.';
  if (mib >= MAX_MIB) return `Size: ${size.trim()} MiB is too big; a volume${members === null ? '' : "'s member"} must be below 16 TiB (${MAX_MIB.toLocaleString('en-US')} MiB).`;
  if (members !== null) {
    const n = Number(members);
    if (!Number.isInteger(n) || n < 2 || n > 15) return 'Data members: a RAID-4 group has 2 to 15 data members (and one parity member).';
  }
  return null;
}

function CreateOpen() {
  const [path, setPath] = useState('');
  const [size, setSize] = useState('256');
  const [kind, setKind] = useState<'image' | 'raid'>('image');
  const [members, setMembers] = useState('4');
  const [openPath, setOpenPath] = useState('');
  const [msg, setMsg] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);
  const create = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const bad = sizeProblem(size, kind === 'raid' ? members : null);
    if (bad) return setMsg({ kind: 'error', text: bad });
    try {
      const mib = Number(size);
      await useVolumes.getState().create(path, Math.floor(mib * 2 ** 20), kind === 'raid' ? Number(members) : undefined);
      setMsg({ kind: 'ok', text: `created ${path}` });
    } catch (err) {
      setMsg({ kind: 'error', text: errorText(err) });
    }
  };
  const open = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    try {
      await useVolumes.getState().open(openPath);
      setMsg({ kind: 'ok', text: `opened ${openPath}` });
    } catch (err) {
      setMsg({ kind: 'error', text: errorText(err) });
    }
  };
  return (
    <div className="cards">
      <form className="card" onSubmit={(e) => void create(e)} data-testid="create-volume">
        <h3>Create a volume</h3>
        <label>
          Path <input value={path} onChange={(e) => setPath(e.target.value)} placeholder="/data/vol.img or a RAID folder" required name="path" />
        </label>
        <label>
          Size (MiB{kind === 'raid' ? ' per member' : ''}) <input value={size} onChange={(e) => setSize(e.target.value)} type="number" min={1} name="size" />
        </label>
        <label>
          Device{' '}
          <select value={kind} onChange={(e) => setKind(e.target.value as 'image' | 'raid')} name="kind">
            <option value="image">image file (sparse)</option>
            <option value="raid">RAID-4 group</option>
          </select>
        </label>
        {kind === 'raid' ? (
          <label>
            Data members <input value={members} onChange={(e) => setMembers(e.target.value)} type="number" min={2} max={15} />
          </label>
        ) : null}
        <button type="submit">Create</button>
      </form>
      <form className="card" onSubmit={(e) => void open(e)} data-testid="open-volume">
        <h3>Open a volume</h3>
        <label>
          Path <input value={openPath} onChange={(e) => setOpenPath(e.target.value)} placeholder="/data/vol.img" required name="path" />
        </label>
        <button type="submit">Open</button>
      </form>
      {msg ? <Notice kind={msg.kind} onClose={() => setMsg(null)}>{msg.text}</Notice> : null}
    </div>
  );
}

function Details() {
  const info = useVolumes((s) => s.info);
  const error = useVolumes((s) => s.error);
  if (error && !info) return <Notice kind="error">{error}</Notice>;
  if (!info) return null;
  return (
    <section data-testid="volume-details">
      <h2 className="mono">{info.path}</h2>
      <CapacityBar info={info} />
      <dl className="facts">
        <dt>Blocks</dt>
        <dd>
          {formatCount(info.blockCount)} × 4 KiB = {formatBytes(info.sizeBytes)}
        </dd>
        <dt>Consistency point</dt>
        <dd data-testid="cp-status">
          #{info.generation} at {formatDate(info.lastCpAt)}
          {info.damage ? ' (read-only: the files can be read and copied out, nothing can change)' : info.readOnly ? ' (open for reading; the first change opens it for writing)' : ' (open for writing; a CP every 10 s when changed)'}
        </dd>
        <dt>Snapshots</dt>
        <dd>{info.damage ? <span className="error">{info.damage}</span> : info.snapshotCount}</dd>
        <dt>Inodes</dt>
        <dd>{formatCount(info.inodeCount)}</dd>
        <dt>Device</dt>
        <dd>
          {info.device.kind === 'raid4' ? 'RAID-4 group' : 'image file'} {info.device.degraded ? <span className="warn">DEGRADED</span> : <span className="ok">healthy</span>}
        </dd>
        <MirrorFact info={info} />
      </dl>
      <Takeover info={info} />
      <table className="table" data-testid="members">
        <thead>
          <tr>
            <th>Member</th>
            <th>Role</th>
            <th>State</th>
            <th>Image</th>
          </tr>
        </thead>
        <tbody>
          {info.device.members.map((m) => (
            <tr key={m.index}>
              <td>{m.index}</td>
              <td>{m.role}</td>
              <td className={m.state === 'ok' ? 'ok' : 'warn'}>
                {m.state}
                {m.failure ? <div className="small muted" data-testid={`member-failure-${m.index}`}>{m.failure}; “raid replace” rebuilds it</div> : null}
              </td>
              <td className="mono">{m.path}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** A mirror destination says so, and whose mirror it is (the volume is read-only until taken over). */
function MirrorFact({ info }: { info: VolumeInfo }) {
  const m = info.mirrorOf;
  if (!m) return null;
  return (
    <>
      <dt>Mirror</dt>
      <dd data-testid="mirror-of">
        {m.brokenAt ? (
          <>
            taken over {formatDate(m.brokenAt)}; was the mirror of <span className="mono">{m.source}</span> (relationship {m.relationship})
          </>
        ) : (
          <>
            of <span className="mono">{m.source}</span> (relationship {m.relationship}) since {formatDate(m.since)}: <span className="warn">read-only</span>, it changes only by that
            relationship&apos;s updates{' '}
            <button className="link" onClick={() => useVolumes.setState({ askingTakeover: info.path })} data-testid="takeover">
              take over…
            </button>
          </>
        )}
        {info.replacement ? (
          <div className="small muted" data-testid="replacement">
            full resync: a whole copy for relationship {info.replacement.relationship}{' '}
            {info.replacement.swapAsked ? 'has landed beside it and takes its place at the next request' : `is being received beside it since ${formatDate(info.replacement.started)}; this volume stays as it is until the copy lands`}
          </div>
        ) : null}
      </dd>
    </>
  );
}

/**
 * Takeover on the mirror's own host, where the relationship is not known: the same `mirror break` the CLI runs with
 * the volume's path. Asked first, since it ends the mirror's updates until someone resyncs it from the source.
 */
function Takeover({ info }: { info: VolumeInfo }) {
  const asking = useVolumes((s) => s.askingTakeover);
  const [msg, setMsg] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);
  const m = info.mirrorOf;
  const takeOver = async (): Promise<void> => {
    useVolumes.setState({ askingTakeover: null });
    try {
      await client().call('mirrorBreak', { name: info.path });
      setMsg({ kind: 'ok', text: `took over ${info.path}: it is writable; the next update of ${m?.relationship ?? 'its relationship'} from ${m?.source ?? 'the source'} stops here` });
      await useVolumes.getState().refreshCurrent();
    } catch (e) {
      setMsg({ kind: 'error', text: errorText(e) });
    }
  };
  return (
    <>
      {m && !m.brokenAt && asking === info.path ? (
        <Confirm testId="takeover-confirm" action="Take over" onConfirm={() => void takeOver()} onCancel={() => useVolumes.setState({ askingTakeover: null })}>
          Take over <span className="mono">{info.path}</span>? It becomes writable here. The next update of relationship {m.relationship} from{' '}
          <span className="mono">{m.source}</span> stops at it instead of overwriting it; a resync from the source&apos;s host later rolls it back to the newest snapshot both
          have, discarding what is written here meanwhile.
        </Confirm>
      ) : null}
      {msg ? (
        <Notice kind={msg.kind} onClose={() => setMsg(null)}>
          {msg.text}
        </Notice>
      ) : null}
    </>
  );
}

function readAsBase64(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => {
      const url = String(r.result);
      resolve(url.slice(url.indexOf(',') + 1));
    };
    r.onerror = () => reject(r.error ?? new Error('cannot read the file'));
    r.readAsDataURL(file);
  });
}

function Files() {
  const volume = useVolumes((s) => s.current);
  const version = useVolumes((s) => s.version);
  const [path, setPath] = useState('/');
  const [entries, setEntries] = useState<DirEntryInfo[]>([]);
  const [msg, setMsg] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);
  const [hostPath, setHostPath] = useState('');
  const [folder, setFolder] = useState('');
  const [replacing, setReplacing] = useState<{ files: File[]; existing: string[] } | null>(null);
  useEffect(() => {
    // What was said and asked about one volume's files is not shown on another's.
    setMsg(null);
    setReplacing(null);
    setPath('/');
  }, [volume]);
  useEffect(() => {
    if (!volume) return;
    let live = true;
    client()
      .call('ls', { volume, path })
      .then(
        (p) => live && setEntries(p.entries),
        (e: unknown) => live && setMsg({ kind: 'error', text: errorText(e) }),
      );
    return () => {
      live = false;
    };
  }, [volume, path, version]);
  if (!volume) return null;
  const join = (name: string): string => (path === '/' ? `/${name}` : `${path}/${name}`);
  const run = async (text: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
      setMsg({ kind: 'ok', text });
    } catch (e) {
      setMsg({ kind: 'error', text: errorText(e) });
    }
  };
  const upload = (files: File[]): void => {
    setReplacing(null);
    if (files.length === 0) return;
    // Said before any byte is read: past the limit the host would close the connection instead.
    const big = files.find((f) => f.size > MAX_UPLOAD_BYTES);
    if (big) {
      setMsg({ kind: 'error', text: `'${big.name}' is ${formatBytes(big.size)}; an upload is at most ${formatBytes(MAX_UPLOAD_BYTES)}: import bigger files from a host path (Import, or snapplane put)` });
      return;
    }
    void run(`uploaded ${files.map((f) => f.name).join(', ')}`, async () => {
      for (const f of files) await client().call('writeFile', { volume, path: join(f.name), base64: await readAsBase64(f) });
    });
  };
  return (
    <section data-testid="files">
      <h3>
        Files in <span className="mono">{path}</span>
      </h3>
      <div className="toolbar">
        {path !== '/' ? <button onClick={() => setPath(path.split('/').slice(0, -1).join('/') || '/')}>Up</button> : null}
        <label className="button">
          Upload files…
          <input
            type="file"
            multiple
            hidden
            data-testid="upload"
            onChange={(e) => {
              const files = [...(e.target.files ?? [])];
              e.target.value = '';
              // A name that exists would replace the live file: asked first.
              const existing = files.filter((f) => entries.some((x) => x.name === f.name)).map((f) => f.name);
              if (existing.length > 0) setReplacing({ files, existing });
              else upload(files);
            }}
          />
        </label>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void run(`made folder ${folder}`, () => client().call('mkdir', { volume, path: join(folder) }));
            setFolder('');
          }}
        >
          <input value={folder} onChange={(e) => setFolder(e.target.value)} placeholder="new folder" name="folder" /> <button type="submit">Make folder</button>
        </form>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void run(`imported ${hostPath}`, () => client().call('put', { volume, hostPath, path }));
          }}
        >
          <input value={hostPath} onChange={(e) => setHostPath(e.target.value)} placeholder="host file or folder to import" name="hostPath" size={30} /> <button type="submit">Import</button>
        </form>
      </div>
      {replacing ? (
        <Confirm
          testId="upload-confirm"
          action="Replace"
          focus
          onConfirm={() => upload(replacing.files)}
          onCancel={() => setReplacing(null)}
          extra={
            replacing.files.length > replacing.existing.length ? (
              <button onClick={() => upload(replacing.files.filter((f) => !replacing.existing.includes(f.name)))}>Upload only the new ones</button>
            ) : null
          }
        >
          {replacing.existing.length === 1 ? 'A file named ' : 'Files named '}
          <span className="mono">{replacing.existing.join(', ')}</span> {replacing.existing.length === 1 ? 'exists' : 'exist'} in <span className="mono">{path}</span>. Uploading
          replaces {replacing.existing.length === 1 ? 'it' : 'them'}: the current version stays only in a snapshot that holds it, if one does (take a snapshot first to
          keep it).
        </Confirm>
      ) : null}
      {msg ? <Notice kind={msg.kind} onClose={() => setMsg(null)}>{msg.text}</Notice> : null}
      <table className="table">
        <tbody>
          {entries.map((e) => (
            <tr key={e.name} data-testid={`file-${e.name}`}>
              <td className="typ">{e.type === 'dir' ? 'dir' : e.type === 'symlink' ? 'link' : 'file'}</td>
              <td>
                {e.type === 'dir' ? (
                  <button className="link" onClick={() => setPath(e.path)}>
                    {e.name}
                  </button>
                ) : (
                  e.name
                )}
              </td>
              <td>{e.type === 'file' ? formatBytes(e.size) : ''}</td>
              <td>{formatDate(e.mtime)}</td>
              <td>
                <button className="link" onClick={() => void run(`deleted ${e.path}`, () => client().call('rm', { volume, path: e.path, recursive: true }))} data-testid={`delete-${e.name}`}>
                  delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function VolumesView() {
  return (
    <div className="view">
      <h1>Volumes</h1>
      <VolumeList />
      <CreateOpen />
      <Details />
      <Files />
    </div>
  );
}
