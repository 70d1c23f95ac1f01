/** Relationships: mirrors and replicas (state, lag, last transfer) as the engine persists them, and their actions. */
import { create } from 'zustand';
import { describeMirrorSet, type MasterInfo, type MirrorInfo, type MethodArgs } from '../../../core/api/index.js';
import { errorText } from '../client/client.js';
import { client } from '../client/current.js';
import { formatBytes, formatDate } from '../format.js';
import { useJobs } from './jobs.js';
import { useVolumes } from './volumes.js';

export interface RelationshipsState {
  mirrors: MirrorInfo[];
  masters: MasterInfo[];
  error: string | null;
  notice: string | null;
  /** Reads the relationships again; `quiet` (a periodic look): a failure leaves the last ones and says nothing. */
  refresh(quiet?: boolean): Promise<void>;
  create(args: MethodArgs<'mirrorCreate'>): Promise<boolean>;
  /** The relationship whose settings form (schedule, limit, key file) is open; one at a time. */
  editing: string | null;
  askSettings(name: string | null): void;
  /** Changes what `args` gives (its state stays: no full copy follows); true when the engine took it. */
  saveSettings(name: string, args: Omit<MethodArgs<'mirrorSet'>, 'name'>): Promise<boolean>;
  update(name: string): Promise<void>;
  resync(name: string): Promise<void>;
  /** A full mirror whose full resync (copy whole, replace the mirror) awaits confirmation. */
  askingFullResync: string | null;
  askFullResync(name: string | null): void;
  resyncFull(name: string): Promise<void>;
  /** A relationship whose resync that discards what only the rolled-back volume holds awaits confirmation. */
  askingDiscardResync: string | null;
  askDiscardResync(name: string | null): void;
  resyncDiscarding(name: string): Promise<void>;
  breakOff(name: string): Promise<void>;
  /** A relationship whose delete awaits confirmation. */
  askingDelete: string | null;
  askDelete(name: string | null): void;
  remove(name: string): Promise<void>;
  /** A destination the user asked to release, awaiting confirmation. */
  releasing: string | null;
  askRelease(destination: string | null): void;
  /** Forgets a destination of the current volume that will not come back; its masters are no longer held. */
  release(destination: string): Promise<void>;
}

export const useRelationships = create<RelationshipsState>()((set, get) => ({
  mirrors: [],
  masters: [],
  error: null,
  notice: null,

  async refresh(quiet = false) {
    try {
      const volume = useVolumes.getState().current;
      const [mirrors, masters] = await Promise.all([client().call('mirrorList', {}), volume ? client().call('masterList', { volume }) : Promise.resolve([])]);
      // A periodic look keeps an error the user has not dismissed yet (a refusal from a button).
      set(quiet ? { mirrors, masters } : { mirrors, masters, error: null });
    } catch (e) {
      if (!quiet) set({ error: errorText(e) });
    }
  },
  async create(args) {
    try {
      await client().call('mirrorCreate', args);
      set({ notice: `created relationship ${args.name}; its first update initializes the mirror`, error: null });
      await get().refresh();
      return true;
    } catch (e) {
      set({ error: errorText(e) });
      return false;
    }
  },
  editing: null,
  askSettings(name) {
    set({ editing: name });
  },
  async saveSettings(name, args) {
    try {
      const r = await client().call('mirrorSet', { name, ...args });
      // The report's relationship at once: the notice and the row say the same until the refresh lands.
      set((s) => ({ mirrors: s.mirrors.map((m) => (m.name === name ? r.mirror : m)), notice: describeMirrorSet(r, formatBytes, formatDate), error: null, editing: null }));
      await get().refresh();
      return true;
    } catch (e) {
      // An earlier success above the refusal would read as this save's outcome.
      set({ error: errorText(e), notice: null });
      return false;
    }
  },
  async update(name) {
    await useJobs.getState().start({ kind: 'mirror-update', name });
    set({ notice: `update of ${name} started (see Jobs)` });
  },
  async resync(name) {
    await useJobs.getState().start({ kind: 'mirror-resync', name });
    set({ notice: `resync of ${name} started (see Jobs)` });
  },
  askingFullResync: null,
  askFullResync(name) {
    set({ askingFullResync: name });
  },
  async resyncFull(name) {
    set({ askingFullResync: null });
    await useJobs.getState().start({ kind: 'mirror-resync', name, full: true });
    set({ notice: `full resync of ${name} started (see Jobs)` });
  },
  askingDiscardResync: null,
  askDiscardResync(name) {
    set({ askingDiscardResync: name });
  },
  async resyncDiscarding(name) {
    set({ askingDiscardResync: null });
    await useJobs.getState().start({ kind: 'mirror-resync', name, discard: true });
    set({ notice: `resync of ${name}, discarding what only the mirror holds, started (see Jobs)` });
  },
  async breakOff(name) {
    try {
      const r = await client().call('mirrorBreak', { name });
      set({ notice: `broke ${name}: ${r.destination} is ${r.writable ? 'writable' : 'still read-only'}`, error: null });
      await get().refresh();
    } catch (e) {
      set({ error: errorText(e) });
    }
  },
  releasing: null,
  askRelease(destination) {
    set({ releasing: destination });
  },
  async release(destination) {
    const volume = useVolumes.getState().current;
    set({ releasing: null });
    if (!volume) return;
    try {
      const r = await client().call('masterRelease', { volume, destination });
      set({ notice: `forgot destination ${r.destination}; ${r.released.length > 0 ? `no longer held for it: ${r.released.join(', ')}` : 'it held no master snapshot alone'}`, error: null });
      await get().refresh();
    } catch (e) {
      set({ error: errorText(e) });
    }
  },
  askingDelete: null,
  askDelete(name) {
    set({ askingDelete: name });
  },
  async remove(name) {
    set({ askingDelete: null });
    try {
      set({ mirrors: await client().call('mirrorDelete', { name }), notice: `deleted relationship ${name} (snapshots stay)` });
    } catch (e) {
      set({ error: errorText(e) });
    }
  },
}));

export interface TopologyNode {
  id: string;
  depth: number;
  row: number;
}

/** Lays relationships out as a tree (sources left, destinations right, cascades further right). */
export function topology(mirrors: MirrorInfo[]): { nodes: TopologyNode[]; edges: MirrorInfo[] } {
  const ids = new Set<string>();
  for (const m of mirrors) {
    ids.add(m.source);
    ids.add(m.destination);
  }
  const depth = new Map<string, number>();
  const incoming = new Map<string, string[]>();
  for (const m of mirrors) incoming.set(m.destination, [...(incoming.get(m.destination) ?? []), m.source]);
  const depthOf = (id: string, seen: Set<string>): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (seen.has(id)) return 0; // a cycle (a reversed resync): stop
    seen.add(id);
    const d = Math.max(-1, ...(incoming.get(id) ?? []).map((s) => depthOf(s, seen))) + 1;
    depth.set(id, d);
    return d;
  };
  for (const id of ids) depthOf(id, new Set());
  // Column by column, each volume goes next to its source's row, so the edges of a tree do not cross.
  const rowOf = new Map<string, number>();
  const nodes: TopologyNode[] = [];
  const deepest = Math.max(0, ...depth.values());
  for (let d = 0; d <= deepest; d++) {
    const parentRow = (id: string): number => Math.min(Infinity, ...(incoming.get(id) ?? []).map((s) => rowOf.get(s) ?? Infinity));
    const column = [...ids].filter((id) => (depth.get(id) ?? 0) === d).sort((a, b) => parentRow(a) - parentRow(b) || a.localeCompare(b));
    column.forEach((id, row) => {
      rowOf.set(id, row);
      nodes.push({ id, depth: d, row });
    });
  }
  return { nodes, edges: mirrors };
}
