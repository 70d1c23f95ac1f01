/**
 * Storage images: the composer's expression (chips of snapshot names and operators), its live evaluation by the
 * engine (block count, bytes, streamability, or the engine's explanation of what is wrong), saved expressions.
 */
import { create } from 'zustand';
import type { ImageEvalReport, SavedImage } from '../../../core/api/index.js';
import { ClientError, errorText } from '../client/client.js';
import { client } from '../client/current.js';
import { useVolumes } from './volumes.js';

export type Chip = { kind: 'name'; name: string } | { kind: 'op'; op: '+' | '-' | '&' | '(' | ')' };

export interface ImagesState {
  chips: Chip[];
  result: ImageEvalReport | null;
  error: { message: string; code: string; column: number | null } | null;
  evaluating: boolean;
  saved: SavedImage[];
  savedError: string | null;
  addChip(chip: Chip, at?: number): void;
  removeChip(index: number): void;
  setText(text: string): void;
  clear(): void;
  evaluate(): Promise<void>;
  loadSaved(): Promise<void>;
  save(name: string): Promise<boolean>;
  remove(name: string): Promise<void>;
}

const SPECIAL = /[\s+&()']/u;

/** A name as the expression language needs it (quoted when it holds an operator character or starts with '-'). */
export function quoteName(name: string): string {
  return SPECIAL.test(name) || name.startsWith('-') || name === '' ? `'${name}'` : name;
}

/** The expression text of chips. */
export function chipsToText(chips: Chip[]): string {
  return chips.map((c) => (c.kind === 'name' ? quoteName(c.name) : c.op)).join(' ');
}

/** Chips of an expression text (the engine's tokenizer rules: '-' starts an operator only where a token starts). */
export function textToChips(text: string): Chip[] {
  const out: Chip[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (/\s/u.test(ch)) {
      i++;
    } else if ('+-&()'.includes(ch)) {
      out.push({ kind: 'op', op: ch as '+' | '-' | '&' | '(' | ')' });
      i++;
    } else if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      out.push({ kind: 'name', name: text.slice(i + 1, end < 0 ? text.length : end) });
      i = end < 0 ? text.length : end + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s+&()']/u.test(text[j])) j++;
      out.push({ kind: 'name', name: text.slice(i, j) });
      i = j;
    }
  }
  return out;
}

/** A name chip dropped after a name gets a '+' in between, so dragging names in builds a union. */
function withImplicitUnion(chips: Chip[], chip: Chip, at: number): Chip[] {
  const out = [...chips];
  const before = out[at - 1];
  if (chip.kind === 'name' && before && (before.kind === 'name' || (before.kind === 'op' && before.op === ')'))) {
    out.splice(at, 0, { kind: 'op', op: '+' }, chip);
  } else out.splice(at, 0, chip);
  return out;
}

let evalSeq = 0;
let evalTimer: ReturnType<typeof setTimeout> | null = null;

export const useImages = create<ImagesState>()((set, get) => {
  const changed = (chips: Chip[]): void => {
    set({ chips });
    if (evalTimer) clearTimeout(evalTimer);
    evalTimer = setTimeout(() => void get().evaluate(), 120);
  };
  return {
    chips: [],
    result: null,
    error: null,
    evaluating: false,
    saved: [],
    savedError: null,

    addChip(chip, at) {
      const chips = get().chips;
      changed(withImplicitUnion(chips, chip, at ?? chips.length));
    },
    removeChip(index) {
      changed(get().chips.filter((_, i) => i !== index));
    },
    setText(text) {
      changed(textToChips(text));
    },
    clear() {
      changed([]);
    },

    async evaluate() {
      const volume = useVolumes.getState().current;
      const text = chipsToText(get().chips);
      const seq = ++evalSeq;
      if (!volume || text.trim() === '') {
        set({ result: null, error: null, evaluating: false });
        return;
      }
      set({ evaluating: true });
      try {
        const result = await client().call('imageEval', { volume, expression: text });
        if (seq === evalSeq) set({ result, error: null, evaluating: false });
      } catch (e) {
        if (seq !== evalSeq) return;
        const message = errorText(e);
        const m = /at column (\d+)/.exec(message);
        set({ result: null, evaluating: false, error: { message, code: e instanceof ClientError ? e.code : 'ERROR', column: m ? Number(m[1]) : null } });
      }
    },

    async loadSaved() {
      const volume = useVolumes.getState().current;
      if (!volume) return set({ saved: [] });
      try {
        set({ saved: await client().call('imageList', { volume }), savedError: null });
      } catch (e) {
        set({ savedError: errorText(e) });
      }
    },

    async save(name) {
      const volume = useVolumes.getState().current;
      if (!volume) return false;
      try {
        set({ saved: await client().call('imageSave', { volume, name, expression: chipsToText(get().chips) }), savedError: null });
        return true;
      } catch (e) {
        set({ savedError: errorText(e) });
        return false;
      }
    },

    async remove(name) {
      const volume = useVolumes.getState().current;
      if (!volume) return;
      try {
        set({ saved: await client().call('imageDelete', { volume, name }) });
      } catch (e) {
        set({ savedError: errorText(e) });
      }
    },
  };
});

/** The composer's expression text. */
export function selectExpression(s: Pick<ImagesState, 'chips'>): string {
  return chipsToText(s.chips);
}

// A change on the volume can change what the expression selects: evaluate again.
useVolumes.subscribe((v, prev) => {
  if (v.current !== prev.current) {
    useImages.setState({ chips: [], result: null, error: null });
    void useImages.getState().loadSaved();
  } else if (v.version !== prev.version && useImages.getState().chips.length > 0) void useImages.getState().evaluate();
});
