/**
 * The storage-image expression language: a grammar over plane names with union, difference and intersection.
 *
 *   expr    := term (('+' | '-') term)*        left-associative; '+' union, '-' difference
 *   term    := factor ('&' factor)*            '&' intersection binds tighter than '+' and '-'
 *   factor  := name | '(' expr ')'
 *   name    := a run of characters other than whitespace and + & ( ) ' ; or a 'quoted name'
 *
 * A '-' inside a name is part of the name ("hourly-2026-11-25_0300"); it is an operator only where a new token
 * starts (after whitespace, '(' or another operator), so `a - b` and `a -b` subtract while `a-b` is one name.
 */
import { SnapplaneError } from '../common/errors.js';

export type ImageExpr =
  | { kind: 'name'; name: string; column: number }
  | { kind: 'union' | 'difference' | 'intersection'; left: ImageExpr; right: ImageExpr; column: number };

interface Token {
  kind: 'name' | '+' | '-' | '&' | '(' | ')' | 'end';
  text: string;
  column: number;
}

const SPECIAL = new Set(['+', '&', '(', ')']);

function syntaxError(source: string, message: string, column: number): SnapplaneError {
  return new SnapplaneError('INVALID', `${message} at column ${column} of "${source}"`);
}

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const ch = source[i];
    if (/\s/u.test(ch)) {
      i++;
      continue;
    }
    const column = i + 1;
    if (SPECIAL.has(ch) || ch === '-') {
      tokens.push({ kind: ch as Token['kind'], text: ch, column });
      i++;
      continue;
    }
    if (ch === "'") {
      const end = source.indexOf("'", i + 1);
      if (end < 0) throw syntaxError(source, 'unterminated quoted name', column);
      if (end === i + 1) throw syntaxError(source, 'empty quoted name', column);
      tokens.push({ kind: 'name', text: source.slice(i + 1, end), column });
      i = end + 1;
      continue;
    }
    let j = i;
    while (j < source.length && !/\s/u.test(source[j]) && !SPECIAL.has(source[j]) && source[j] !== "'") j++;
    tokens.push({ kind: 'name', text: source.slice(i, j), column });
    i = j;
  }
  tokens.push({ kind: 'end', text: '', column: source.length + 1 });
  return tokens;
}

/** Parses an image expression; syntax errors name the column. */
export function parseImageExpr(source: string): ImageExpr {
  const tokens = tokenize(source);
  let pos = 0;
  const peek = (): Token => tokens[pos];
  const describe = (t: Token): string => (t.kind === 'end' ? 'end of expression' : `'${t.text}'`);

  const factor = (): ImageExpr => {
    const t = tokens[pos++];
    if (t.kind === 'name') return { kind: 'name', name: t.text, column: t.column };
    if (t.kind === '(') {
      const inner = expr();
      const close = tokens[pos++];
      if (close.kind !== ')') throw syntaxError(source, `expected ')' but found ${describe(close)}`, close.column);
      return inner;
    }
    throw syntaxError(source, `expected a snapshot name or '(' but found ${describe(t)}`, t.column);
  };
  const term = (): ImageExpr => {
    let left = factor();
    while (peek().kind === '&') {
      const op = tokens[pos++];
      left = { kind: 'intersection', left, right: factor(), column: op.column };
    }
    return left;
  };
  const expr = (): ImageExpr => {
    let left = term();
    for (;;) {
      const op = peek();
      if (op.kind !== '+' && op.kind !== '-') return left;
      pos++;
      left = { kind: op.kind === '+' ? 'union' : 'difference', left, right: term(), column: op.column };
    }
  };

  const result = expr();
  const rest = peek();
  if (rest.kind !== 'end') throw syntaxError(source, `unexpected ${describe(rest)}`, rest.column);
  return result;
}

/** Every name the expression mentions, in order of appearance. */
export function namesIn(e: ImageExpr): { name: string; column: number }[] {
  if (e.kind === 'name') return [{ name: e.name, column: e.column }];
  return [...namesIn(e.left), ...namesIn(e.right)];
}

/** True when a name must be quoted to read back as one name. */
export function needsQuotes(name: string): boolean {
  return /[\s+&()']/u.test(name) || name.startsWith('-');
}

/** Writes the expression back in canonical form (spaces around operators, parentheses only where needed). */
export function formatImageExpr(e: ImageExpr, parentPrecedence = 0, rightOperand = false): string {
  if (e.kind === 'name') return needsQuotes(e.name) ? `'${e.name}'` : e.name;
  const prec = e.kind === 'intersection' ? 2 : 1;
  const op = e.kind === 'union' ? '+' : e.kind === 'difference' ? '-' : '&';
  const text = `${formatImageExpr(e.left, prec)} ${op} ${formatImageExpr(e.right, prec, true)}`;
  return prec < parentPrecedence || (rightOperand && prec === parentPrecedence) ? `(${text})` : text;
}

/** A snapshot name as it is written in an expression (quoted when it needs to be). */
export function quoteName(name: string): string {
  return formatImageExpr({ kind: 'name', name, column: 1 });
}

/**
 * The shape an image must have to be streamed: a union of planes, minus at most one plane (the seed's rule: an
 * incremental image has exactly one snapshot as subtrahend). Returns null, with the reason, for anything else.
 */
export function streamShape(e: ImageExpr): { tops: { name: string; column: number }[]; base: { name: string; column: number } | null } | { reason: string } {
  let base: { name: string; column: number } | null = null;
  let sum = e;
  if (e.kind === 'difference') {
    if (e.right.kind !== 'name') return { reason: `the subtrahend at column ${e.column} must be one snapshot, not an expression` };
    base = { name: e.right.name, column: e.right.column };
    sum = e.left;
  }
  const tops: { name: string; column: number }[] = [];
  const collect = (x: ImageExpr): string | null => {
    if (x.kind === 'name') {
      tops.push({ name: x.name, column: x.column });
      return null;
    }
    if (x.kind === 'union') return collect(x.left) ?? collect(x.right);
    if (x.kind === 'difference') return `only one '-' is allowed, as the last operation (column ${x.column}): an incremental image has exactly one snapshot as subtrahend`;
    return `'&' (column ${x.column}) cannot be streamed: a stream is a sum of snapshots minus at most one base snapshot`;
  };
  const reason = collect(sum);
  if (reason) return { reason };
  return { tops, base };
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** The closest of `candidates` to `name` when it is close enough to be a likely typo. */
export function suggest(name: string, candidates: string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : null;
}
