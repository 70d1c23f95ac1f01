/** Routes the host's pushed events to the stores of their domains. */
import type { Client } from '../client/client.js';
import { useJobs } from './jobs.js';
import { useRelationships } from './relationships.js';
import { useUi } from './ui.js';
import { useVolumes } from './volumes.js';

const RELATIONSHIP_JOBS = new Set<string>(['mirror-update', 'mirror-resync', 'replicate']);

export function connectEvents(client: Client): () => void {
  // Relationship jobs running, by their last phase: their rows are refreshed at each new phase (from the first
  // transfer on they say "transferring", not the state before; the job's very first event can come before the
  // update has recorded itself) and when they end.
  const running = new Map<number, string>();
  const offEvents = client.onEvent((e) => {
    if (e.type === 'job') {
      useJobs.getState().jobEvent(e.job);
      if (RELATIONSHIP_JOBS.has(e.job.kind)) {
        const newPhase = e.job.state === 'running' && running.get(e.job.id) !== e.job.phase;
        if (e.job.state === 'running') running.set(e.job.id, e.job.phase);
        else running.delete(e.job.id);
        if (newPhase || e.job.state !== 'running') void useRelationships.getState().refresh();
      }
    } else if (e.type === 'volumeChanged') useVolumes.getState().volumeChanged(e.volume);
    else if (e.type === 'scheduleRan') void useJobs.getState().refresh(); // the run is in the history now
  });
  const offConnection = client.onConnection((c) => useUi.getState().setConnection(c));
  return () => {
    offEvents();
    offConnection();
  };
}
