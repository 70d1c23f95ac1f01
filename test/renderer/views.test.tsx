// @vitest-environment jsdom
/**
 * The views in a DOM (jsdom + Testing Library) over a real engine: what each shows and does, hostile names as
 * text, the revert confirmation, restore by click (in place and into a folder, refusing outside targets), the
 * composer, jobs, the planner, relationships and the sidebar.
 */
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { chmod, mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DirPage, ImageEvalReport, ReplicateReport } from '../../core/api/index.js';
import { App } from '../../renderer/src/App.js';
import { setClient } from '../../renderer/src/client/current.js';
import { webSocketUrl } from '../../renderer/src/client/ws-client.js';
import { connectEvents } from '../../renderer/src/stores/events.js';
import { useImages } from '../../renderer/src/stores/images.js';
import { useJobs } from '../../renderer/src/stores/jobs.js';
import { useRelationships } from '../../renderer/src/stores/relationships.js';
import { useSnapshots } from '../../renderer/src/stores/snapshots.js';
import { usePlanes } from '../../renderer/src/stores/planes.js';
import { useUi } from '../../renderer/src/stores/ui.js';
import { useVolumes } from '../../renderer/src/stores/volumes.js';
import { ComposerView } from '../../renderer/src/views/ComposerView.js';
import { JobsView } from '../../renderer/src/views/JobsView.js';
import { PlannerView } from '../../renderer/src/views/PlannerView.js';
import { RelationshipsView } from '../../renderer/src/views/RelationshipsView.js';
import { SnapshotsView } from '../../renderer/src/views/SnapshotsView.js';
import { VolumesView } from '../../renderer/src/views/VolumesView.js';
import { GridView } from '../../renderer/src/views/GridView.js';
import { formatBytes } from '../../renderer/src/format.js';
import { DirectClient } from '../helpers/direct-client.js';
import { writeMarker } from '../../core/transfer/sidecars.js';
import { replacementOf, startReplacement } from '../../core/transfer/replacement.js';
import { consoleFixture, type ConsoleFixture } from '../helpers/console-volume.js';
import { SnapplaneService } from '../../core/service/index.js';
import { literal } from '../helpers/literal.js';

const XSS = '<img src=x onerror=alert(1)>';
let fx: ConsoleFixture;
let reads = 0;

/** A live file's text, read by the engine. */
async function text(path: string): Promise<string> {
  const out = join(fx.dir, `read-${++reads}`);
  await fx.host.service.get({ volume: fx.vol }, path, out);
  return readFile(out, 'utf8');
}

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
    // Sizes the engine's schema would refuse in bytes are refused in the form's own terms.
    fireEvent.change(form.querySelector('input[name=size]')!, { target: { value: '99999999999' } });
    fireEvent.submit(form);
    await waitFor(() => expect(screen.getByTestId('notice-error').textContent).toMatch(/^Size: 99999999999 MiB is too big; a volume must be below 16 TiB \(16,777,216 MiB\)\.×?$/));
    // A relative path would land in the host's working folder: refused, naming it.
    fireEvent.change(within(form).getByPlaceholderText(/vol\.img/), { target: { value: 'relative.img' } });
    fireEvent.change(form.querySelector('input[name=size]')!, { target: { value: '4' } });
    fireEvent.submit(form);
    await waitFor(() => expect(screen.getByTestId('notice-error').textContent).toMatch(/^'relative\.img' is not a full path: give a full path, e\.g\. \/data\/vol\.img/));
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

  it('restore by click asks before it replaces a live file that differs, and can restore as a copy instead', async () => {
    await fx.call('writeFile', { volume: fx.vol, path: '/docs/b.txt', base64: Buffer.from('edited after s2').toString('base64') });
    await useVolumes.getState().refreshCurrent();
    render(<SnapshotsView />);
    fireEvent.click(screen.getByTestId('browse-s1'));
    fireEvent.click(within(await screen.findByTestId('entry-docs')).getByRole('button', { name: 'docs' }));
    fireEvent.click(await screen.findByTestId('restore-b.txt'));
    const dialog = await screen.findByTestId('restore-dialog');
    expect(dialog.textContent).toMatch(/\/docs\/b\.txt exists in the live file system and differs from the one in s1/);
    expect(dialog.textContent).toContain('no snapshot holds the current version, so it is lost');
    expect(dialog.textContent).toContain('/docs/b.txt (restored from s1)');
    // Escape is a cancel: nothing changed.
    fireEvent.keyDown(within(dialog).getByTestId('restore-as-copy'), { key: 'Escape' });
    await waitFor(() => expect(screen.queryByTestId('restore-dialog')).toBeNull());
    expect(await text('/docs/b.txt')).toBe('edited after s2');
    // As a copy: the live file stays, s1's lands beside it.
    fireEvent.click(screen.getByTestId('restore-b.txt'));
    fireEvent.click(await screen.findByTestId('restore-as-copy'));
    await screen.findByText('restored /docs/b.txt from s1 as /docs/b.txt (restored from s1)');
    expect(await text('/docs/b.txt')).toBe('edited after s2');
    expect(await text('/docs/b.txt (restored from s1)')).toBe('b'.repeat(9000));
    // A snapshot that holds the live version is named; a second copy takes a name nothing uses.
    await fx.call('snapCreate', { volume: fx.vol, name: 's3' });
    await useVolumes.getState().refreshCurrent();
    fireEvent.click(screen.getByTestId('restore-b.txt'));
    const again = await screen.findByTestId('restore-dialog');
    expect(again.textContent).toContain('it stays only in snapshot s3, which holds it as it is now');
    expect(again.textContent).toContain('/docs/b.txt (restored from s1) 2');
    fireEvent.click(within(again).getByTestId('restore-replace'));
    await screen.findByText('restored /docs/b.txt from s1');
    expect(await text('/docs/b.txt')).toBe('b'.repeat(9000));
    // Now the live file is s1's: restoring it again replaces nothing that differs, so nothing is asked.
    fireEvent.click(screen.getByTestId('restore-b.txt'));
    await waitFor(() => expect(screen.getByTestId('notice-ok').textContent).toContain('restored /docs/b.txt from s1'));
    expect(screen.queryByTestId('restore-dialog')).toBeNull();
    await fx.call('rm', { volume: fx.vol, path: '/docs/b.txt (restored from s1)' });
    await fx.call('snapDelete', { volume: fx.vol, name: 's3' });
    await useVolumes.getState().refreshCurrent();
  });

  it('restoring a folder by click names what the live folder has that the snapshot lacks (replacing removes it)', async () => {
    await fx.call('mkdir', { volume: fx.vol, path: '/docs/added-after-s1' });
    await fx.call('writeFile', { volume: fx.vol, path: '/docs/added-after-s1/new.txt', base64: Buffer.from('new').toString('base64') });
    await useVolumes.getState().refreshCurrent();
    useSnapshots.setState({ restoreAsk: null });
    await useSnapshots.getState().browse('s1', '/');
    render(<SnapshotsView />);
    fireEvent.click(await screen.findByTestId('restore-docs'));
    const dialog = await screen.findByTestId('restore-dialog');
    const lost = within(dialog).getByTestId('restore-lost');
    expect(lost.textContent).toContain("these 2 items, which the folder has now and s1's lacks");
    expect(lost.textContent).toContain('/docs/added-after-s1');
    expect(lost.textContent).toContain('/docs/added-after-s1/new.txt');
    fireEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByTestId('restore-dialog')).toBeNull());
    await fx.call('rm', { volume: fx.vol, path: '/docs/added-after-s1', recursive: true });
    await useVolumes.getState().refreshCurrent();
  });

  it('an upload whose name exists asks before it replaces the live file', async () => {
    render(<VolumesView />);
    const input = await screen.findByTestId('upload');
    fireEvent.change(input, { target: { files: [new File(['first'], 'up.txt')] } });
    await screen.findByTestId('file-up.txt');
    expect(screen.queryByTestId('upload-confirm')).toBeNull();
    fireEvent.change(input, { target: { files: [new File(['second'], 'up.txt'), new File(['new'], 'up2.txt')] } });
    const ask = await screen.findByTestId('upload-confirm');
    expect(ask.textContent).toMatch(/A file named up\.txt exists in \/\. Uploading replaces it/);
    fireEvent.click(within(ask).getByRole('button', { name: 'Cancel' }));
    expect(screen.queryByTestId('upload-confirm')).toBeNull();
    expect(await text('/up.txt')).toBe('first');
    // Escape answers Cancel too, wherever the focus is.
    fireEvent.change(input, { target: { files: [new File(['second'], 'up.txt')] } });
    await screen.findByTestId('upload-confirm');
    fireEvent.keyDown(document, { key: 'Escape' });
    await waitFor(() => expect(screen.queryByTestId('upload-confirm')).toBeNull());
    expect(await text('/up.txt')).toBe('first');
    fireEvent.change(input, { target: { files: [new File(['second'], 'up.txt'), new File(['new'], 'up2.txt')] } });
    fireEvent.click(within(await screen.findByTestId('upload-confirm')).getByRole('button', { name: 'Upload only the new ones' }));
    await screen.findByTestId('file-up2.txt');
    expect(await text('/up.txt')).toBe('first');
    fireEvent.change(input, { target: { files: [new File(['second'], 'up.txt')] } });
    fireEvent.click(within(await screen.findByTestId('upload-confirm')).getByRole('button', { name: 'Replace' }));
    await screen.findByText('uploaded up.txt');
    expect(await text('/up.txt')).toBe('second');
    await fx.call('rm', { volume: fx.vol, path: '/up.txt' });
    await fx.call('rm', { volume: fx.vol, path: '/up2.txt' });
  });

  it('an upload past the limit is refused before it is read, saying how to import it instead', async () => {
    render(<VolumesView />);
    const input = await screen.findByTestId('upload');
    // A sparse 40 MB File: its size is what counts, and its bytes are never read.
    const big = new File([new Uint8Array(40_000_000)], 'big.iso');
    fireEvent.change(input, { target: { files: [big] } });
    await waitFor(() => expect(screen.getByTestId('notice-error').textContent).toMatch(/'big\.iso' is 38\.1 MiB; an upload is at most 16\.0 MiB: import bigger files from a host path/));
    expect(screen.queryByTestId('file-big.iso')).toBeNull();
  });

  it('asks before a snapshot delete: what it frees, the destinations and relationships that need it, and the refusal in the dialog', async () => {
    const v = join(fx.dir, 'del.img');
    await fx.call('volumeCreate', { path: v, sizeBytes: 4 << 20 });
    await fx.call('writeFile', { volume: v, path: '/gone.bin', base64: Buffer.alloc(40_000, 9).toString('base64') });
    await fx.call('snapCreate', { volume: v, name: 'x1' });
    await fx.call('rm', { volume: v, path: '/gone.bin' });
    await fx.call('snapCreate', { volume: v, name: 'x2' });
    await fx.call('masterMark', { volume: v, name: 'x2', mark: true });
    const replica = join(fx.dir, 'del-replica.img');
    const job = await fx.call<{ id: number }>('jobStart', { kind: 'replicate', source: v, destination: replica });
    await waitFor(async () => expect((await fx.call<{ id: number; state: string }[]>('jobList', {})).find((j) => j.id === job.id)?.state).toBe('ok'), { timeout: 30_000 });
    await useVolumes.getState().select(v);
    try {
      render(<SnapshotsView />);
      // x1 alone holds gone.bin: deleting it frees exactly what the engine says.
      const freed = (await fx.call<{ freedBytes: number }>('space', { volume: v, names: ['x1'] })).freedBytes;
      expect(freed).toBeGreaterThanOrEqual(40_000);
      fireEvent.click(await screen.findByTestId('delete-snap-x1'));
      const dialog = await screen.findByTestId('delete-dialog');
      expect(within(dialog).getByTestId('delete-frees').textContent).toContain(`Frees ${formatBytes(freed)}`);
      expect(within(dialog).queryByTestId('delete-needed-by')).toBeNull();
      fireEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }));
      await waitFor(() => expect(screen.queryByTestId('delete-dialog')).toBeNull());
      expect((await fx.call<{ name: string }[]>('snapList', { volume: v })).map((x) => x.name)).toContain('x1');
      // x2 is the master the replica has not moved past: the dialog names it, and the engine's refusal stays in the dialog.
      fireEvent.click(screen.getByTestId('delete-snap-x2'));
      const master = await screen.findByTestId('delete-dialog');
      expect(within(master).getByTestId('delete-needed-by').textContent).toContain(`x2 is a master snapshot that ${replica} has not moved past yet`);
      fireEvent.click(within(master).getByTestId('delete-confirm'));
      await waitFor(() => expect(within(screen.getByTestId('delete-dialog')).getByTestId('notice-error').textContent).toMatch(/cannot delete master snapshot 'x2'/));
      expect(screen.getByTestId('delete-dialog').textContent).toContain('“release” next to it under Relationships → Master snapshots');
      expect(screen.queryByText(/snapplane master release/)).toBeNull();
      fireEvent.keyDown(within(screen.getByTestId('delete-dialog')).getByTestId('delete-confirm'), { key: 'Escape' });
      await waitFor(() => expect(screen.queryByTestId('delete-dialog')).toBeNull());
      // A held snapshot: the dialog says to release it, and the refusal names the button, not the CLI.
      await fx.call('snapHold', { volume: v, name: 'x1', hold: true });
      await useVolumes.getState().refreshCurrent();
      fireEvent.click(screen.getByTestId('delete-snap-x1'));
      fireEvent.click(within(await screen.findByTestId('delete-dialog')).getByTestId('delete-confirm'));
      await waitFor(() => expect(within(screen.getByTestId('delete-dialog')).getByTestId('notice-error').textContent).toMatch(/^snapshot 'x1' has a hold; release it first \(the “release” button in its row\) \(HELD\)/));
      await fx.call('snapHold', { volume: v, name: 'x1', hold: false });
      await useVolumes.getState().refreshCurrent();
      fireEvent.click(within(screen.getByTestId('delete-dialog')).getByRole('button', { name: 'Cancel' }));
      fireEvent.click(screen.getByTestId('delete-snap-x1'));
      fireEvent.click(within(await screen.findByTestId('delete-dialog')).getByTestId('delete-confirm'));
      await screen.findByText('deleted snapshot x1');
      expect((await fx.call<{ name: string }[]>('snapList', { volume: v })).map((x) => x.name)).toEqual(['x2']);
    } finally {
      await useVolumes.getState().select(fx.vol);
    }
  });

  it('rename: an empty name is explained in words, Escape keeps the old one, a good one renames', async () => {
    render(<SnapshotsView />);
    const row = screen.getByTestId('snap-s2');
    fireEvent.click(within(row).getByRole('button', { name: 'rename' }));
    const input = row.querySelector('input[name=rename]') as HTMLInputElement;
    fireEvent.change(input, { target: { value: '  ' } });
    fireEvent.submit(input.closest('form')!);
    expect((await screen.findByTestId('notice-error')).textContent).toMatch(/^A snapshot needs a name: type the new name for s2, or press Escape to keep it\./);
    fireEvent.keyDown(input, { key: 'Escape' });
    await waitFor(() => expect(row.querySelector('input[name=rename]')).toBeNull());
    expect((await fx.call<{ name: string }[]>('snapList', { volume: fx.vol })).map((x) => x.name)).toContain('s2');
    fireEvent.click(within(row).getByRole('button', { name: 'rename' }));
    fireEvent.change(row.querySelector('input[name=rename]')!, { target: { value: 's2b' } });
    fireEvent.submit(row.querySelector('form')!);
    await screen.findByText('renamed s2 to s2b');
    await fx.call('snapRename', { volume: fx.vol, from: 's2b', to: 's2' });
    await useVolumes.getState().refreshCurrent();
  });

  it("notices stay with their volume, and Escape closes the revert dialog", async () => {
    const other = join(fx.dir, 'other.img');
    await fx.call('volumeCreate', { path: other, sizeBytes: 4 << 20 });
    render(<SnapshotsView />);
    const files = render(<VolumesView />);
    fireEvent.change(files.container.querySelector('input[name=folder]')!, { target: { value: 'scoped' } });
    fireEvent.submit(files.container.querySelector('input[name=folder]')!.closest('form')!);
    await screen.findByText('made folder scoped');
    fireEvent.click(within(screen.getByTestId('snap-s1')).getByRole('button', { name: 'hold' }));
    await screen.findByText('held s1');
    await useVolumes.getState().select(other);
    await waitFor(() => expect(screen.queryByText('held s1')).toBeNull());
    expect(screen.queryByText('made folder scoped')).toBeNull();
    expect(screen.queryByTestId('notice-ok')).toBeNull();
    files.unmount();
    await fx.call('rm', { volume: fx.vol, path: '/scoped' });
    await useVolumes.getState().select(fx.vol);
    await fx.call('snapHold', { volume: fx.vol, name: 's1', hold: false });
    await useVolumes.getState().refreshCurrent();
    fireEvent.click(await screen.findByTestId('revert-s1'));
    await screen.findByTestId('revert-dialog');
    fireEvent.keyDown(document.body, { key: 'Escape' });
    await waitFor(() => expect(screen.queryByTestId('revert-dialog')).toBeNull());
    expect((await fx.call<DirPage>('ls', { volume: fx.vol, path: '/' })).entries.map((e) => e.name)).toContain('c.bin');
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

  it('composer chips are reached with Tab and added with Enter or Space, as buttons', async () => {
    useImages.getState().clear();
    render(<ComposerView />);
    for (const id of ['chip-active', 'chip-s1', 'op-&', 'op-(']) {
      const chip = screen.getByTestId(id);
      expect(chip.getAttribute('role')).toBe('button');
      expect(chip.tabIndex).toBe(0);
    }
    fireEvent.keyDown(screen.getByTestId('chip-s2'), { key: 'Enter' });
    fireEvent.keyDown(screen.getByTestId('op-&'), { key: ' ' });
    fireEvent.keyDown(screen.getByTestId('chip-s1'), { key: 'Enter' });
    fireEvent.keyDown(screen.getByTestId('chip-active'), { key: 'a' });
    expect((screen.getByTestId('expression-text') as HTMLInputElement).value).toBe('s2 & s1');
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
    // The backup tab does not inherit the copy's destination volume as its backup file.
    fireEvent.click(screen.getByTestId('jobkind-backup'));
    expect((form.querySelector('input[name=target]') as HTMLInputElement).value).toBe('');
    fireEvent.click(screen.getByTestId('jobkind-copy'));
    expect((form.querySelector('input[name=target]') as HTMLInputElement).value).toBe(join(fx.dir, 'jobcopy.img'));
  });

  it('jobs: plainly wrong targets are refused in the form, before any job starts', async () => {
    render(<JobsView />);
    const form = screen.getByTestId('job-form');
    const jobs = async (): Promise<number> => (await fx.call<unknown[]>('jobList', {})).length;
    const before = await jobs();
    fireEvent.change(form.querySelector('input[name=expression]')!, { target: { value: 's2' } });
    fireEvent.change(form.querySelector('input[name=target]')!, { target: { value: `${fx.vol}/` } });
    fireEvent.submit(form);
    expect((await screen.findByTestId('job-form-problem')).textContent).toBe('The destination is the source volume itself: give another path for the copy.');
    fireEvent.click(screen.getByTestId('jobkind-backup'));
    expect(screen.queryByTestId('job-form-problem')).toBeNull();
    fireEvent.change(form.querySelector('input[name=target]')!, { target: { value: fx.vol } });
    fireEvent.submit(form);
    expect((await screen.findByTestId('job-form-problem')).textContent).toBe(`${fx.vol} is a volume: a backup file needs a path of its own, e.g. /backups/vol.level0.`);
    fireEvent.click(screen.getByTestId('jobkind-replicate'));
    fireEvent.change(form.querySelector('input[name=target]')!, { target: { value: fx.vol } });
    fireEvent.submit(form);
    expect((await screen.findByTestId('job-form-problem')).textContent).toBe('The destination is the source volume itself: give another path for the replica.');
    expect(await jobs()).toBe(before);
    const info = await fx.call<{ snapshotCount: number }>('volumeInfo', { volume: fx.vol });
    expect(info.snapshotCount).toBeGreaterThan(0); // the volume is whole
  });

  it('jobs: Preview of a replicate says what would be sent, starts no job and sends nothing; a refusal shows in the form', async () => {
    await fx.call('masterMark', { volume: fx.vol, name: 's2', mark: true });
    try {
      render(<JobsView />);
      const form = screen.getByTestId('job-form');
      const jobs = async (): Promise<number> => (await fx.call<unknown[]>('jobList', {})).length;
      const before = await jobs();
      fireEvent.click(screen.getByTestId('jobkind-replicate'));
      const dest = join(fx.dir, 'preview-replica.img');
      fireEvent.change(form.querySelector('input[name=target]')!, { target: { value: dest } });
      fireEvent.click(screen.getByTestId('replicate-preview-ask'));
      const line = await screen.findByTestId('replicate-preview');
      const expected = await fx.call<ReplicateReport>('replicatePreview', { source: fx.vol, destination: dest });
      expect(expected).toMatchObject({ dryRun: true, kind: 'full', to: 's2' });
      expect(expected.blocks).toBeGreaterThan(0);
      expect(line.textContent).toBe(`would replicate a full copy of s2 (the destination has no master snapshot) to ${dest}: ${expected.blocks} blocks, ${formatBytes(expected.bytes)} (a stream of ${formatBytes(expected.streamBytes!)}); nothing was sent`);
      expect(await jobs()).toBe(before);
      await expect(readFile(dest)).rejects.toMatchObject({ code: 'ENOENT' });
      // Another destination: the old line goes at once.
      fireEvent.change(form.querySelector('input[name=target]')!, { target: { value: '127.0.0.1:1/x' } });
      expect(screen.queryByTestId('replicate-preview')).toBeNull();
      fireEvent.click(screen.getByTestId('replicate-preview-ask'));
      expect((await screen.findByTestId('job-form-problem')).textContent).toMatch(/is a remote destination: give its pre-shared key file/);
      expect(await jobs()).toBe(before);
    } finally {
      await fx.call('masterMark', { volume: fx.vol, name: 's2', mark: false });
    }
  });

  it('planner: exact sizes per level, a restore chain for a date, the storage total', async () => {
    render(<PlannerView />);
    await waitFor(() => expect(screen.getByTestId('plan-points').textContent).toContain('s1'));
    expect(screen.getByTestId('plan-totals').textContent).toMatch(/Level 0.*1 backup/);
    fireEvent.change(document.querySelector('input[name=at]')!, { target: { value: '2100-01-01T00:00' } });
    await waitFor(() => expect(screen.getByTestId('restore-chain').textContent).toContain('s1.level0'));
    expect(screen.getByTestId('storage-total').textContent).toMatch(/for the newest 2 level-0 cycle/);
  });

  it('planner: no schedule from a policy the engine rejected; the button says why', async () => {
    render(<PlannerView />);
    const policy = screen.getByTestId('policy');
    const create = screen.getByTestId('create-schedule') as HTMLButtonElement;
    await waitFor(() => expect(create.disabled).toBe(false));
    fireEvent.change(policy.querySelector('input[name=level0]')!, { target: { value: '1d' } });
    fireEvent.change(policy.querySelector('input[name=level1]')!, { target: { value: '7d' } });
    fireEvent.submit(policy);
    const why = await screen.findByTestId('schedule-blocked');
    expect(why.textContent).toBe('Not from this policy: level 1 (every 7d) must not be rarer than level 0 (every 1d) (INVALID). Fix it and press Plan.');
    expect(create.disabled).toBe(true);
    fireEvent.submit(create.closest('form')!);
    fireEvent.click(create);
    await new Promise((r) => setTimeout(r, 100));
    expect(await fx.call('scheduleList', { volume: fx.vol })).toEqual([]);
    // A valid policy again: the button comes back.
    fireEvent.change(policy.querySelector('input[name=level0]')!, { target: { value: '7d' } });
    fireEvent.change(policy.querySelector('input[name=level1]')!, { target: { value: '1d' } });
    fireEvent.submit(policy);
    await waitFor(() => expect(create.disabled).toBe(false));
    expect(screen.queryByTestId('schedule-blocked')).toBeNull();
  });

  it('relationships: a mirror created in the form appears with its state, and an update job brings it to idle', async () => {
    render(<RelationshipsView />);
    const form = screen.getByTestId('mirror-create');
    fireEvent.change(form.querySelector('input[name=name]')!, { target: { value: 'm1' } });
    fireEvent.change(form.querySelector('input[name=destination]')!, { target: { value: join(fx.dir, 'mirror.img') } });
    // Slow enough (the first update carries ~200 KiB) for the row to be seen while it transfers.
    fireEvent.change(form.querySelector('input[name=limit]')!, { target: { value: '0.1' } });
    fireEvent.submit(form);
    const row = await screen.findByTestId('mirror-m1');
    expect(row.textContent).toContain('uninitialized');
    expect((await fx.call('mirrorList', {})).find((m) => m.name === 'm1')!.limit).toBe(Math.round(0.1 * 2 ** 20));
    fireEvent.click(within(row).getByRole('button', { name: 'update' }));
    await waitFor(() => expect(screen.getByTestId('mirror-m1').textContent).toContain('transferring'), { timeout: 10_000 });
    // The engine refuses them BUSY while it transfers: greyed out, saying why.
    const busyRow = screen.getByTestId('mirror-m1');
    for (const name of ['update', 'break', 'resync', 'full resync…', 'delete…']) {
      const b = within(busyRow).getByRole('button', { name }) as HTMLButtonElement;
      expect([name, b.disabled, b.title]).toEqual([name, true, expect.stringMatching(/^a transfer of this relationship is under way/)]);
    }
    // Its settings are not: the engine changes them while it transfers (the transfer keeps the ones it started with).
    expect((within(busyRow).getByRole('button', { name: 'settings…' }) as HTMLButtonElement).disabled).toBe(false);
    await waitFor(() => expect(screen.getByTestId('mirror-m1').textContent).toContain('idle'), { timeout: 30_000 });
    expect((within(screen.getByTestId('mirror-m1')).getByRole('button', { name: 'break' }) as HTMLButtonElement).disabled).toBe(false);
    expect(screen.getByTestId('topology').textContent).toMatch(/m1 \(full\)/);
    // m1's last common snapshot: the Snapshots view's delete names the relationship.
    const common = (await fx.call<{ name: string; lastCommon: string }[]>('mirrorList', {})).find((m) => m.name === 'm1')!.lastCommon;
    await useVolumes.getState().refreshCurrent();
    const snaps = render(<SnapshotsView />);
    fireEvent.click(await screen.findByTestId(`delete-snap-${common}`));
    expect((await screen.findByTestId('delete-relationships')).textContent).toMatch(/^Relationship m1 uses it as the last snapshot in common with the mirror/);
    fireEvent.click(within(screen.getByTestId('delete-dialog')).getByRole('button', { name: 'Cancel' }));
    snaps.unmount();
  });

  it('a key file other users can read: both forms show the warning `replicate` prints; none for an owner-only key', async () => {
    const key = join(fx.dir, 'shared.key');
    await writeFile(key, randomBytes(32).toString('hex'));
    await chmod(key, 0o644);
    const expected = `Warning: key file '${key}' is open to every user of this host (mode 0644): whoever reads it can pose as either end of a replication; \`chmod 600 ${key}\``;
    const jobs = render(<JobsView />);
    fireEvent.click(screen.getByTestId('jobkind-replicate'));
    fireEvent.change(screen.getByTestId('job-form').querySelector('input[name=keyFile]')!, { target: { value: key } });
    expect((await screen.findByTestId('key-file-warning')).textContent).toBe(expected);
    jobs.unmount();
    render(<RelationshipsView />);
    const form = screen.getByTestId('mirror-create');
    fireEvent.change(form.querySelector('input[name=keyFile]')!, { target: { value: key } });
    expect((await screen.findByTestId('key-file-warning')).textContent).toBe(expected);
    await chmod(key, 0o600);
    fireEvent.change(form.querySelector('input[name=keyFile]')!, { target: { value: `${key} ` } });
    expect(await fx.call('keyFileWarning', { keyFile: key })).toEqual({ warning: null });
    // Past the pause and the form's own call for the changed field.
    await new Promise((r) => setTimeout(r, 600));
    expect(screen.queryByTestId('key-file-warning')).toBeNull();
  });

  it('relationships: delete asks first, saying what stays and what goes', async () => {
    render(<RelationshipsView />);
    fireEvent.click(await screen.findByTestId('delete-mirror-m1'));
    const ask = await screen.findByTestId('delete-mirror-confirm');
    expect(ask.textContent).toContain(`What stays: the snapshots on ${fx.vol} and the mirror volume ${join(fx.dir, 'mirror.img')} with its snapshots`);
    expect(ask.textContent).toMatch(/What goes: its schedule \(updates on demand\), its state \(last common snapshot \S+, lag, last transfer\)/);
    fireEvent.click(within(ask).getByRole('button', { name: 'Cancel' }));
    expect(screen.queryByTestId('delete-mirror-confirm')).toBeNull();
    expect((await fx.call<{ name: string }[]>('mirrorList', {})).map((m) => m.name)).toContain('m1');
    fireEvent.click(screen.getByTestId('delete-mirror-m1'));
    fireEvent.click(within(await screen.findByTestId('delete-mirror-confirm')).getByRole('button', { name: 'Delete m1' }));
    await screen.findByText('deleted relationship m1 (snapshots stay)');
    expect((await fx.call<{ name: string }[]>('mirrorList', {})).map((m) => m.name)).not.toContain('m1');
    // Its hold went with it: its transfer snapshot can go too (the grid test below expects s1 and s2 only).
    await fx.call('snapDelete', { volume: fx.vol, name: 'mirror.m1.1' });
    await useVolumes.getState().refreshCurrent();
  });

  it('relationships: a resync refuses to discard what only the mirror holds; "resync, discarding…" asks, then does', async () => {
    const src = join(fx.dir, 'dv-src.img');
    const dst = join(fx.dir, 'dv-mirror.img');
    await fx.call('volumeCreate', { path: src, sizeBytes: 16 << 20 });
    await fx.call('writeFile', { volume: src, path: '/a.txt', base64: Buffer.from('from the source').toString('base64') });
    await fx.call('mirrorCreate', { name: 'dv', source: src, destination: dst, kind: 'full' });
    const finished = async (id: number): Promise<{ state: string; error: { code: string; message: string } | null }> => {
      let job: { id: number; state: string; error: { code: string; message: string } | null } | undefined;
      await waitFor(async () => {
        job = (await fx.call<(typeof job & object)[]>('jobList', {})).find((j) => j.id === id);
        expect(job?.state).not.toBe('running');
      }, { timeout: 30_000 });
      return job!;
    };
    expect((await finished((await fx.call<{ id: number }>('jobStart', { kind: 'mirror-update', name: 'dv' })).id)).state).toBe('ok');
    await fx.call('mirrorBreak', { name: 'dv' });
    await fx.call('writeFile', { volume: dst, path: '/written-on-the-mirror.txt', base64: Buffer.from('only here').toString('base64') });
    render(<RelationshipsView />);
    const row = await screen.findByTestId('mirror-dv');
    fireEvent.click(within(row).getByRole('button', { name: 'resync' }));
    await waitFor(() => expect(Object.values(useJobs.getState().jobs).some((j) => j.title === 'resync mirror dv')).toBe(true));
    const plainId = Object.values(useJobs.getState().jobs).find((j) => j.title === 'resync mirror dv')!.id;
    const plain = await finished(plainId);
    expect(plain.state).toBe('error');
    // Refused before any transfer began, it is in the History all the same, under the number its card showed.
    const recorded = (await fx.call<{ id: number; kind: string; volume: string; target: string; outcome: string; error?: string }[]>('jobHistory', {})).find((h) => h.id === plainId);
    expect(recorded).toMatchObject({ kind: 'mirror-resync', volume: src, target: dst, outcome: 'error', error: plain.error!.message });
    expect(plain.error!.code).toBe('DIVERGED');
    expect(plain.error!.message).toMatch(new RegExp(`^'${literal(dst)}' holds what its source does not: \\d+ blocks \\([^)]+\\) written since its newest snapshot 'mirror\\.dv\\.1'`));
    // The row says why it is still broken, and which of its buttons does what the message says.
    await useRelationships.getState().refresh();
    expect((await screen.findByTestId('advice-dv')).textContent).toBe('Here: the “resync, discarding…” button does what the message says.');
    const names = async (): Promise<string[]> => (await fx.call<DirPage>('ls', { volume: dst, path: '/' })).entries.map((e) => e.name);
    expect(await names()).toContain('written-on-the-mirror.txt');
    // The row's other resync asks first, saying what goes; Cancel keeps everything.
    fireEvent.click(screen.getByTestId('discard-resync-dv'));
    const ask = await screen.findByTestId('discard-resync-confirm');
    expect(ask.textContent).toContain(`Roll ${dst} back to the newest snapshot it has in common with ${src}`);
    fireEvent.click(within(ask).getByRole('button', { name: 'Cancel' }));
    expect(screen.queryByTestId('discard-resync-confirm')).toBeNull();
    fireEvent.click(screen.getByTestId('discard-resync-dv'));
    fireEvent.click(within(await screen.findByTestId('discard-resync-confirm')).getByRole('button', { name: 'Discard and resync' }));
    await waitFor(() => expect(Object.values(useJobs.getState().jobs).some((j) => j.title === 'resync mirror dv, discarding what only the mirror holds')).toBe(true));
    const discarding = await finished(Object.values(useJobs.getState().jobs).find((j) => j.title === 'resync mirror dv, discarding what only the mirror holds')!.id);
    expect(discarding.state).toBe('ok');
    expect(await names()).toEqual(['a.txt']);
    await fx.call('mirrorDelete', { name: 'dv' });
  });

  it('relationships: created with a time of day and a weekday, the row shows them and the next update; both a time and an interval are refused', async () => {
    render(<RelationshipsView />);
    const form = screen.getByTestId('mirror-create');
    fireEvent.change(form.querySelector('input[name=name]')!, { target: { value: 'n1' } });
    fireEvent.change(form.querySelector('input[name=destination]')!, { target: { value: join(fx.dir, 'nightly.img') } });
    // A weekday needs a time: offered once one is given.
    const on = form.querySelector('select[name=on]') as HTMLSelectElement;
    expect([on.disabled, on.value, [...on.options].map((o) => o.textContent)]).toEqual([true, '', ['every day', 'Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']]);
    fireEvent.change(form.querySelector('input[name=at]')!, { target: { value: '02:30' } });
    expect(on.disabled).toBe(false);
    fireEvent.change(on, { target: { value: 'saturday' } });
    fireEvent.change(form.querySelector('input[name=every]')!, { target: { value: '1h' } });
    fireEvent.submit(form);
    expect((await screen.findByText(/give at most one of every or at/)).textContent).toBeTruthy();
    expect((await fx.call<{ name: string }[]>('mirrorList', {})).map((m) => m.name)).not.toContain('n1');
    fireEvent.change(form.querySelector('input[name=every]')!, { target: { value: '' } });
    fireEvent.submit(form);
    const cell = await screen.findByTestId('schedule-n1');
    // Never updated: due now.
    expect(cell.textContent).toMatch(/^at 02:30 on saturdaynext \d{4}-\d\d-\d\d \d\d:\d\d$/);
    const m = (await fx.call<{ name: string; every: string | null }[]>('mirrorList', {})).find((x) => x.name === 'n1')!;
    expect(m.every).toBe('at 02:30 on saturday');
    await fx.call('mirrorDelete', { name: 'n1' });
  });

  it('relationships: settings… changes the schedule and limit in place, says what changed; a refusal keeps the form open', async () => {
    await fx.call('mirrorCreate', { name: 'nightly', source: fx.vol, destination: join(fx.dir, 'nightly-set.img'), kind: 'full', every: '1d' });
    render(<RelationshipsView />);
    const row = await screen.findByTestId('mirror-nightly');
    // Before delete…, as a plain action (not a danger one).
    expect(within(row).getAllByRole('button').map((b) => b.textContent).slice(-2)).toEqual(['settings…', 'delete…']);
    fireEvent.click(screen.getByTestId('settings-nightly'));
    let form = await screen.findByTestId('mirror-settings');
    const field = (name: string): HTMLInputElement => form.querySelector(`[name=${name}]`) as HTMLInputElement;
    // Prefilled from the relationship; a local destination has no key file to change.
    expect([field('every').value, field('at').value, field('on').value, (field('on') as unknown as HTMLSelectElement).disabled, field('limit').value]).toEqual(['1d', '', '', true, '']);
    expect(field('keyFile')).toBeNull();
    // Nothing changed: said in the form, and no call (the engine would refuse it: "nothing to change").
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    expect((await screen.findByTestId('settings-message')).textContent).toBe('Nothing differs from the current settings of nightly: nothing to save.');
    // A call would have been refused by now (the engine is in this process).
    await new Promise((r) => setTimeout(r, 200));
    expect(screen.queryByTestId('notice-error')).toBeNull();
    // Escape closes it; opened again, it starts from the relationship, not from what was typed.
    fireEvent.change(field('every'), { target: { value: '2d' } });
    fireEvent.keyDown(field('every'), { key: 'Escape' });
    expect(screen.queryByTestId('mirror-settings')).toBeNull();
    fireEvent.click(screen.getByTestId('settings-nightly'));
    form = await screen.findByTestId('mirror-settings');
    expect(field('every').value).toBe('1d');
    fireEvent.change(field('every'), { target: { value: '15m' } });
    fireEvent.change(field('limit'), { target: { value: '50' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    // Never updated: due at once under any schedule.
    await screen.findByText('nightly: schedule every 1d → every 15m; limit none → 50.0 MiB/s (next update due now)');
    expect(screen.queryByTestId('mirror-settings')).toBeNull();
    expect(screen.getByTestId('schedule-nightly').textContent).toMatch(/^every 15mnext /);
    // Changed in place: still never updated, as it was (a delete and create would have started it over).
    const after = (await fx.call<{ name: string; every: string | null; limit: number | null; state: string }[]>('mirrorList', {})).find((m) => m.name === 'nightly')!;
    expect(after).toMatchObject({ every: 'every 15m', limit: 50 * 2 ** 20, state: 'uninitialized' });
    // Other words for the same schedule reach the engine, which says that nothing changed.
    fireEvent.click(screen.getByTestId('settings-nightly'));
    form = await screen.findByTestId('mirror-settings');
    fireEvent.change(field('every'), { target: { value: '900s' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    await screen.findByText('nightly: nothing changed (schedule every 15m, limit 50.0 MiB/s)');
    expect(screen.queryByTestId('mirror-settings')).toBeNull();
    // A schedule the engine cannot read: its words in the error, the form open with what was typed, nothing changed.
    fireEvent.click(screen.getByTestId('settings-nightly'));
    form = await screen.findByTestId('mirror-settings');
    expect([field('every').value, field('limit').value]).toEqual(['15m', '50']);
    fireEvent.change(field('every'), { target: { value: 'soon' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    expect((await screen.findByTestId('notice-error')).textContent).toMatch(/^bad interval 'soon'/);
    expect(screen.queryByText(/^nightly: schedule/)).toBeNull();
    expect(screen.getByTestId('mirror-settings')).toBe(form);
    expect((await within(form).findByTestId('settings-message')).textContent).toMatch(/^Not saved: bad interval 'soon'/);
    expect(field('every').value).toBe('soon');
    expect((await fx.call<{ name: string; every: string | null }[]>('mirrorList', {})).find((m) => m.name === 'nightly')!.every).toBe('every 15m');
    // A limit the form cannot read is refused in its own terms, before any call.
    fireEvent.change(field('every'), { target: { value: '' } });
    fireEvent.change(field('limit'), { target: { value: 'fast' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    expect((await screen.findByTestId('settings-message')).textContent).toBe("Limit: 'fast' is not a number of MiB/s; leave it blank for no limit.");
    // Both blank: on demand, no limit.
    fireEvent.change(field('limit'), { target: { value: '' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    await screen.findByText('nightly: schedule every 15m → on demand; limit 50.0 MiB/s → none');
    expect(screen.queryByTestId('notice-error')).toBeNull();
    expect(screen.getByTestId('schedule-nightly').textContent).toBe('on demand');
    expect((await fx.call<{ name: string; every: string | null; limit: number | null }[]>('mirrorList', {})).find((m) => m.name === 'nightly')).toMatchObject({ every: null, limit: null });
    // A time of day and a weekday.
    fireEvent.click(screen.getByTestId('settings-nightly'));
    form = await screen.findByTestId('mirror-settings');
    fireEvent.change(field('at'), { target: { value: '03:15' } });
    fireEvent.change(field('on'), { target: { value: 'monday' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    await screen.findByText('nightly: schedule on demand → at 03:15 on monday (next update due now)');
    fireEvent.click(screen.getByTestId('settings-nightly'));
    form = await screen.findByTestId('mirror-settings');
    expect([field('every').value, field('at').value, field('on').value]).toEqual(['', '03:15', 'monday']);
    fireEvent.click(within(form).getByRole('button', { name: 'Cancel' }));
    expect(screen.queryByTestId('mirror-settings')).toBeNull();
    await fx.call('mirrorDelete', { name: 'nightly' });
  });

  it("relationships: a remote relationship's settings change its key file, with the warning; an incremental mirror has no limit to set", async () => {
    const keys = [join(fx.dir, 'off-1.key'), join(fx.dir, 'off-2.key')];
    for (const k of keys) await writeFile(k, randomBytes(32).toString('hex'), { mode: 0o600 });
    await chmod(keys[1], 0o644);
    await fx.call('mirrorCreate', { name: 'off', source: fx.vol, destination: 'backup.example.com:7450/off', kind: 'replica', keyFile: keys[0] });
    await fx.call('mirrorCreate', { name: 'inc', source: fx.vol, destination: join(fx.dir, 'inc.img'), kind: 'incremental', slow: `file:${join(fx.dir, 'inc-base')}` });
    render(<RelationshipsView />);
    fireEvent.click(await screen.findByTestId('settings-inc'));
    let form = await screen.findByTestId('mirror-settings');
    expect([form.querySelector('[name=limit]'), form.querySelector('[name=keyFile]')]).toEqual([null, null]);
    // One form at a time: another row's button shows that row's.
    fireEvent.click(screen.getByTestId('settings-off'));
    await waitFor(() => expect(screen.getByTestId('mirror-settings').getAttribute('aria-label')).toBe('settings of off'));
    form = screen.getByTestId('mirror-settings');
    expect(screen.getAllByTestId('mirror-settings')).toHaveLength(1);
    const keyFile = form.querySelector('[name=keyFile]') as HTMLInputElement;
    expect(keyFile.value).toBe(keys[0]);
    // A remote relationship keeps a key file: blank is refused in the form.
    fireEvent.change(keyFile, { target: { value: '' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    expect((await screen.findByTestId('settings-message')).textContent).toBe('Key file: a remote destination needs one; give its full path.');
    fireEvent.change(keyFile, { target: { value: keys[1] } });
    expect((await within(form).findByTestId('key-file-warning')).textContent).toMatch(/^Warning: key file '.*off-2\.key' is open to every user of this host \(mode 0644\)/);
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    // The endpoint does not answer (there is none): the key is set, and the notice says it was not checked.
    await screen.findByText((text) => text.startsWith(`off: key file ${keys[0]} → ${keys[1]}; the key was not checked: cannot reach backup.example.com:7450`));
    expect((await fx.call<{ name: string; keyFile: string | null; every: string | null }[]>('mirrorList', {})).find((m) => m.name === 'off')).toMatchObject({ keyFile: keys[1], every: null });
    await fx.call('mirrorDelete', { name: 'off' });
    await fx.call('mirrorDelete', { name: 'inc' });
  });

  it("relationships: an update the endpoint refuses for its key names the key file, and the row points at settings…", async () => {
    const root = join(fx.dir, 'auth-root');
    await mkdir(root);
    const [serverKey, ourKey] = [join(fx.dir, 'auth-server.key'), join(fx.dir, 'auth-ours.key')];
    for (const k of [serverKey, ourKey]) await writeFile(k, randomBytes(32).toString('hex'), { mode: 0o600 });
    const server = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(fx.dir, 'auth-server.json') });
    const ep = await server.serve({ port: 0, root, keyFile: serverKey, holdMs: 0 });
    try {
      // Created with the endpoint's key (a refused key is refused at create); then the file changes on this host only.
      await writeFile(ourKey, await readFile(serverKey));
      await fx.call('mirrorCreate', { name: 'au', source: fx.vol, destination: `127.0.0.1:${ep.port}/au`, kind: 'full', keyFile: ourKey });
      await writeFile(ourKey, randomBytes(32).toString('hex'));
      const { id } = await fx.call<{ id: number }>('jobStart', { kind: 'mirror-update', name: 'au' });
      let job: { id: number; state: string; error: { code: string; message: string } | null } | undefined;
      await waitFor(async () => {
        job = (await fx.call<(typeof job & object)[]>('jobList', {})).find((j) => j.id === id);
        expect(job?.state).not.toBe('running');
      }, { timeout: 30_000 });
      expect(job!.error).toMatchObject({ code: 'AUTH', message: expect.stringContaining(`relationship 'au' uses key file ${ourKey} (\`snapplane mirror set au --key-file <file>\``) });
      render(<RelationshipsView />);
      expect((await screen.findByTestId('advice-au')).textContent).toBe('Here: the “settings…” button does what the message says.');
    } finally {
      await ep.close();
      await server.closeAll();
      await fx.call('mirrorDelete', { name: 'au' }).catch(() => undefined);
    }
  });

  it("relationships: a transfer another process runs (the daemon's) shows its progress on the row, and it goes when the transfer ends", async () => {
    const src = join(fx.dir, 'pg-src.img');
    await fx.call('volumeCreate', { path: src, sizeBytes: 16 << 20 });
    await fx.call('writeFile', { volume: src, path: '/big.bin', base64: randomBytes(3 << 20).toString('base64') });
    await fx.call('mirrorCreate', { name: 'pg', source: src, destination: join(fx.dir, 'pg-m.img'), kind: 'full', limit: 1 << 20 });
    await fx.call('volumeForget', { path: src });
    // Another engine on the same state, as the daemon is: this console gets no job events from it.
    const daemon = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(fx.dir, 'state.json') });
    const running = daemon.mirrorUpdate('pg');
    try {
      // Under way before the view opens (one the daemon starts later is seen within the view's slower look-again).
      await waitFor(async () => expect((await fx.call<{ name: string; state: string }[]>('mirrorList', {})).find((m) => m.name === 'pg')?.state).toBe('transferring'), { timeout: 10_000 });
      render(<RelationshipsView />);
      const shown = await screen.findByTestId('progress-pg', {}, { timeout: 10_000 });
      expect(shown.textContent).toMatch(/^\d+(\.\d+)? (B|KiB|MiB) of 3\.\d\d MiB \(\d{1,2}%\)$/);
      expect(within(screen.getByTestId('mirror-pg')).getByText('transferring')).toBeTruthy();
      // A refusal on screen stays there across the view's periodic looks (every 2 s while one transfers).
      await useRelationships.getState().saveSettings('pg', { every: 'soon' });
      expect((await screen.findByTestId('notice-error')).textContent).toMatch(/^bad interval 'soon'/);
      const before = shown.textContent;
      await waitFor(() => expect(screen.queryByTestId('progress-pg')?.textContent).not.toBe(before), { timeout: 5_000 });
      expect(screen.getByTestId('notice-error').textContent).toMatch(/^bad interval 'soon'/);
      await running;
      await waitFor(() => expect(screen.queryByTestId('progress-pg')).toBeNull(), { timeout: 5_000 });
      expect(within(screen.getByTestId('mirror-pg')).getByText('idle')).toBeTruthy();
    } finally {
      await running.catch(() => undefined);
      await daemon.closeAll();
      await fx.call('mirrorDelete', { name: 'pg' });
    }
  });

  it('grid: one column per plane in time order, with the block panel', async () => {
    render(<GridView />);
    expect(JSON.parse(screen.getByTestId('grid-canvas').getAttribute('data-columns')!)).toEqual(['active', 's1', 's2']);
    fireEvent.click(screen.getByTestId('grid-col-s1'));
    expect((await screen.findByTestId('selected-column')).textContent).toContain('s1');
    // Go to VBN takes whole numbers inside the volume only, and says so otherwise.
    const blocks = useVolumes.getState().info!.blockCount;
    for (const bad of ['999999999', '-5', 'abc', '1.5', String(blocks)]) {
      fireEvent.change(screen.getByTestId('goto-vbn'), { target: { value: bad } });
      fireEvent.submit(screen.getByTestId('goto-vbn'));
      expect((await screen.findByTestId('goto-vbn-error')).textContent).toContain(`'${bad}' is not a VBN of this volume (0 to `);
    }
    fireEvent.change(screen.getByTestId('goto-vbn'), { target: { value: String(blocks - 1) } });
    expect(screen.queryByTestId('goto-vbn-error')).toBeNull();
    fireEvent.submit(screen.getByTestId('goto-vbn'));
    expect(screen.queryByTestId('goto-vbn-error')).toBeNull();
    // The wheel scrolls; Ctrl+wheel zooms.
    usePlanes.getState().goTo(0);
    const before = usePlanes.getState();
    const grid = screen.getByTestId('grid');
    fireEvent.wheel(grid, { deltaY: 120 });
    await waitFor(() => expect(usePlanes.getState().topVbn).toBeGreaterThan(before.topVbn));
    expect(usePlanes.getState().level).toBe(before.level);
    fireEvent.wheel(grid, { deltaY: -120, ctrlKey: true });
    expect(usePlanes.getState().level).not.toBe(before.level);
  });

  it('the WebSocket transport takes its token from the URL fragment, then from the session', () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) } as unknown as Storage;
    expect(webSocketUrl({ hash: '#token=abc_-1', host: '127.0.0.1:7345' } as Location, storage)).toBe('ws://127.0.0.1:7345/api?token=abc_-1');
    expect(webSocketUrl({ hash: '', host: '127.0.0.1:7345' } as Location, storage)).toBe('ws://127.0.0.1:7345/api?token=abc_-1');
    expect(() => webSocketUrl({ hash: '', host: 'x' } as Location, { getItem: () => null, setItem: () => undefined } as unknown as Storage)).toThrow(/token/);
  });
});
