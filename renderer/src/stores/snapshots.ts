/**
 * The snapshot browser: the snapshot being browsed and its folder listing, a diff of two snapshots, the revert
 * preview, and the outcome of the last action (create, delete, rename, hold, master, restore, revert).
 */
import { create } from 'zustand';
import type { CopySummary, DirPage, RevertPreview, SnapshotDiff } from '../../../core/api/index.js';
import { errorText } from '../client/client.js';
import { client } from '../client/current.js';
import { useVolumes } from './volumes.js';

export interface Notice {
  kind: 'ok' | 'error';
  text: string;
}

export interface SnapshotsState {
  /** The snapshot browsed (or `active`). */
  browsing: string | null;
  path: string;
  listing: DirPage | null;
  diff: SnapshotDiff | null;
  revert: RevertPreview | null;
  notice: Notice | null;
  busy: boolean;
  browse(snapshot: string | null, path?: string): Promise<void>;
  create(name: string, shadow: boolean): Promise<boolean>;
  remove(name: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  hold(name: string, hold: boolean): Promise<void>;
  master(name: string, mark: boolean): Promise<void>;
  diffOf(older: string, newer: string): Promise<void>;
  restoreInPlace(path: string): Promise<void>;
  restoreToHost(path: string, folder: string, name: string): Promise<(CopySummary & { target: string }) | null>;
  previewRevert(name: string | null): Promise<void>;
  revertTo(name: string): Promise<void>;
  dismiss(): void;
}

function volume(): string {
  const v = useVolumes.getState().current;
  if (!v) throw new Error('no volume selected');
  return v;
}

export const useSnapshots = create<SnapshotsState>()((set, get) => {
  /** Runs an action, reports it, and refreshes what it changed. */
  const act = async (what: string, fn: () => Promise<unknown>): Promise<boolean> => {
    set({ busy: true });
    try {
      await fn();
      set({ notice: { kind: 'ok', text: what }, busy: false });
      await useVolumes.getState().refreshCurrent();
      return true;
    } catch (e) {
      set({ notice: { kind: 'error', text: errorText(e) }, busy: false });
      return false;
    }
  };
  return {
    browsing: null,
    path: '/',
    listing: null,
    diff: null,
    revert: null,
    notice: null,
    busy: false,

    async browse(snapshot, path = '/') {
      set({ browsing: snapshot, path, listing: null });
      if (snapshot === null) return;
      try {
        const listing = await client().call('ls', { volume: volume(), snapshot, path, limit: 2000 });
        if (get().browsing === snapshot && get().path === path) set({ listing });
      } catch (e) {
        set({ notice: { kind: 'error', text: errorText(e) } });
      }
    },
    create: (name, shadow) => act(`created snapshot ${name}`, () => client().call('snapCreate', { volume: volume(), name, shadow })),
    async remove(name) {
      await act(`deleted snapshot ${name}`, () => client().call('snapDelete', { volume: volume(), name }));
      if (get().browsing === name) set({ browsing: null, listing: null });
    },
    async rename(from, to) {
      await act(`renamed ${from} to ${to}`, () => client().call('snapRename', { volume: volume(), from, to }));
      if (get().browsing === from) await get().browse(to, get().path);
    },
    async hold(name, hold) {
      await act(`${hold ? 'held' : 'released'} ${name}`, () => client().call('snapHold', { volume: volume(), name, hold }));
    },
    async master(name, mark) {
      await act(`${mark ? 'marked' : 'unmarked'} ${name} as master`, () => client().call('masterMark', { volume: volume(), name, mark }));
    },
    async diffOf(older, newer) {
      try {
        set({ diff: await client().call('snapDiff', { volume: volume(), older, newer }) });
      } catch (e) {
        set({ diff: null, notice: { kind: 'error', text: errorText(e) } });
      }
    },
    async restoreInPlace(path) {
      const snapshot = get().browsing;
      if (!snapshot || snapshot === 'active') return;
      await act(`restored ${path} from ${snapshot}`, () => client().call('snapRestore', { volume: volume(), snapshot, path }));
    },
    async restoreToHost(path, folder, name) {
      const snapshot = get().browsing;
      if (!snapshot) return null;
      let out: (CopySummary & { target: string }) | null = null;
      await act(`restored ${path} from ${snapshot} to the host folder`, async () => {
        out = await client().call('restoreToHost', { volume: volume(), snapshot, path, folder, name });
        return out;
      });
      if (out) set({ notice: { kind: 'ok', text: `restored ${path} from ${snapshot} to ${(out as { target: string }).target}` } });
      return out;
    },
    async previewRevert(name) {
      if (name === null) return set({ revert: null });
      try {
        set({ revert: await client().call('revertPreview', { volume: volume(), snapshot: name }) });
      } catch (e) {
        set({ revert: null, notice: { kind: 'error', text: errorText(e) } });
      }
    },
    async revertTo(name) {
      await act(`reverted the volume to ${name}`, () => client().call('snapRevert', { volume: volume(), snapshot: name }));
      set({ revert: null });
      if (get().browsing) await get().browse(get().browsing, get().path);
    },
    dismiss() {
      set({ notice: null });
    },
  };
});

useVolumes.subscribe((v, prev) => {
  if (v.current !== prev.current) useSnapshots.setState({ browsing: null, listing: null, diff: null, revert: null, path: '/' });
});
