// @vitest-environment jsdom
/**
 * The views in a DOM (jsdom + Testing Library) over a real engine: what each shows and does, hostile names as
 * text, the revert confirmation, restore by click (in place and into a folder, refusing outside targets), the
 * composer, jobs, the planner, relationships and the sidebar.
 */
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { mkdir, readFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DirPage, ImageEvalReport } from '../../core/api/index.js';
import { App } from '../../renderer/src/App.js';
import { setClient } from '../../renderer/src/client/current.js';
import { webSocketUrl } from '../../renderer/src/client/ws-client.js';
import { connectEvents } from '../../renderer/src/stores/events.js';
import { useUi } from '../../renderer/src/stores/ui.js';
import { useVolumes } from '../../renderer/src/stores/volumes.js';
import { ComposerView } from '../../renderer/src/views/ComposerView.js';
import { JobsView } from '../../renderer/src/views/JobsView.js';
import { PlannerView } from '../../renderer/src/views/PlannerView.js';
import { RelationshipsView } from '../../renderer/src/views/RelationshipsView.js';
import { SnapshotsView } from '../../renderer/src/views/SnapshotsView.js';
import { VolumesView } from '../../renderer/src/views/VolumesView.js';
import { GridView } from '../../renderer/src/views/GridView.js';
import { DirectClient } from '../helpers/direct-client.js';
import { writeMarker } from '../../core/transfer/sidecars.js';
import { replacementOf, startReplacement } from '../../core/transfer/replacement.js';
import { consoleFixture, type ConsoleFixture } from '../helpers/console-volume.js';

const XSS = '<img src=x onerror=alert(1)>';
let fx: ConsoleFixture;

beforeAll(async () => {
  fx = await consoleFixture({ [`/${XSS}`]: 'boo' });
  const client = new DirectClient(fx.host);
  setClient(client);
  connectEvents(client);
  await useVolumes.getState().refreshList();
});

afterEach(() => cleanup());

afterAll(async () => {
  await fx.close();
});

describe('views', () => {
  it('the sidebar reaches all seven views in one click', async () => {
    render(<App />);
    const nav = ['Volumes', 'Bit-plane grid', 'Image composer', 'Snapshots', 'Jobs', 'Backup planner', 'Relationships'];
    for (const label of nav) {
      fireEvent.click(screen.getByRole('button', { name: label }));
      expect(screen.getByRole('heading', { level: 1, name: label })).toBeTruthy();
    }
    expect(useUi.getState().view).toBe('relationships');
  });

  it('volumes: capacity split, members, CP status; a bad create explains itself', async () => {
    render(<VolumesView />);
    const cap = await screen.findByTestId('capacity');
    expect(cap.textContent).toMatch(/active: .*held only by snapshots: .*free: /);
    expect(within(screen.getByTestId('members')).getByText('single')).toBeTruthy();
    expect(screen.getByTestId('cp-status').textContent).toMatch(/^#\d+ at /);
    const form = screen.getByTestId('create-volume');
    fireEvent.change(within(form).getByPlaceholderText(/vol\.img/), { target: { value: join(fx.dir, 'tiny.img') } });
    fireEvent.change(form.querySelector('input[name=size]')!, { target: { value: '0.1' } });
    fireEvent.submit(form);
    expect((await screen.findByTestId('notice-error')).textContent).toMatch(/at least 1 MiB/);
  });

  it('volumes: a RAID-4 member the engine failed while reading shows as failed, with the reason', async () => {
    const grp = join(fx.dir, 'grp');
    await fx.call('volumeCreate', { path: grp, sizeBytes: 24 << 20, raid: 3 });
    await fx.call('writeFile', { volume: grp, path: '/big.bin', base64: Buffer.alloc(6 << 20, 7).toString('base64') });
    await fx.call('volumeSync', { volume: grp });
    // The engine keeps the group open; a member's file shrinks under it, and a check reads every block.
    await truncate(join(grp, 'data-1.img'), 4096 * 9);
    const report = await fx.call<{ issues: unknown[] }>('fsck', { volume: grp });
    expect(report.issues).toEqual([]);
    await useVolumes.getState().select(grp);
    try {
      render(<VolumesView />);
      expect((await screen.findByTestId('member-failure-1')).textContent).toMatch(/data-1\.img ends before stripe \d+ .*truncated or replaced while open; “raid replace” rebuilds it/);
      expect(screen.getByText('DEGRADED')).toBeTruthy();
    } finally {
      await useVolumes.getState().select(fx.vol);
    }
  });

  it('volumes: a mirror whose full resync copy is being received beside it says so', async () => {
    const m = join(fx.dir, 'nightly-mirror.img');
    await fx.call('volumeCreate', { path: m, sizeBytes: 4 << 20 });
    // The on-disk state a full resync leaves while its copy lands (STREAM.md §5.6), made by the engine's own writers.
    await writeMarker(m, { relationship: 'nightly', source: '/data/src.img', sourceUuid: 'u', since: new Date().toISOString() });
    // The record first: a volume named <mirror>.replacement may be made only for a full resync that recorded it.
    await startReplacement(m, 'nightly');
    await fx.call('volumeCreate', { path: replacementOf(m), sizeBytes: 4 << 20 });
    await useVolumes.getState().select(m);
    try {
      render(<VolumesView />);
      expect((await screen.findByTestId('replacement')).textContent).toMatch(/^full resync: a whole copy for relationship nightly is being received beside it since .*; this volume stays as it is until the copy lands$/);
    } finally {
      await useVolumes.getState().select(fx.vol);
    }
  });

  it('renders hostile file and snapshot names as text, never as markup', async () => {
    await fx.call('snapCreate', { volume: fx.vol, name: '<b>bold<i>' });
    await useVolumes.getState().refreshCurrent();
    try {
      render(<SnapshotsView />);
      expect((await screen.findByTestId('browse-<b>bold<i>')).textContent).toBe('<b>bold<i>');
      fireEvent.click(screen.getByTestId('browse-s2'));
      expect((await screen.findByTestId(`entry-${XSS}`)).textContent).toContain(XSS);
      expect(document.querySelectorAll('img').length).toBe(0);
      expect(document.querySelectorAll('b > i').length).toBe(0);
    } finally {
      await fx.call('snapDelete', { volume: fx.vol, name: '<b>bold<i>' });
      await useVolumes.getState().refreshCurrent();
    }
  });

  it('restores by click: in place, and into a folder (refusing a target outside it)', async () => {
    render(<SnapshotsView />);
    fireEvent.click(screen.getByTestId('browse-s1'));
    fireEvent.click(await screen.findByTestId('restore-a.bin'));
    await screen.findByText('restored /a.bin from s1');
    const page = await fx.call<DirPage>('ls', { volume: fx.vol, path: '/' });
    expect(page.entries.map((e) => e.name)).toContain('a.bin');
    // Into a host folder.
    const folder = join(fx.dir, 'out');
    await mkdir(folder);
    fireEvent.click(screen.getByTestId('restore-to-docs'));
    const form = await screen.findByTestId('restore-to-folder');
    fireEvent.change(form.querySelector('input[name=folder]')!, { target: { value: folder } });
    fireEvent.change(form.querySelector('input[name=name]')!, { target: { value: '../escape' } });
    fireEvent.submit(form);
    expect((await screen.findByTestId('notice-error')).textContent).toMatch(/not a single file name inside the chosen folder \(OUTSIDE\)/);
    fireEvent.change(form.querySelector('input[name=name]')!, { target: { value: 'docs-june' } });
    fireEvent.submit(form);
    await screen.findByText(new RegExp(`to ${join(folder, 'docs-june')}`));
    expect(await readFile(join(folder, 'docs-june', 'b.txt'), 'utf8')).toBe('b'.repeat(9000));
  });

  it('asks before a revert and says what will be lost', async () => {
    render(<SnapshotsView />);
    fireEvent.click(screen.getByTestId('revert-s1'));
    const dialog = await screen.findByTestId('revert-dialog');
    expect(dialog.textContent).toContain('/c.bin (will disappear)');
    expect(dialog.textContent).toMatch(/Later snapshots stay: s2/);
    fireEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByTestId('revert-dialog')).toBeNull());
    // Nothing happened.
    expect((await fx.call<DirPage>('ls', { volume: fx.vol, path: '/' })).entries.map((e) => e.name)).toContain('c.bin');
    fireEvent.click(screen.getByTestId('revert-s1'));
    fireEvent.click(await screen.findByTestId('revert-confirm'));
    await screen.findByText('reverted the volume to s1');
    expect((await fx.call<DirPage>('ls', { volume: fx.vol, path: '/' })).entries.map((e) => e.name)).not.toContain('c.bin');
  });

  it('composes from chips and shows the engine count', async () => {
    render(<ComposerView />);
    fireEvent.click(screen.getByTestId('chip-s1'));
    fireEvent.click(screen.getByTestId('op--'));
    fireEvent.click(screen.getByTestId('chip-s2'));
    expect((screen.getByTestId('expression-text') as HTMLInputElement).value).toBe('s1 - s2');
    const engine = await fx.call<ImageEvalReport>('imageEval', { volume: fx.vol, expression: 's1 - s2' });
    await waitFor(() => expect(screen.getByTestId('image-blocks').getAttribute('data-blocks')).toBe(String(engine.blocks)));
    expect(screen.getByTestId('image-result').textContent).toContain('streamable as an incremental image');
    fireEvent.change(screen.getByTestId('expression-text'), { target: { value: 'active - s1' } });
    fireEvent.blur(screen.getByTestId('expression-text'));
    await waitFor(() => expect(screen.getByTestId('image-result').textContent).toMatch(/not streamable/));
    expect((screen.getByTestId('send-open') as HTMLButtonElement).disabled).toBe(true);
  });

  it('jobs: a copy started from the form runs to 100% with its history', async () => {
    render(<JobsView />);
    const form = screen.getByTestId('job-form');
    fireEvent.change(form.querySelector('input[name=expression]')!, { target: { value: 's2 + s1' } });
    fireEvent.change(form.querySelector('input[name=target]')!, { target: { value: join(fx.dir, 'jobcopy.img') } });
    fireEvent.submit(form);
    await waitFor(() => expect(document.querySelector('[data-state=ok]')).not.toBeNull(), { timeout: 30_000 });
    const card = document.querySelector('[data-state=ok]')!;
    expect(card.getAttribute('data-percent')).toBe('100.0');
    await waitFor(() => expect(screen.getByTestId('job-history').textContent).toContain('jobcopy.img'));
  });

  it('planner: exact sizes per level, a restore chain for a date, the storage total', async () => {
    render(<PlannerView />);
    await waitFor(() => expect(screen.getByTestId('plan-points').textContent).toContain('s1'));
    expect(screen.getByTestId('plan-totals').textContent).toMatch(/Level 0.*1 backup/);
    fireEvent.change(document.querySelector('input[name=at]')!, { target: { value: '2100-01-01T00:00' } });
    await waitFor(() => expect(screen.getByTestId('restore-chain').textContent).toContain('s1.level0'));
    expect(screen.getByTestId('storage-total').textContent).toMatch(/for the newest 2 level-0 cycle/);
  });

  it('relationships: a mirror created in the form appears with its state, and an update job brings it to idle', async () => {
    render(<RelationshipsView />);
    const form = screen.getByTestId('mirror-create');
    fireEvent.change(form.querySelector('input[name=name]')!, { target: { value: 'm1' } });
    fireEvent.change(form.querySelector('input[name=destination]')!, { target: { value: join(fx.dir, 'mirror.img') } });
    fireEvent.change(form.querySelector('input[name=limit]')!, { target: { value: '64' } });
    fireEvent.submit(form);
    const row = await screen.findByTestId('mirror-m1');
    expect(row.textContent).toContain('uninitialized');
    expect((await fx.call('mirrorList', {})).find((m) => m.name === 'm1')!.limit).toBe(64 * 2 ** 20);
    fireEvent.click(within(row).getByRole('button', { name: 'update' }));
    await waitFor(() => expect(screen.getByTestId('mirror-m1').textContent).toContain('idle'), { timeout: 30_000 });
    expect(screen.getByTestId('topology').textContent).toMatch(/m1 \(full\)/);
  });

  it('grid: one column per plane in time order, with the block panel', async () => {
    render(<GridView />);
    expect(JSON.parse(screen.getByTestId('grid-canvas').getAttribute('data-columns')!)).toEqual(['active', 's1', 's2']);
    fireEvent.click(screen.getByTestId('grid-col-s1'));
    expect((await screen.findByTestId('selected-column')).textContent).toContain('s1');
  });

  it('the WebSocket transport takes its token from the URL fragment, then from the session', () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) } as unknown as Storage;
    expect(webSocketUrl({ hash: '#token=abc_-1', host: '127.0.0.1:7345' } as Location, storage)).toBe('ws://127.0.0.1:7345/api?token=abc_-1');
    expect(webSocketUrl({ hash: '', host: '127.0.0.1:7345' } as Location, storage)).toBe('ws://127.0.0.1:7345/api?token=abc_-1');
    expect(() => webSocketUrl({ hash: '', host: 'x' } as Location, { getItem: () => null, setItem: () => undefined } as unknown as Storage)).toThrow(/token/);
  });
});
