/** Routes the host's pushed events to the stores of their domains. */
import type { Client } from '../client/client.js';
import { useJobs } from './jobs.js';
import { useRelationships } from './relationships.js';
import { useUi } from './ui.js';
import { useVolumes } from './volumes.js';

export function connectEvents(client: Client): () => void {
  const offEvents = client.onEvent((e) => {
    if (e.type === 'job') {
      useJobs.getState().jobEvent(e.job);
      if (e.job.state !== 'running' && (e.job.kind === 'mirror-update' || e.job.kind === 'mirror-resync' || e.job.kind === 'replicate')) void useRelationships.getState().refresh();
    } else if (e.type === 'volumeChanged') useVolumes.getState().volumeChanged(e.volume);
    else if (e.type === 'scheduleRan') void useJobs.getState().refresh(); // the run is in the history now
  });
  const offConnection = client.onConnection((c) => useUi.getState().setConnection(c));
  return () => {
    offEvents();
    offConnection();
  };
}
