/** The console: a sidebar with the seven views and the current volume, the open view beside it. */
import { useEffect } from 'react';
import { ComposerView } from './views/ComposerView.js';
import { GridView } from './views/GridView.js';
import { JobsView } from './views/JobsView.js';
import { PlannerView } from './views/PlannerView.js';
import { RelationshipsView } from './views/RelationshipsView.js';
import { SnapshotsView } from './views/SnapshotsView.js';
import { VolumesView } from './views/VolumesView.js';
import { useJobs } from './stores/jobs.js';
import { useUi, type ViewId } from './stores/ui.js';
import { useVolumes } from './stores/volumes.js';

export const VIEWS: { id: ViewId; label: string }[] = [
  { id: 'volumes', label: 'Volumes' },
  { id: 'grid', label: 'Bit-plane grid' },
  { id: 'composer', label: 'Image composer' },
  { id: 'snapshots', label: 'Snapshots' },
  { id: 'jobs', label: 'Jobs' },
  { id: 'planner', label: 'Backup planner' },
  { id: 'relationships', label: 'Relationships' },
];

function Sidebar() {
  const view = useUi((s) => s.view);
  const connection = useUi((s) => s.connection);
  const known = useVolumes((s) => s.known);
  const current = useVolumes((s) => s.current);
  const running = useJobs((s) => Object.values(s.jobs).filter((j) => j.state === 'running').length);
  return (
    <nav className="sidebar">
      <div className="brand">Snapplane</div>
      <label className="volume-pick">
        Volume
        <select value={current ?? ''} onChange={(e) => void useVolumes.getState().select(e.target.value || null)} data-testid="volume-select">
          {current === null ? <option value="">—</option> : null}
          {known.map((k) => (
            <option key={k.path} value={k.path}>
              {k.path.split('/').pop()}
            </option>
          ))}
        </select>
      </label>
      <ul>
        {VIEWS.map((v) => (
          <li key={v.id}>
            <button className={view === v.id ? 'active' : ''} onClick={() => useUi.getState().show(v.id)} data-testid={`nav-${v.id}`}>
              {v.label}
              {v.id === 'jobs' && running > 0 ? <span className="badge">{running}</span> : null}
            </button>
          </li>
        ))}
      </ul>
      <div className={`connection ${connection}`} data-testid="connection">
        {connection === 'open' ? 'connected' : connection === 'connecting' ? 'connecting…' : 'disconnected: retrying'}
      </div>
    </nav>
  );
}

export function App() {
  const view = useUi((s) => s.view);
  useEffect(() => {
    void useVolumes.getState().refreshList();
    void useJobs.getState().refresh();
  }, []);
  return (
    <div className="app">
      <Sidebar />
      <main className="main" data-testid={`view-${view}`}>
        {view === 'volumes' ? <VolumesView /> : null}
        {view === 'grid' ? <GridView /> : null}
        {view === 'composer' ? <ComposerView /> : null}
        {view === 'snapshots' ? <SnapshotsView /> : null}
        {view === 'jobs' ? <JobsView /> : null}
        {view === 'planner' ? <PlannerView /> : null}
        {view === 'relationships' ? <RelationshipsView /> : null}
      </main>
    </div>
  );
}
