/**
 * View 6: the backup planner — a level policy and retention; per day the exact size of each level's backup from
 * the volume's real planes (the engine's imagePlan), the chain that restores a chosen date, the storage total;
 * "Create schedule" turns the policy into a real snapshot schedule the engine's scheduler runs.
 */
import { useEffect, useState } from 'react';
import { Bar, BarChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from 'recharts';
import { Notice, useWidth } from '../components/common.js';
import { formatBytes, formatCount, formatDate } from '../format.js';
import { keptPoints, perDay, policyText, snapshotsToKeep, usePlanner } from '../stores/planner.js';
import { useVolumes } from '../stores/volumes.js';

const LEVEL_COLORS = ['#4da3ff', '#3fc97e', '#ff9f43', '#c17cff', '#ff6b81'];

function Policy() {
  const levels = usePlanner((s) => s.levels);
  const retention = usePlanner((s) => s.retention);
  const [draft, setDraft] = useState(levels);
  useEffect(() => setDraft(levels), [levels]);
  return (
    <form
      className="card"
      onSubmit={(e) => {
        e.preventDefault();
        usePlanner.getState().setLevels(draft);
      }}
      data-testid="policy"
    >
      <h3>Policy</h3>
      {draft.map((every, level) => (
        <label key={level}>
          Level {level} every{' '}
          <input
            value={every}
            size={5}
            onChange={(e) => setDraft(draft.map((x, i) => (i === level ? e.target.value : x)))}
            name={`level${level}`}
          />
        </label>
      ))}
      <span>
        {draft.length < 3 ? (
          <button type="button" onClick={() => setDraft([...draft, '6h'])}>
            + level
          </button>
        ) : null}
        {draft.length > 1 ? (
          <button type="button" onClick={() => setDraft(draft.slice(0, -1))}>
            − level
          </button>
        ) : null}
      </span>
      <label>
        Keep the newest{' '}
        <input type="number" min={1} max={52} value={retention} onChange={(e) => usePlanner.getState().setRetention(Number(e.target.value))} size={3} name="retention" /> level-0 cycles
      </label>
      <button type="submit">Plan</button> <span className="muted mono">{policyText(draft)}</span>
    </form>
  );
}

function Charts() {
  const plan = usePlanner((s) => s.plan);
  const retention = usePlanner((s) => s.retention);
  const [ref, width] = useWidth();
  if (!plan) return null;
  const levels = plan.policy.levels.length;
  const days = perDay(plan.points, levels);
  const kept = keptPoints(plan.points, retention);
  const keptBytes = kept.reduce((n, p) => n + p.bytes, 0);
  const allBytes = plan.points.reduce((n, p) => n + p.bytes, 0);
  const data = days.map((d) => {
    const row: Record<string, number | string> = { day: d.day };
    for (let l = 0; l < levels; l++) row[`level ${l}`] = Number(((d[`level${l}`] as number) / 2 ** 20).toFixed(3));
    return row;
  });
  return (
    <section ref={ref}>
      <h3>Backups per day (exact, from the planes)</h3>
      <BarChart width={width} height={260} data={data} margin={{ top: 8, right: 16, bottom: 8, left: 8 }} data-testid="plan-chart">
        <CartesianGrid strokeDasharray="3 3" stroke="#2a3547" />
        <XAxis dataKey="day" stroke="#8a97a8" />
        <YAxis unit=" MiB" stroke="#8a97a8" width={80} />
        <Tooltip contentStyle={{ background: '#162131', border: '1px solid #2a3547' }} formatter={(v) => `${Number(v).toFixed(2)} MiB`} />
        <Legend />
        {Array.from({ length: levels }, (_, l) => (
          <Bar key={l} dataKey={`level ${l}`} stackId="a" fill={LEVEL_COLORS[l % LEVEL_COLORS.length]} isAnimationActive={false} />
        ))}
      </BarChart>
      <dl className="facts" data-testid="plan-totals">
        {plan.totals.map((t) => (
          <span key={t.level}>
            <dt>Level {t.level}</dt>
            <dd>
              {t.points} backup(s), {formatBytes(t.bytes)}
            </dd>
          </span>
        ))}
        <dt>Storage kept</dt>
        <dd data-testid="storage-total">
          {formatBytes(keptBytes)} for the newest {retention} level-0 cycle(s) ({kept.length} backups); {formatBytes(allBytes)} for all {plan.points.length}
        </dd>
        {plan.unplanned.length > 0 ? (
          <>
            <dt>Not covered by this plan yet</dt>
            <dd>{plan.unplanned.join(', ')} (taken after its newest point; the next point carries them)</dd>
          </>
        ) : null}
      </dl>
      <table className="table" data-testid="plan-points">
        <thead>
          <tr>
            <th>Snapshot</th>
            <th>Taken</th>
            <th>Level</th>
            <th>Image</th>
            <th>Blocks</th>
            <th>Size</th>
            <th>Kept</th>
          </tr>
        </thead>
        <tbody>
          {plan.points.map((p) => (
            <tr key={p.snapshot}>
              <td>{p.snapshot}</td>
              <td>{formatDate(p.at)}</td>
              <td>{p.level}</td>
              <td className="mono">{p.expression}</td>
              <td>{formatCount(p.blocks)}</td>
              <td>{formatBytes(p.bytes)}</td>
              <td>{kept.includes(p) ? 'yes' : 'pruned'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function RestoreChain() {
  const at = usePlanner((s) => s.at);
  const plan = usePlanner((s) => s.plan);
  return (
    <section data-testid="restore-chain">
      <h3>Restore a date</h3>
      <input type="datetime-local" value={at} onChange={(e) => usePlanner.getState().setAt(e.target.value)} name="at" />
      {plan?.restore ? (
        plan.restore.snapshot ? (
          <p>
            Restores <b>{plan.restore.snapshot}</b> with {plan.restore.chain.length} backup(s), {formatBytes(plan.restore.bytes)} read: <span className="mono">{plan.restore.chain.join(' → ')}</span>
          </p>
        ) : (
          <p className="warn">No backup point at or before {formatDate(plan.restore.at)}.</p>
        )
      ) : (
        <p className="muted">Pick a date to see the chain of backups that restores it.</p>
      )}
    </section>
  );
}

function Schedules() {
  const schedules = usePlanner((s) => s.schedules);
  const levels = usePlanner((s) => s.levels);
  const retention = usePlanner((s) => s.retention);
  const notice = usePlanner((s) => s.notice);
  const policyError = usePlanner((s) => s.policyError);
  const plan = usePlanner((s) => s.plan);
  const [label, setLabel] = useState('planner');
  // A schedule is made only from a policy the engine has accepted (the plan shown above is its proof).
  const blocked = policyError ? `Not from this policy: ${policyError}. Fix it and press Plan.` : plan ? null : 'Press Plan first: a schedule is made from a planned policy.';
  const finest = levels[levels.length - 1];
  return (
    <section data-testid="schedules">
      <h3>Schedule</h3>
      <p className="muted">
        Creates a real snapshot schedule: a snapshot every {finest}, keeping the newest {snapshotsToKeep(levels, retention)} (enough for {retention} level-0 cycle(s)); the console's scheduler takes and prunes
        them. Backing up each planned image is started from Jobs; the engine has no scheduled backup-to-file job yet.
      </p>
      <form
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          void usePlanner.getState().createSchedule(label);
        }}
      >
        <input value={label} onChange={(e) => setLabel(e.target.value)} name="label" />{' '}
        <button type="submit" data-testid="create-schedule" disabled={blocked !== null} title={blocked ?? undefined}>
          Create schedule
        </button>
      </form>
      {blocked ? (
        <p className="warn" data-testid="schedule-blocked">
          {blocked}
        </p>
      ) : null}
      {notice ? <Notice kind="ok">{notice}</Notice> : null}
      <table className="table">
        <tbody>
          {schedules.map((s) => (
            <tr key={s.label}>
              <td>{s.label}</td>
              <td>{s.cadence}</td>
              <td>keep {s.keep}</td>
              <td>{s.due ? 'due now' : `next ${formatDate(s.nextAt)}`}</td>
              <td>
                <button className="link" onClick={() => void usePlanner.getState().removeSchedule(s.label)}>
                  remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function PlannerView() {
  const volume = useVolumes((s) => s.current);
  const version = useVolumes((s) => s.version);
  const error = usePlanner((s) => s.error);
  // The plan is computed while this view is open: on opening it, and again when the volume changes.
  useEffect(() => {
    void usePlanner.getState().compute();
  }, [volume, version]);
  useEffect(() => {
    void usePlanner.getState().loadSchedules();
  }, [volume]);
  if (!volume) return <p className="muted">Open a volume first (Volumes).</p>;
  return (
    <div className="view">
      <h1>Backup planner</h1>
      <Policy />
      {error ? <Notice kind="error">{error}</Notice> : null}
      <Charts />
      <RestoreChain />
      <Schedules />
    </div>
  );
}
