/**
 * View 5: jobs — forms that start copy, backup, restore, verify, mirror update and replication jobs; live progress
 * (phase, done of total, rate, ETA) pushed several times a second; a throughput chart; cancel; the history.
 */
import { memo, useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { CartesianGrid, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import { useShallow } from 'zustand/react/shallow';
import { describeMirrorUpdate, describeReplicatePreview, type JobSpec, type JobState, type MirrorUpdateReport } from '../../../core/api/index.js';
import { errorText } from '../client/client.js';
import { client } from '../client/current.js';
import { Notice, ProgressBar, useWidth } from '../components/common.js';
import { KeyFileWarning } from '../components/KeyFileWarning.js';
import { formatAmount, formatBytes, formatDate, formatEta, formatRate } from '../format.js';
import { jobPercent, selectJobList, useJobs } from '../stores/jobs.js';
import { useRelationships } from '../stores/relationships.js';
import { useVolumes } from '../stores/volumes.js';

type FormKind = 'copy' | 'backup' | 'restore' | 'verify' | 'mirror-update' | 'replicate';

function JobForm() {
  const current = useVolumes((s) => s.current);
  const known = useVolumes((s) => s.known);
  const mirrors = useRelationships((s) => s.mirrors);
  const [kind, setKind] = useState<FormKind>('copy');
  const [volume, setVolume] = useState(current ?? '');
  const [expression, setExpression] = useState('');
  // Each kind keeps its own target: a copy's destination volume must never become a backup's file.
  const [targets, setTargets] = useState<Partial<Record<FormKind, string>>>({});
  const target = targets[kind] ?? '';
  const setTarget = (value: string): void => setTargets({ ...targets, [kind]: value });
  const [problem, setProblem] = useState<string | null>(null);
  const [files, setFiles] = useState('');
  const [mirror, setMirror] = useState('');
  const [compress, setCompress] = useState(false);
  // A backup keeps a file already at its path (the backup before, usually) unless this is ticked.
  const [replace, setReplace] = useState(false);
  const [keyFile, setKeyFile] = useState('');
  const [limit, setLimit] = useState('');
  const [inVolume, setInVolume] = useState('');
  // What a replicate would send, asked of the destination before starting it (over a slow link, a full copy is hours).
  const [preview, setPreview] = useState<string | null>(null);
  useEffect(() => setPreview(null), [volume, target, keyFile]);
  useEffect(() => {
    if (!volume && current) setVolume(current);
  }, [current, volume]);
  useEffect(() => {
    void useRelationships.getState().refresh();
  }, []);
  const submit = (e: FormEvent): void => {
    e.preventDefault();
    const list = files
      .split('\n')
      .map((x) => x.trim())
      .filter(Boolean);
    const inside = inVolume ? { inVolume } : {};
    const bad = formProblem(kind, volume, target, list, inVolume, known.map((k) => k.path));
    setProblem(bad);
    if (bad) return;
    const spec: JobSpec =
      kind === 'copy'
        ? { kind, source: volume, destination: target, expression }
        : kind === 'backup'
          ? { kind, volume, expression, file: target, compress: compress ? 'lz4' : 'none', ...inside, ...(replace ? { force: true } : {}) }
          : kind === 'restore'
            ? { kind, volume: target, files: list, ...inside }
            : kind === 'verify'
              ? { kind, files: list, ...inside }
              : kind === 'mirror-update'
                ? { kind, name: mirror || mirrors[0]?.name || '' }
                : { kind, source: volume, destination: target, ...(keyFile ? { keyFile } : {}), ...(Number(limit) > 0 ? { limit: Math.round(Number(limit) * 2 ** 20) } : {}) };
    setPreview(null);
    void useJobs.getState().start(spec);
  };
  const askPreview = async (): Promise<void> => {
    const bad = formProblem(kind, volume, target, [], inVolume, known.map((k) => k.path)) ?? (target.trim() ? null : 'Give the destination first.');
    setProblem(bad);
    setPreview(null);
    if (bad) return;
    try {
      const r = await client().call('replicatePreview', { source: volume, destination: target, ...(keyFile ? { keyFile } : {}) });
      setPreview(describeReplicatePreview(r, formatBytes));
    } catch (e) {
      setProblem(errorText(e));
    }
  };
  return (
    <form className="card jobform" onSubmit={submit} data-testid="job-form">
      <div className="tabs">
        {(['copy', 'backup', 'restore', 'verify', 'mirror-update', 'replicate'] as const).map((k) => (
          <button
            type="button"
            key={k}
            className={k === kind ? 'active' : ''}
            onClick={() => {
              setKind(k);
              setProblem(null);
            }}
            data-testid={`jobkind-${k}`}
          >
            {k}
          </button>
        ))}
      </div>
      {kind === 'copy' || kind === 'backup' || kind === 'replicate' ? (
        <label>
          Source volume{' '}
          <select value={volume} onChange={(e) => setVolume(e.target.value)} name="volume">
            {known.map((k) => (
              <option key={k.path}>{k.path}</option>
            ))}
          </select>
        </label>
      ) : null}
      {kind === 'copy' || kind === 'backup' ? (
        <label>
          Image <input value={expression} onChange={(e) => setExpression(e.target.value)} placeholder="s2 + s1   or   s3 - s2" required name="expression" className="mono" />
        </label>
      ) : null}
      {kind === 'copy' ? (
        <label>
          Destination volume <input value={target} onChange={(e) => setTarget(e.target.value)} placeholder="/data/copy.img (created when new)" required name="target" />
        </label>
      ) : null}
      {kind === 'backup' ? (
        <>
          <label>
            Backup file <input value={target} onChange={(e) => setTarget(e.target.value)} placeholder="/backups/vol.level0" required name="target" />
          </label>
          <label>
            <input type="checkbox" checked={compress} onChange={(e) => setCompress(e.target.checked)} /> lz4
          </label>
          <label>
            <input type="checkbox" checked={replace} onChange={(e) => setReplace(e.target.checked)} name="replace" /> replace an existing file
          </label>
        </>
      ) : null}
      {kind === 'restore' ? (
        <>
          <label>
            Into volume <input value={target} onChange={(e) => setTarget(e.target.value)} placeholder="/data/restored.img" required name="target" />
          </label>
          <label className="block">
            Backup files, full first, one per line <textarea value={files} onChange={(e) => setFiles(e.target.value)} rows={3} required name="files" />
          </label>
        </>
      ) : null}
      {kind === 'verify' ? (
        <label className="block">
          Backup files, one per line <textarea value={files} onChange={(e) => setFiles(e.target.value)} rows={3} required name="files" />
        </label>
      ) : null}
      {kind === 'backup' || kind === 'restore' || kind === 'verify' ? (
        <label>
          Backup files are{' '}
          <select value={inVolume} onChange={(e) => setInVolume(e.target.value)} name="inVolume">
            <option value="">on the host</option>
            {known.map((k) => (
              <option key={k.path} value={k.path}>
                inside {k.path}
              </option>
            ))}
          </select>
        </label>
      ) : null}
      {kind === 'mirror-update' ? (
        mirrors.length === 0 ? (
          <p className="muted">No mirror relationships yet (create one under Relationships).</p>
        ) : (
          <label>
            Relationship{' '}
            <select value={mirror} onChange={(e) => setMirror(e.target.value)} name="mirror">
              {mirrors.map((m) => (
                <option key={m.name}>{m.name}</option>
              ))}
            </select>
          </label>
        )
      ) : null}
      {kind === 'replicate' ? (
        <>
          <label>
            Destination <input value={target} onChange={(e) => setTarget(e.target.value)} placeholder="/data/replica.img or host:port/name" required name="target" />
          </label>
          <label>
            Key file <input value={keyFile} onChange={(e) => setKeyFile(e.target.value)} placeholder="for host:port/name: the pre-shared key" name="keyFile" />
          </label>
          <KeyFileWarning keyFile={keyFile} />
          <label>
            Limit <input value={limit} onChange={(e) => setLimit(e.target.value)} placeholder="MiB/s (blank: no limit)" name="limit" size={8} /> MiB/s (over the wire, or into a local volume)
          </label>
        </>
      ) : null}
      {problem ? (
        <p className="error" data-testid="job-form-problem">
          {problem}
        </p>
      ) : null}
      {kind === 'replicate' && preview ? (
        <p className="muted" data-testid="replicate-preview">
          {preview}
        </p>
      ) : null}
      <div className="buttons">
        <button type="submit" data-testid="job-start">
          Start
        </button>
        {kind === 'replicate' ? (
          <button type="button" onClick={() => void askPreview()} data-testid="replicate-preview-ask" title="Ask the destination what a replication would send now; nothing is sent">
            Preview
          </button>
        ) : null}
      </div>
    </form>
  );
}

/** A path as typed, for comparing: no surrounding blanks, no trailing slash. */
function samePath(a: string, b: string): boolean {
  const norm = (p: string): string => p.trim().replace(/(.)\/+$/, '$1');
  return norm(a) === norm(b);
}

/** What is plainly wrong with the form before the engine is asked, or null. */
function formProblem(kind: FormKind, volume: string, target: string, files: string[], inVolume: string, known: string[]): string | null {
  if ((kind === 'copy' || kind === 'replicate') && samePath(volume, target)) return `The destination is the source volume itself: give another path for the ${kind === 'copy' ? 'copy' : 'replica'}.`;
  if (kind === 'backup' && !inVolume) {
    const vol = known.find((k) => samePath(k, target));
    if (vol) return `${vol} is a volume: a backup file needs a path of its own, e.g. /backups/vol.level0.`;
  }
  if (kind === 'restore' && !inVolume && files.some((f) => samePath(f, target))) return 'The volume to restore into is one of the backup files: give another path for the volume.';
  return null;
}

/** What a finished mirror job did, as the CLI says it (and which downstream destinations lost their base). */
function mirrorOutcome(job: JobState): { line: string; warnings: string[] } | null {
  if (job.state !== 'ok' || (job.kind !== 'mirror-update' && job.kind !== 'mirror-resync') || !job.result) return null;
  return describeMirrorUpdate(job.result as MirrorUpdateReport, formatBytes);
}

const JobCard = memo(function JobCard({ job }: { job: JobState }) {
  const outcome = mirrorOutcome(job);
  const received = useJobs((s) => s.received[job.id] ?? 0);
  const pct = jobPercent(job);
  return (
    <div className={`card job ${job.state}`} data-testid={`job-${job.id}`} data-state={job.state} data-percent={pct.toFixed(1)}>
      <div className="row">
        <b>
          #{job.id} {job.kind}
        </b>
        <span className="muted">{job.title}</span>
        {job.state === 'running' ? (
          <button className="danger" onClick={() => void useJobs.getState().cancel(job.id)} data-testid={`cancel-${job.id}`}>
            Cancel
          </button>
        ) : (
          <span className={job.state === 'ok' ? 'ok' : 'error'}>{job.state}</span>
        )}
      </div>
      <ProgressBar value={pct} label={`job ${job.id}`} />
      <div className="row muted">
        <span data-testid="job-phase">{job.phase}</span>
        <span data-testid="job-progress">
          {formatAmount(job.done, job.unit)} of {formatAmount(job.total, job.unit)} ({pct.toFixed(0)}%)
        </span>
        <span>{formatRate(job.rate, job.unit)}</span>
        <span>ETA {job.state === 'running' ? formatEta(job.etaSeconds) : '—'}</span>
        <span title="progress updates that reached this screen">{received} updates</span>
      </div>
      {outcome ? (
        <div className="small" data-testid="job-outcome">
          {outcome.line}
          {outcome.warnings.map((w) => (
            <div className="warn" key={w}>
              {w}
            </div>
          ))}
        </div>
      ) : null}
      {job.error ? <Notice kind="error">{`${job.error.message} (${job.error.code})`}</Notice> : null}
    </div>
  );
});

/** `value`, but at most once per `ms` (the chart redraws twice a second; the progress bars every update). */
function useThrottled<T>(value: T, ms: number): T {
  const [shown, setShown] = useState(value);
  const last = useRef(0);
  useEffect(() => {
    const wait = last.current + ms - Date.now();
    if (wait <= 0) {
      last.current = Date.now();
      setShown(value);
      return;
    }
    const t = setTimeout(() => {
      last.current = Date.now();
      setShown(value);
    }, wait);
    return () => clearTimeout(t);
  }, [value, ms]);
  return shown;
}

const RateChart = memo(function RateChart({ data, width, unit }: { data: { t: number; rate: number }[]; width: number; unit: string }) {
  return (
    <LineChart width={width} height={220} data={data} margin={{ top: 8, right: 16, bottom: 16, left: 8 }}>
      <CartesianGrid stroke="#1f2a3a" />
      <XAxis dataKey="t" type="number" domain={[0, 'dataMax']} unit=" s" stroke="#8a97a8" />
      <YAxis stroke="#8a97a8" unit={` ${unit}`} width={90} />
      <Tooltip formatter={(v) => `${Number(v).toFixed(1)} ${unit}`} labelFormatter={(t) => `${String(t)} s`} contentStyle={{ background: '#162131', border: '1px solid #2a3547' }} />
      <Line type="linear" dataKey="rate" stroke="#4da3ff" dot={false} isAnimationActive={false} />
    </LineChart>
  );
});

const IDLE = [
  { t: 0, rate: 0 },
  { t: 1, rate: 0 },
];

function Throughput() {
  const list = useJobs(useShallow(selectJobList));
  const [selected, setSelected] = useState<number | null>(null);
  const id = selected ?? list[0]?.id ?? null;
  const samples = useThrottled(useJobs((s) => (id === null ? undefined : s.samples[id])), 500);
  const job = list.find((j) => j.id === id);
  const [ref, width] = useWidth();
  const bytes = (job?.unit ?? 'bytes') === 'bytes';
  // Until a job has samples the chart shows a flat zero line: its axes, grid and line are drawn when the view
  // opens, so a transfer's first samples update a drawn chart instead of building one (that took ~180 ms here).
  // A job's line starts at rest (t = 0, rate 0), so even a job over in one sample draws a line.
  const data = useMemo(() => (samples && samples.length > 0 ? [IDLE[0], ...samples.map((s) => ({ t: Number(s.t.toFixed(2)), rate: bytes ? s.rate / 2 ** 20 : s.rate }))] : IDLE), [samples, bytes]);
  return (
    <section ref={ref} data-testid="throughput">
      <h3>
        Throughput{' '}
        {list.length > 0 ? (
          <>
            of{' '}
            <select value={id ?? ''} onChange={(e) => setSelected(Number(e.target.value))}>
              {list.map((j) => (
                <option key={j.id} value={j.id}>
                  #{j.id} {j.kind}
                </option>
              ))}
            </select>
          </>
        ) : (
          <span className="muted">(no job yet)</span>
        )}
      </h3>
      <RateChart data={data} width={width} unit={bytes ? 'MiB/s' : `${job?.unit ?? ''}/s`} />
    </section>
  );
}

function History() {
  const history = useJobs((s) => s.history);
  return (
    <section>
      <h3>History</h3>
      <table className="table" data-testid="job-history">
        <thead>
          <tr>
            <th>#</th>
            <th>Job</th>
            <th>Volume</th>
            <th>Target</th>
            <th>Finished</th>
            <th>Outcome</th>
            <th>Bytes</th>
            <th>Message</th>
          </tr>
        </thead>
        <tbody>
          {history.map((h) => (
            <tr key={h.id}>
              <td>{h.id}</td>
              <td>{h.kind}</td>
              <td className="mono">{h.volume}</td>
              <td className="mono">{h.target ?? (h.taken ? `took ${h.taken.join(', ') || '—'}; pruned ${h.pruned?.join(', ') || '—'}` : '')}</td>
              <td>{formatDate(h.finishedAt)}</td>
              <td className={h.outcome === 'ok' ? 'ok' : 'error'} data-testid="history-outcome">
                {h.outcome}
              </td>
              <td>{h.bytes !== undefined ? formatBytes(h.bytes) : ''}</td>
              <td className="small" data-testid="history-message">
                {h.error ?? ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function JobsView() {
  const list = useJobs(useShallow(selectJobList));
  const error = useJobs((s) => s.error);
  useEffect(() => {
    void useJobs.getState().refresh();
  }, []);
  return (
    <div className="view">
      <h1>Jobs</h1>
      <JobForm />
      {error ? (
        <Notice kind="error" onClose={() => useJobs.setState({ error: null })}>
          {error}
        </Notice>
      ) : null}
      <Throughput />
      <section data-testid="job-list">
        {list.map((j) => (
          <JobCard key={j.id} job={j} />
        ))}
        {list.length === 0 ? <p className="muted">No jobs in this session yet.</p> : null}
      </section>
      <History />
    </div>
  );
}
