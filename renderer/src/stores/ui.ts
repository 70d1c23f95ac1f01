/** Which view is open, and the connection to the engine host. */
import { create } from 'zustand';
import type { ConnectionState } from '../client/client.js';

export type ViewId = 'volumes' | 'grid' | 'composer' | 'snapshots' | 'jobs' | 'planner' | 'relationships';

export interface UiState {
  view: ViewId;
  connection: ConnectionState;
  show(view: ViewId): void;
  setConnection(c: ConnectionState): void;
}

export const useUi = create<UiState>()((set) => ({
  view: 'volumes',
  connection: 'connecting',
  show: (view) => set({ view }),
  setConnection: (connection) => set({ connection }),
}));
