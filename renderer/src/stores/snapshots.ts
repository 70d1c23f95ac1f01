/**
 * The snapshot browser: the snapshot being browsed and its folder listing, a diff of two snapshots, the revert
 * preview, and the outcome of the last action (create, delete, rename, hold, master, restore, revert).
 */
import { create } from 'zustand';
import type { CopySummary, DirPage, RevertPreview, SnapshotDiff } from '../../../core/api/index.js';
import { ClientError, errorText } from '../client/client.js';
import { client } from '../client/current.js';
import { consoleErrorText } from '../messages.js';
import { useVolumes } from './volumes.js';

export interface Notice {
  kind: 'ok' | 'error';
  text: string;
}

/** A restore by click that would replace a live file or folder which differs from the snapshot's: asked first. */
export interface RestoreAsk {
  snapshot: string;
  path: string;
  /** Where "restore as a copy" puts it: beside the live one, under a name nothing uses. */
  copyTo: string;
  /** The newest snapshot that holds the live version as it is now, or null when none does (replacing loses it). */
  liveHeldBy: string | null;
  /** What the live folder has that the snapshot's lacks: replacing removes these (paths, sorted). */
  lost: string[];
}

/** A snapshot delete waiting for its confirmation, with what it frees and who depends on the snapshot. */
export interface DeleteAsk {
  name: string;
  freedBytes: number;
  held: boolean;
  /** Replication destinations that have not moved past this master snapshot. */
  neededBy: string[];
  /** Mirror relationships of this volume whose last common snapshot it is. */
  relationships: string[];
  /** The engine's refusal, in the console's words, when a confirmed delete failed. */
  error: string | null;
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
  restoreInPlace(path: string, to?: string): Promise<void>;
  restoreAsk: RestoreAsk | null;
  /** Restores in place, or first asks (restoreAsk) when that would replace a live version that differs. */
  askRestore(path: string): Promise<void>;
  answerRestore(choice: 'copy' | 'replace' | null): Promise<void>;
  deleteAsk: DeleteAsk | null;
  /** Gathers what deleting `name` frees and who needs it, for the confirmation (null: cancel). */
  askDelete(name: string | null): Promise<void>;
  restoreToHost(path: string, folder: string, name: string): Promise<(CopySummary & { target: string }) | null>;
  previewRevert(name: string | null): Promise<void>;
  revertTo(name: string): Promise<void>;
  dismiss(): void;
}

/** A snapshot or file the page showed is gone (deleted outside the console): what is shown is refetched. */
function refreshIfGone(e: unknown): void {
  if (e instanceof ClientError && e.code === 'NOT_FOUND') void useVolumes.getState().refreshCurrent();
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
      set({ notice: { kind: 'error', text: consoleErrorText(e) }, busy: false });
      refreshIfGone(e);
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
    restoreAsk: null,
    deleteAsk: null,

    async browse(snapshot, path = '/') {
      set({ browsing: snapshot, path, listing: null });
      if (snapshot === null) return;
      try {
        const listing = await client().call('ls', { volume: volume(), snapshot, path, limit: 2000 });
        if (get().browsing === snapshot && get().path === path) set({ listing });
      } catch (e) {
        set({ notice: { kind: 'error', text: errorText(e) } });
        refreshIfGone(e);
      }
    },
    create: (name, shadow) => act(`created snapshot ${name}`, () => client().call('snapCreate', { volume: volume(), name, shadow })),
    async askDelete(name) {
      if (name === null) return set({ deleteAsk: null });
      const v = volume();
      try {
        const [space, masters, mirrors] = await Promise.all([client().call('space', { volume: v, names: [name] }), client().call('masterList', { volume: v }), client().call('mirrorList', {})]);
        const snap = useVolumes.getState().snapshots.find((s) => s.name === name);
        set({
          deleteAsk: {
            name,
            freedBytes: space.freedBytes,
            held: snap?.flags.hold === true,
            neededBy: masters.find((m) => m.name === name)?.neededBy ?? [],
            relationships: mirrors.filter((m) => m.source === v && m.lastCommon === name).map((m) => m.name),
            error: null,
          },
        });
      } catch (e) {
        set({ deleteAsk: null, notice: { kind: 'error', text: consoleErrorText(e) } });
        refreshIfGone(e);
      }
    },
    async remove(name) {
      try {
        await client().call('snapDelete', { volume: volume(), name });
      } catch (e) {
        // The refusal belongs in the dialog that asked, next to what it is about.
        const ask = get().deleteAsk;
        if (ask?.name === name) set({ deleteAsk: { ...ask, error: consoleErrorText(e) } });
        else set({ notice: { kind: 'error', text: consoleErrorText(e) } });
        refreshIfGone(e);
        return;
      }
      set({ deleteAsk: null, notice: { kind: 'ok', text: `deleted snapshot ${name}` } });
      if (get().browsing === name) set({ browsing: null, listing: null });
      await useVolumes.getState().refreshCurrent();
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
    async restoreInPlace(path, to) {
      const snapshot = get().browsing;
      if (!snapshot || snapshot === 'active') return;
      await act(to ? `restored ${path} from ${snapshot} as ${to}` : `restored ${path} from ${snapshot}`, () => client().call('snapRestore', { volume: volume(), snapshot, path, ...(to ? { to } : {}) }));
    },
    async askRestore(path) {
      const snapshot = get().browsing;
      if (!snapshot || snapshot === 'active') return;
      try {
        const ask = await restoreConflict(volume(), snapshot, path);
        if (ask) set({ restoreAsk: ask });
        else await get().restoreInPlace(path);
      } catch (e) {
        set({ notice: { kind: 'error', text: consoleErrorText(e) } });
      }
    },
    async answerRestore(choice) {
      const ask = get().restoreAsk;
      set({ restoreAsk: null });
      if (!ask || choice === null || get().browsing !== ask.snapshot) return;
      await get().restoreInPlace(ask.path, choice === 'copy' ? ask.copyTo : undefined);
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

/** True when the diff touches `path` or anything under it. */
function touches(diff: SnapshotDiff, path: string): boolean {
  return [...diff.added, ...diff.changed, ...diff.removed].some((p) => p === path || p.startsWith(`${path}/`));
}

/**
 * What restoring `path` from `snapshot` in place would replace: null when nothing lives there or the live version is
 * the snapshot's; otherwise a free name for a copy and the newest snapshot that keeps the live version.
 */
async function restoreConflict(volume: string, snapshot: string, path: string): Promise<RestoreAsk | null> {
  const slash = path.lastIndexOf('/');
  const parent = path.slice(0, slash) || '/';
  const name = path.slice(slash + 1);
  let names: Set<string>;
  try {
    names = new Set((await client().call('ls', { volume, path: parent, limit: 10_000 })).entries.map((e) => e.name));
  } catch {
    return null; // its folder is gone from the live file system: the restore brings it back, replacing nothing
  }
  if (!names.has(name)) return null;
  const diff = await client().call('snapDiff', { volume, older: snapshot, newer: 'active' });
  if (!touches(diff, path)) return null;
  const lost = diff.added.filter((p) => p.startsWith(`${path}/`)).sort();
  const regular = useVolumes.getState().snapshots.filter((s) => !s.flags.shadow);
  const newest = regular.length > 0 ? regular.reduce((a, b) => (Date.parse(b.createdAt) >= Date.parse(a.createdAt) ? b : a)) : null;
  let liveHeldBy: string | null = null;
  if (newest && newest.name !== snapshot && !touches(await client().call('snapDiff', { volume, older: newest.name, newer: 'active' }), path)) liveHeldBy = newest.name;
  const base = `${name} (restored from ${snapshot})`;
  let copy = base;
  for (let n = 2; names.has(copy); n++) copy = `${base} ${n}`;
  return { snapshot, path, copyTo: `${parent === '/' ? '' : parent}/${copy}`, liveHeldBy, lost };
}

useVolumes.subscribe((v, prev) => {
  // A notice is about the volume it was made on: another volume's page does not show it.
  if (v.current !== prev.current) useSnapshots.setState({ browsing: null, listing: null, diff: null, revert: null, path: '/', restoreAsk: null, deleteAsk: null, notice: null });
  else if (v.version !== prev.version && v.info !== null) void followChange(v.current, v.snapshots.map((x) => x.name));
});

/**
 * The volume changed (here or in another process): a browsed snapshot that is gone stops being browsed, with a
 * word on why; one that is still there has its folder listed again (the active file system's may have changed).
 */
async function followChange(vol: string | null, names: string[]): Promise<void> {
  const { browsing, path } = useSnapshots.getState();
  if (vol === null || browsing === null) return;
  if (browsing !== 'active' && !names.includes(browsing)) {
    useSnapshots.setState({ browsing: null, listing: null, notice: { kind: 'error', text: `snapshot ${browsing} is gone: it was deleted (the list shows the volume as it is now)` } });
    return;
  }
  try {
    const listing = await client().call('ls', { volume: vol, snapshot: browsing, path, limit: 2000 });
    const now = useSnapshots.getState();
    if (useVolumes.getState().current === vol && now.browsing === browsing && now.path === path) useSnapshots.setState({ listing });
  } catch {
    // the folder went away: the listing stays as it was until the user moves on
  }
}
