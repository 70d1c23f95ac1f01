/** Volumes: the known list, the current volume with its info, snapshots and planes, and a data version. */
import { create } from 'zustand';
import type { KnownVolume, PlaneInfo, SnapshotInfo, VolumeInfo } from '../../../core/api/index.js';
import { errorText } from '../client/client.js';
import { client } from '../client/current.js';

export interface VolumesState {
  known: KnownVolume[];
  current: string | null;
  info: VolumeInfo | null;
  snapshots: SnapshotInfo[];
  planes: PlaneInfo[];
  /** Bumped whenever the current volume's data changed (the grid drops its tiles). */
  version: number;
  loading: boolean;
  error: string | null;
  /** The mirror volume whose takeover waits for a confirmation, or null. */
  askingTakeover: string | null;
  refreshList(): Promise<void>;
  select(path: string | null): Promise<void>;
  refreshCurrent(): Promise<void>;
  open(path: string): Promise<void>;
  create(path: string, sizeBytes: number, raid?: number): Promise<void>;
  forget(path: string): Promise<void>;
  volumeChanged(volume: string): void;
  clearError(): void;
}

export const useVolumes = create<VolumesState>()((set, get) => ({
  known: [],
  current: null,
  info: null,
  snapshots: [],
  planes: [],
  version: 0,
  loading: false,
  error: null,
  askingTakeover: null,

  async refreshList() {
    try {
      const known = await client().call('volumeList', {});
      set({ known });
      const cur = get().current;
      if ((cur === null || !known.some((k) => k.path === cur)) && known.length > 0) await get().select(known[0].path);
    } catch (e) {
      set({ error: errorText(e) });
    }
  },

  async select(path) {
    set({ current: path, info: null, snapshots: [], planes: [], version: get().version + 1 });
    if (path !== null) await get().refreshCurrent();
  },

  async refreshCurrent() {
    const path = get().current;
    if (path === null) return;
    set({ loading: true });
    try {
      const c = client();
      const [info, snapshots, planes] = await Promise.allSettled([c.call('volumeInfo', { volume: path }), c.call('snapList', { volume: path }), c.call('planes', { volume: path })]);
      if (get().current !== path) return;
      if (info.status === 'rejected') throw info.reason;
      // A volume whose snapshot table is damaged still has its facts and files: shown with what failed.
      const failed = [snapshots, planes].find((r) => r.status === 'rejected');
      set({ info: info.value, snapshots: snapshots.status === 'fulfilled' ? snapshots.value : [], planes: planes.status === 'fulfilled' ? planes.value : [], loading: false, error: failed ? errorText(failed.reason) : null, version: get().version + 1 });
    } catch (e) {
      if (get().current === path) set({ loading: false, error: errorText(e) });
    }
  },

  async open(path) {
    try {
      const info = await client().call('volumeOpen', { path });
      await get().refreshList();
      await get().select(info.path);
    } catch (e) {
      set({ error: errorText(e) });
      throw e;
    }
  },

  async create(path, sizeBytes, raid) {
    try {
      const info = await client().call('volumeCreate', raid === undefined ? { path, sizeBytes } : { path, sizeBytes, raid });
      await get().refreshList();
      await get().select(info.path);
    } catch (e) {
      set({ error: errorText(e) });
      throw e;
    }
  },

  async forget(path) {
    await client().call('volumeForget', { path });
    if (get().current === path) await get().select(null);
    await get().refreshList();
  },

  volumeChanged(volume) {
    if (volume === get().current) void get().refreshCurrent();
    void get().refreshList(); // its row in the list (snapshots, size, health), or a job's destination just became known
  },

  clearError() {
    set({ error: null });
  },
}));

/** Planes as grid columns: active first, then snapshots oldest first. */
export function selectColumns(s: Pick<VolumesState, 'planes' | 'snapshots'>): PlaneInfo[] {
  const order = new Map(s.snapshots.map((x, i) => [x.plane, Date.parse(x.createdAt) * 1000 + i]));
  const active = s.planes.filter((p) => p.plane === 0);
  const snaps = s.planes.filter((p) => p.plane !== 0).sort((a, b) => (order.get(a.plane) ?? 0) - (order.get(b.plane) ?? 0));
  return [...active, ...snaps];
}

/** The capacity bar: active, held only by snapshots, free (fractions of the volume). */
export function selectCapacity(info: VolumeInfo | null): { active: number; snapshotOnly: number; free: number } | null {
  if (!info) return null;
  const total = info.blockCount;
  return { active: info.activeBlocks / total, snapshotOnly: info.snapshotOnlyBlocks / total, free: info.freeBlocks / total };
}

/** RAID-4 data members (0 for a single image). */
export function dataMembers(info: VolumeInfo | null): number {
  if (!info || info.device.kind !== 'raid4') return 0;
  return info.device.members.filter((m) => m.role === 'data').length;
}
