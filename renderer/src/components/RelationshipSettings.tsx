/**
 * A relationship's settings form (schedule, limit, key file: `mirrorSet`), opened from its row in the Relationships
 * view; it sends only what the user changed, and says a refusal in the form as well as at the top of the view.
 */
import { useState } from 'react';
import type { MethodArgs, MirrorInfo } from '../../../core/api/index.js';
import { useRelationships } from '../stores/relationships.js';
import { KeyFileWarning } from './KeyFileWarning.js';
import { WeekdaySelect } from './WeekdaySelect.js';

/** The settings form's fields as text, as typed. */
interface SettingsDraft {
  every: string;
  at: string;
  on: string;
  /** MiB/s; blank: none. */
  limit: string;
  keyFile: string;
}

/** The form's fields for a relationship's settings now (MirrorInfo.every is "every 15m", "at 02:00" or "at 02:00 on sunday"). */
function draftOf(m: MirrorInfo): SettingsDraft {
  const every = /^every (\S+)$/.exec(m.every ?? '');
  const at = /^at (\d\d:\d\d)(?: on (\w+))?$/.exec(m.every ?? '');
  return {
    every: every?.[1] ?? '',
    at: at?.[1] ?? '',
    on: at?.[2] ?? '',
    // Rounded for the eye; an untouched field is compared as text (below), so the rounding never changes the limit.
    limit: m.limit === null ? '' : String(Number((m.limit / 2 ** 20).toFixed(3))),
    keyFile: m.keyFile ?? '',
  };
}

/** The schedule a draft gives, in MirrorInfo.every's words (null: on demand). */
function scheduleWords(d: SettingsDraft): string | null {
  if (d.every.trim()) return `every ${d.every.trim()}`;
  if (d.at) return `at ${d.at}${d.on ? ` on ${d.on}` : ''}`;
  return null;
}

type SettingsChange = { args: Omit<MethodArgs<'mirrorSet'>, 'name'> } | { problem: string };

/**
 * The `mirrorSet` arguments for what the user changed in the form (`shown`: the fields as the form opened) that also
 * differs from the relationship now; a field left alone is not sent, so a change made elsewhere meanwhile stays.
 */
function settingsChange(m: MirrorInfo, shown: SettingsDraft, d: SettingsDraft): SettingsChange {
  const args: Omit<MethodArgs<'mirrorSet'>, 'name'> = {};
  const scheduleTouched = d.every.trim() !== shown.every || d.at !== shown.at || d.on !== shown.on;
  // Both an interval and a time: sent as given, for the engine to say which it takes (one).
  if (scheduleTouched && (scheduleWords(d) !== m.every || (d.every.trim() && d.at))) {
    if (d.every.trim()) args.every = d.every.trim();
    if (d.at) {
      args.at = d.at;
      if (d.on) args.on = d.on;
    }
    if (!d.every.trim() && !d.at) args.onDemand = true;
  }
  if (m.kind !== 'incremental' && d.limit.trim() !== shown.limit) {
    const text = d.limit.trim();
    if (text === '') {
      if (m.limit !== null) args.limit = null;
    } else {
      const mib = Number(text);
      if (!Number.isFinite(mib) || mib <= 0) return { problem: `Limit: '${text}' is not a number of MiB/s; leave it blank for no limit.` };
      const bytes = Math.round(mib * 2 ** 20);
      // The engine's bounds in the form's own unit (its schema would name bytes).
      if (bytes < 1024) return { problem: `Limit: ${text} MiB/s is too low; the least is 1 KiB/s (0.001 MiB/s).` };
      if (bytes > 2 ** 40) return { problem: `Limit: ${text} MiB/s is too high; the most is 1,048,576 MiB/s.` };
      if (bytes !== m.limit) args.limit = bytes;
    }
  }
  const keyFile = d.keyFile.trim();
  if (keyFile !== shown.keyFile && keyFile !== (m.keyFile ?? '')) {
    // The engine keeps a remote relationship's key file; it has no way to go without one.
    if (!keyFile) return { problem: 'Key file: a remote destination needs one; give its full path.' };
    args.keyFile = keyFile;
  }
  return { args };
}

/** A relationship's schedule, limit and key file, changed in place: its state stays, so no full copy follows. */
function SettingsForm({ m }: { m: MirrorInfo }) {
  const [shown] = useState(() => draftOf(m));
  const [draft, setDraft] = useState(shown);
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const field = (k: keyof SettingsDraft) => (e: { target: { value: string } }) => {
    const value = e.target.value;
    setDraft((d) => ({ ...d, [k]: value }));
  };
  const st = useRelationships.getState();
  // Only a remote destination's relationship has a key file (the engine requires one for it, and refuses it otherwise).
  const remote = m.keyFile !== null;
  const save = (): void => {
    const c = settingsChange(m, shown, draft);
    if ('problem' in c) setMessage({ text: c.problem, error: true });
    else if (Object.keys(c.args).length === 0) setMessage({ text: `Nothing differs from the current settings of ${m.name}: nothing to save.`, error: false });
    else {
      setMessage(null);
      // Said in the form too: the view's error notice is at its top, out of sight once a long list scrolled to the form.
      void st.saveSettings(m.name, c.args).then((saved) => saved || setMessage({ text: `Not saved: ${useRelationships.getState().error ?? 'refused'}`, error: true }));
    }
  };
  return (
    <form
      className="card settings"
      data-testid="mirror-settings"
      aria-label={`settings of ${m.name}`}
      onKeyDown={(e) => e.key === 'Escape' && st.askSettings(null)}
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      <h3>
        Settings of <b>{m.name}</b> <span className="muted small">— its state and snapshots stay: no full copy follows</span>
      </h3>
      <div className="fields">
        <label>
          Update every <input value={draft.every} onChange={field('every')} placeholder="e.g. 15m" size={8} name="every" autoFocus />
        </label>
        <label>
          or at <input type="time" value={draft.at} onChange={field('at')} name="at" />
        </label>
        <label>
          on{' '}
          <WeekdaySelect value={draft.on} at={draft.at} onChange={(on) => setDraft((d) => ({ ...d, on }))} />
        </label>
        <span className="muted small">both blank: on demand</span>
      </div>
      {m.kind !== 'incremental' ? (
        <div className="fields">
          <label>
            Limit <input value={draft.limit} onChange={field('limit')} placeholder="blank: none" size={8} name="limit" /> MiB/s
          </label>
        </div>
      ) : null}
      {remote ? (
        <>
          <label>
            Key file <input value={draft.keyFile} onChange={field('keyFile')} name="keyFile" className="mono" />
          </label>
          <KeyFileWarning keyFile={draft.keyFile} />
        </>
      ) : null}
      {message ? (
        <p className={message.error ? 'error' : 'muted'} role="status" data-testid="settings-message">
          {message.text}
        </p>
      ) : null}
      <div className="buttons">
        <button type="submit">Save</button>
        <button type="button" onClick={() => st.askSettings(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** The open settings form (the relationships store's `editing`), if its relationship still exists. */
export function RelationshipSettings({ mirrors }: { mirrors: MirrorInfo[] }) {
  const name = useRelationships((s) => s.editing);
  const m = mirrors.find((x) => x.name === name);
  // Keyed: another relationship's form starts from its own values.
  return m ? <SettingsForm key={m.name} m={m} /> : null;
}
